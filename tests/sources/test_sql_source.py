"""sources.sql against real databases: SQLite files always, PostgreSQL with MLC_TEST_POSTGRES_URL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_connector.core import rules
from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.idempotency import notification_key
from ml_connector.core.models import Record
from ml_connector.errors import ConfigError, SourceAuthError, SourcePayloadError, SourceUnavailable
from ml_connector.sim.demo_erp import DemoErp
from ml_connector.sources import registry
from ml_connector.sources.sql import (
    SqlEntity,
    SqlSource,
    SqlSourceConfig,
    build,
    engine_url,
    first_wall_at_or_after,
    wall_to_utc,
)

CHICAGO = ZoneInfo("America/Chicago")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --------------------------------------------------------------------------- database fixtures


@dataclass
class Db:
    """One empty database: DDL with {ts}/{key} placeholders, inserts with datetimes as values."""

    backend: str
    url: str
    engine: sa.Engine

    def ddl(self, sql: str) -> None:
        types = (
            {"ts": "TEXT", "int": "INTEGER"}
            if self.backend == "sqlite"
            else {"ts": "TIMESTAMP", "int": "INTEGER"}
        )
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql.format(**types)))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        names = ", ".join(columns)
        params = ", ".join(f":{c}" for c in columns)
        stmt = sa.text(f"INSERT INTO {table} ({names}) VALUES ({params})")
        values = [dict(zip(columns, (self._value(v) for v in row), strict=True)) for row in rows]
        with self.engine.begin() as conn:
            conn.execute(stmt, values)

    def _value(self, value: Any) -> Any:
        if self.backend == "sqlite" and isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S")  # how SQLite ERPs keep time: text
        return value

    def source(self, entities: dict[str, dict[str, Any]], **settings_: Any) -> SqlSource:
        config = SqlSourceConfig.model_validate(
            {"type": "sql", "url": self.url, "entities": entities, **settings_}
        )
        return build(config, {"name": "erp"})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'erp.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    # The test writes the ERP's tables itself; the source opens SQLite files read-only.
    engine = sa.create_engine(url if request.param == "sqlite" else engine_url(url))
    try:
        yield Db(request.param, url, engine)
    finally:
        engine.dispose()


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Iterator[Db]:
    url = request.getfixturevalue("pg_schema_url")
    engine = sa.create_engine(engine_url(url))
    try:
        yield Db("postgres", url, engine)
    finally:
        engine.dispose()


@pytest.fixture
async def closing() -> AsyncIterator[list[SqlSource]]:
    """Sources to close after the test (their pools hold connections)."""
    opened: list[SqlSource] = []
    yield opened
    for source in opened:
        await source.aclose()


async def collect(source: SqlSource, entity: str, since: datetime, until: datetime) -> list[Record]:
    return [record async for record in source.fetch(entity, since, until)]


def checked_out(source: SqlSource) -> int:
    pool = source.engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    return pool.checkedout()


def count_pages(source: SqlSource, table: str) -> list[str]:
    """Every paged SELECT the source sends to `table` (not reflection queries)."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if f"FROM {table} " in statement + " " and "ORDER BY" in statement:
            seen.append(statement)

    sa.event.listen(source.engine, "before_cursor_execute", before)
    return seen


# --------------------------------------------------------------------------- paging


async def test_paging_streams_many_pages_with_ties_and_bounded_memory(
    db: Db, closing: list[SqlSource]
) -> None:
    db.ddl("CREATE TABLE big (id {int} PRIMARY KEY, changed {ts} NOT NULL, payload TEXT)")
    db.ddl("CREATE INDEX big_changed ON big (changed, id)")
    base = datetime(2024, 5, 1, 12, 0)
    # 20,000 rows on only 50 distinct times: every page boundary falls inside a tie.
    rows = [(key, base + timedelta(minutes=(key * 7) % 50), f"row {key}") for key in range(1, 20_001)]
    random.Random(3).shuffle(rows)
    db.insert("big", ["id", "changed", "payload"], rows)
    source = db.source({"big": {"table": "big", "key": "id", "changed_at": "changed", "page_size": 100}})
    closing.append(source)
    pages = count_pages(source, "big")

    stream = source.fetch("big", utc(2024, 5, 1), utc(2024, 5, 2))
    first = await anext(stream)
    assert len(pages) == 1  # streaming: the first record arrives after one page, not the table
    keys = [first.key]
    order = [(first.changed_at, int(first.key))]
    async for record in stream:
        keys.append(record.key)
        order.append((record.changed_at, int(record.key)))

    assert len(keys) == 20_000 and len(set(keys)) == 20_000
    assert order == sorted(order)  # oldest first, ties by key
    assert order[0] == (utc(2024, 5, 1, 12, 0), 50)
    assert len(pages) == 201  # 200 full pages of 100, then one empty page ends the stream
    assert checked_out(source) == 0  # no connection held between or after pages


async def test_consumer_stopping_early_leaves_nothing_open(db: Db, closing: list[SqlSource]) -> None:
    db.ddl("CREATE TABLE t (id {int} PRIMARY KEY, changed {ts} NOT NULL)")
    db.insert("t", ["id", "changed"], [(k, datetime(2024, 5, 1, 12, k)) for k in range(10)])
    source = db.source({"t": {"table": "t", "key": "id", "changed_at": "changed", "page_size": 3}})
    closing.append(source)
    pages = count_pages(source, "t")
    async for _ in source.fetch("t", utc(2024, 5, 1), utc(2024, 5, 2)):
        break
    assert len(pages) == 1
    assert checked_out(source) == 0


async def test_window_is_half_open(db: Db, closing: list[SqlSource]) -> None:
    db.ddl("CREATE TABLE t (id {int} PRIMARY KEY, changed {ts} NOT NULL)")
    db.insert(
        "t",
        ["id", "changed"],
        [
            (1, datetime(2024, 5, 1, 9, 59, 59)),
            (2, datetime(2024, 5, 1, 10, 0, 0)),
            (3, datetime(2024, 5, 1, 10, 59, 59)),
            (4, datetime(2024, 5, 1, 11, 0, 0)),
        ],
    )
    source = db.source({"t": {"table": "t", "key": "id", "changed_at": "changed", "page_size": 1}})
    closing.append(source)

    inside = await collect(source, "t", utc(2024, 5, 1, 10), utc(2024, 5, 1, 11))
    after = await collect(source, "t", utc(2024, 5, 1, 11), utc(2024, 5, 1, 12))
    empty = await collect(source, "t", utc(2024, 5, 1, 11), utc(2024, 5, 1, 11))

    assert [r.key for r in inside] == ["2", "3"]
    assert [r.changed_at for r in inside] == [utc(2024, 5, 1, 10), utc(2024, 5, 1, 10, 59, 59)]
    assert [r.key for r in after] == ["4"]
    assert empty == []


# --------------------------------------------------------------------------- the database's clock

#: naive Chicago wall time -> UTC, across both 2024 changes (the rule in the module docstring).
CHICAGO_CASES = [
    (datetime(2024, 11, 3, 0, 30), utc(2024, 11, 3, 5, 30)),  # CDT
    (datetime(2024, 11, 3, 1, 0), utc(2024, 11, 3, 7, 0)),  # repeated hour: the later (CST)
    (datetime(2024, 11, 3, 1, 30), utc(2024, 11, 3, 7, 30)),
    (datetime(2024, 11, 3, 2, 0), utc(2024, 11, 3, 8, 0)),  # CST
    (datetime(2024, 3, 10, 1, 50), utc(2024, 3, 10, 7, 50)),  # CST
    (datetime(2024, 3, 10, 2, 0), utc(2024, 3, 10, 8, 0)),  # skipped hour: the jump
    (datetime(2024, 3, 10, 2, 30), utc(2024, 3, 10, 8, 0)),
    (datetime(2024, 3, 10, 3, 0), utc(2024, 3, 10, 8, 0)),  # CDT
    (datetime(2024, 7, 1, 12, 0), utc(2024, 7, 1, 17, 0)),
]


@pytest.mark.parametrize(("wall", "expected"), CHICAGO_CASES)
def test_wall_to_utc_table(wall: datetime, expected: datetime) -> None:
    assert wall_to_utc(wall, CHICAGO) == expected


ZONES = ["America/Chicago", "Europe/London", "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata", "UTC"]


def transitions_2024(zone: str) -> list[datetime]:
    """Naive wall times of the zone's 2024 offset changes (found hour by hour), or New Year."""
    tz = ZoneInfo(zone)
    hours = [utc(2024, 1, 1) + timedelta(hours=h) for h in range(24 * 366)]
    found = [
        h
        for h, nxt in zip(hours, hours[1:], strict=False)
        if h.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset()
    ]
    return [h.astimezone(tz).replace(tzinfo=None) for h in found] or [datetime(2024, 1, 1)]


TRANSITIONS = {zone: transitions_2024(zone) for zone in ZONES}


@st.composite
def zone_and_walls(draw: st.DrawFn) -> tuple[str, list[datetime]]:
    """A zone and three wall times, mostly within three hours of one of its DST changes."""
    zone = draw(st.sampled_from(ZONES))
    near = st.builds(
        lambda base, seconds: base + timedelta(seconds=seconds),
        st.sampled_from(TRANSITIONS[zone]),
        st.integers(-3 * 3600, 3 * 3600),
    )
    anywhere = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2024, 12, 31))
    walls = draw(st.lists(st.one_of(near, near, anywhere), min_size=3, max_size=3))
    return zone, walls


@settings(max_examples=500, deadline=None)
@given(case=zone_and_walls())
def test_window_bound_selects_exactly_the_rows_in_the_utc_window(case: tuple[str, list[datetime]]) -> None:
    zone, (wall, bound, other) = case
    tz = ZoneInfo(zone)
    instant = bound.replace(tzinfo=UTC) - (bound.replace(tzinfo=tz).utcoffset() or timedelta())
    # The naive SQL condition and the UTC condition agree for every row: nothing lost or repeated.
    assert (wall_to_utc(wall, tz) >= instant) == (wall >= first_wall_at_or_after(instant, tz))
    # Monotonic, so ORDER BY the naive column is oldest-first in UTC too.
    low, high = sorted((wall, other))
    assert wall_to_utc(low, tz) <= wall_to_utc(high, tz)


def dst_rows() -> list[tuple[int, datetime]]:
    """Rows every 10 minutes through both 2024 Chicago changes, including the odd hours."""
    rows: list[tuple[int, datetime]] = []
    for start in (datetime(2024, 11, 2, 23, 0), datetime(2024, 3, 9, 23, 0)):
        rows += [(len(rows) + i + 1, start + timedelta(minutes=10 * i)) for i in range(30)]
    return rows


async def test_chicago_naive_rows_across_dst_neither_lost_nor_repeated(
    db: Db, closing: list[SqlSource]
) -> None:
    db.ddl("CREATE TABLE t (id {int} PRIMARY KEY, changed {ts} NOT NULL)")
    rows = dst_rows()
    db.insert("t", ["id", "changed"], rows)
    source = db.source(
        {"t": {"table": "t", "key": "id", "changed_at": "changed", "page_size": 4}},
        timezone="America/Chicago",
    )
    closing.append(source)

    whole = await collect(source, "t", utc(2024, 3, 1), utc(2024, 12, 1))
    assert sorted(int(r.key) for r in whole) == [key for key, _ in rows]
    assert [r.changed_at for r in whole] == sorted(r.changed_at for r in whole)
    converted = {int(r.key): r.changed_at for r in whole}
    for key, wall in rows:
        assert converted[key] == wall_to_utc(wall, CHICAGO)
        assert whole[0].data["changed"].tzinfo is UTC

    # Consecutive windows of odd sizes, boundaries inside both odd hours: each row exactly once.
    for step in (timedelta(minutes=7), timedelta(minutes=13), timedelta(minutes=61)):
        for start in (utc(2024, 3, 10, 4), utc(2024, 11, 3, 4)):
            seen: list[Record] = []
            edge = start
            while edge < start + timedelta(hours=6):
                seen += await collect(source, "t", edge, edge + step)
                edge += step
            expected = [r for r in whole if start <= r.changed_at < edge]
            assert [r.key for r in seen] == [r.key for r in expected], (step, start)


async def test_timestamptz_values_are_read_directly(pg: Db, closing: list[SqlSource]) -> None:
    pg.ddl("CREATE TABLE t (id integer PRIMARY KEY, changed timestamptz NOT NULL)")
    pg.insert(
        "t",
        ["id", "changed"],
        [
            (1, datetime(2024, 11, 3, 1, 30, tzinfo=ZoneInfo("America/Chicago"))),  # first 01:30, CDT
            (2, datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ZoneInfo("America/Chicago"))),  # second, CST
            (3, utc(2024, 11, 3, 9)),
        ],
    )
    source = pg.source({"t": {"table": "t", "key": "id", "changed_at": "changed"}}, timezone="Asia/Tokyo")
    closing.append(source)
    got = await collect(source, "t", utc(2024, 11, 3, 6), utc(2024, 11, 3, 9))
    assert [(r.key, r.changed_at) for r in got] == [
        ("1", utc(2024, 11, 3, 6, 30)),
        ("2", utc(2024, 11, 3, 7, 30)),
    ]


# --------------------------------------------------------------------------- entities and values


async def test_query_entity_is_wrapped_and_paged(db: Db, closing: list[SqlSource]) -> None:
    db.ddl("CREATE TABLE po (po_id {int} PRIMARY KEY, status TEXT, amount TEXT, changed {ts} NOT NULL)")
    db.insert(
        "po",
        ["po_id", "status", "amount", "changed"],
        [
            (k, "APPROVED" if k % 2 else "OPEN", f"{k}00.50", datetime(2024, 5, 1, 12, k // 4))
            for k in range(1, 13)
        ],
    )
    query = "SELECT po_id, status, amount, changed, 'x' AS tag FROM po WHERE status = 'APPROVED'"
    source = db.source(
        {"approved": {"query": query, "key": "po_id", "changed_at": "changed", "page_size": 2}}
    )
    closing.append(source)

    got = await collect(source, "approved", utc(2024, 5, 1), utc(2024, 5, 2))
    assert [r.key for r in got] == ["1", "3", "5", "7", "9", "11"]
    assert got[0].data == {
        "po_id": 1,
        "status": "APPROVED",
        "amount": "100.50",
        "changed": utc(2024, 5, 1, 12),
        "tag": "x",
    }
    found = await source.lookup("approved", "7")
    assert found is not None and found.data["status"] == "APPROVED"
    assert await source.lookup("approved", "8") is None  # filtered out by the query
    assert await source.lookup("approved", "n/a") is None


async def test_lookup_and_column_selection(db: Db, closing: list[SqlSource]) -> None:
    db.ddl(
        "CREATE TABLE people (PERSON_ID {int} PRIMARY KEY, FULL_NAME TEXT, MOBILE TEXT, "
        "SECRET_NOTE TEXT, LAST_UPDATE_DATE {ts} NOT NULL)"
    )
    db.insert(
        "people",
        ["PERSON_ID", "FULL_NAME", "MOBILE", "SECRET_NOTE", "LAST_UPDATE_DATE"],
        [
            (101, "Dana Whitfield", "(312) 555-0142", "x", datetime(2024, 5, 1, 8)),
            (102, "Luis Ortega", None, "y", datetime(2024, 5, 1, 9)),
        ],
    )
    # Configured names in another case than the table's: matched like Oracle folds names.
    source = db.source(
        {
            "person": {
                "table": "people",
                "key": "person_id",
                "changed_at": "last_update_date",
                "columns": ["full_name", "mobile"],
            }
        },
        timezone="America/Chicago",
    )
    closing.append(source)

    found = await source.lookup("person", "101")
    assert found == Record(
        entity="person",
        key="101",
        changed_at=utc(2024, 5, 1, 13),
        data={
            "full_name": "Dana Whitfield",
            "mobile": "(312) 555-0142",
            "person_id": 101,
            "last_update_date": utc(2024, 5, 1, 13),
        },
    )
    assert await source.lookup("person", "999") is None
    assert await source.lookup("person", "abc") is None  # not an integer: cannot exist


async def test_values_are_converted_by_type(pg: Db, closing: list[SqlSource]) -> None:
    pg.ddl(
        "CREATE TABLE v (code char(8) PRIMARY KEY, changed timestamp NOT NULL, amount numeric(12,2), "
        "approved_at timestamp, due date, blob bytea, ok boolean)"
    )
    pg.insert(
        "v",
        ["code", "changed", "amount", "approved_at", "due", "blob", "ok"],
        [
            (
                "A1",
                datetime(2024, 1, 15, 6, 0),
                Decimal("1250.10"),
                datetime(2024, 1, 15, 5, 0),
                datetime(2024, 2, 1).date(),
                b"\x01\xff",
                True,
            ),
        ],
    )
    source = pg.source(
        {"v": {"table": "v", "key": "code", "changed_at": "changed"}}, timezone="America/Chicago"
    )
    closing.append(source)
    [record] = await collect(source, "v", utc(2024, 1, 1), utc(2024, 2, 1))
    assert record.key == "A1"  # CHAR padding stripped
    assert record.data["amount"] == Decimal("1250.10") and isinstance(record.data["amount"], Decimal)
    assert record.data["approved_at"] == utc(2024, 1, 15, 11)
    assert record.data["due"] == datetime(2024, 2, 1).date()
    assert record.data["blob"] == "01ff"
    assert record.data["ok"] is True
    assert (await source.lookup("v", "A1")) == record


async def test_changed_at_must_be_a_time(pg: Db, closing: list[SqlSource]) -> None:
    pg.ddl("CREATE TABLE n (id integer PRIMARY KEY, version integer)")
    source = pg.source({"n": {"table": "n", "key": "id", "changed_at": "version"}})
    closing.append(source)
    with pytest.raises(SourcePayloadError, match="'version' in table n is not a date/time column"):
        await collect(source, "n", utc(2024, 1, 1), utc(2024, 1, 2))


async def test_fetch_refuses_naive_bounds_and_unknown_entities(db: Db, closing: list[SqlSource]) -> None:
    db.ddl("CREATE TABLE t (id {int} PRIMARY KEY, changed {ts})")
    source = db.source({"t": {"table": "t", "key": "id", "changed_at": "changed"}})
    closing.append(source)
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        await collect(source, "t", datetime(2024, 1, 1), utc(2024, 1, 2))
    with pytest.raises(ConfigError, match="no entity 'nope'; it has t"):
        await collect(source, "nope", utc(2024, 1, 1), utc(2024, 1, 2))


# --------------------------------------------------------------------------- check()


async def test_check_reports_what_it_reached(db: Db, closing: list[SqlSource]) -> None:
    db.ddl("CREATE TABLE t (id {int} PRIMARY KEY, changed {ts})")
    db.ddl("CREATE TABLE e (id {int} PRIMARY KEY, changed {ts})")
    db.insert("t", ["id", "changed"], [(1, datetime(2024, 1, 1))])
    source = db.source(
        {
            "t": {"table": "t", "key": "id", "changed_at": "changed"},
            "e": {"query": "SELECT * FROM e", "key": "id", "changed_at": "changed"},
        }
    )
    closing.append(source)
    result = await source.check()
    dialect = "sqlite" if db.backend == "sqlite" else "postgresql"
    assert result.system == f"sql ({dialect})"
    assert result.details["dialect"].startswith(dialect + "+")
    assert result.details["server_version"][0].isdigit()
    assert result.details["entity t"] == "ok (table t, has rows)"
    assert result.details["entity e"] == "ok (query, empty)"
    if db.backend == "postgres":
        assert result.details["user"] == "postgres"
        assert result.details["database"] == sa.make_url(db.url).database


async def test_check_names_a_missing_table(db: Db, closing: list[SqlSource]) -> None:
    db.ddl("CREATE TABLE other (id {int})")
    source = db.source({"po": {"table": "po_headers_all", "key": "id", "changed_at": "changed"}})
    closing.append(source)
    with pytest.raises(SourcePayloadError, match="po_headers_all") as caught:
        await source.check()
    assert str(caught.value).startswith("erp: ")
    assert not caught.value.retriable


async def test_check_bad_query_is_a_payload_error(db: Db, closing: list[SqlSource]) -> None:
    db.ddl("CREATE TABLE other (id {int})")
    source = db.source({"q": {"query": "SELECT * FROM no_such_table", "key": "id", "changed_at": "changed"}})
    closing.append(source)
    with pytest.raises(SourcePayloadError, match="no_such_table"):
        await source.check()


async def test_unreachable_postgres_is_retriable_and_hides_the_password(closing: list[SqlSource]) -> None:
    config = SqlSourceConfig(
        type="sql",
        url="postgresql://erp_reader:s3cret-Pa55@127.0.0.1:1/erp",
        entities={"t": SqlEntity(table="t", key="id", changed_at="changed")},
    )
    source = build(config, {"name": "erp"})
    closing.append(source)
    with pytest.raises(SourceUnavailable) as caught:
        await source.check()
    message = str(caught.value)
    assert "s3cret-Pa55" not in message
    assert "erp_reader:***@127.0.0.1:1/erp" in message
    assert "Connection refused" in message or "connect" in message
    assert caught.value.retriable


async def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path, closing: list[SqlSource]) -> None:
    config = SqlSourceConfig.model_validate(
        {
            "type": "sql",
            "url": f"sqlite:///{tmp_path / 'missing-dir' / 'erp.db'}",
            "entities": {"t": {"table": "t", "key": "id", "changed_at": "changed"}},
        }
    )
    source = build(config, {})
    closing.append(source)
    with pytest.raises(SourceUnavailable, match="unable to open database file"):
        await source.check()


async def test_unknown_role_is_an_auth_error(pg: Db, closing: list[SqlSource]) -> None:
    url = sa.make_url(pg.url).set(username="no_such_role_mlc", password="pw-9")
    config = SqlSourceConfig.model_validate(
        {
            "type": "sql",
            "url": url.render_as_string(hide_password=False),
            "entities": {"t": {"table": "t", "key": "id", "changed_at": "changed"}},
        }
    )
    source = build(config, {"name": "erp"})
    closing.append(source)
    with pytest.raises(SourceAuthError, match="no_such_role_mlc") as caught:
        await source.check()
    assert "pw-9" not in str(caught.value)
    assert not caught.value.retriable


# --------------------------------------------------------------------------- config


def entity(**overrides: Any) -> dict[str, Any]:
    return {"table": "t", "key": "id", "changed_at": "changed", **overrides}


def config(**overrides: Any) -> dict[str, Any]:
    return {"type": "sql", "url": "sqlite:///erp.db", "entities": {"t": entity()}, **overrides}


def test_config_needs_exactly_one_of_table_or_query() -> None:
    with pytest.raises(pydantic.ValidationError, match="exactly one of `table` or `query`"):
        SqlSourceConfig.model_validate(config(entities={"t": entity(query="SELECT 1")}))
    with pytest.raises(pydantic.ValidationError, match="exactly one of `table` or `query`"):
        SqlSourceConfig.model_validate(config(entities={"t": entity(table=None)}))


def test_config_names_a_bad_time_zone() -> None:
    with pytest.raises(pydantic.ValidationError, match="unknown time zone 'America/Chicgo'"):
        SqlSourceConfig.model_validate(config(timezone="America/Chicgo"))


def test_config_rejects_unknown_keys_and_regions() -> None:
    with pytest.raises(pydantic.ValidationError, match="extra"):
        SqlSourceConfig.model_validate(config(pasword="x"))
    with pytest.raises(pydantic.ValidationError, match="unknown phone region 'XX'"):
        SqlSourceConfig.model_validate(config(default_region="XX"))


def test_config_errors_never_echo_the_url() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        SqlSourceConfig.model_validate(config(url="not a url with hunter2", timezone="Nowhere/Zone"))
    assert "hunter2" not in str(caught.value)
    assert "not a database URL" in str(caught.value)
    with pytest.raises(pydantic.ValidationError, match="not a database URL") as caught:
        SqlSourceConfig.model_validate(config(url="postgresql://u:hunter2@db:port/erp"))
    assert "hunter2" not in str(caught.value)


def test_registry_resolves_the_sql_type() -> None:
    assert registry.config_model("sql") is SqlSourceConfig
    assert registry.factory("sql") is build


def test_postgres_urls_use_psycopg_3() -> None:
    assert engine_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert engine_url("postgres://u:p@h/db").drivername == "postgresql+psycopg"
    assert engine_url("oracle://u:p@h/?service_name=EBS").drivername == "oracle+oracledb"
    assert engine_url("mssql+pyodbc://u:p@dsn").drivername == "mssql+pyodbc"


def test_a_missing_driver_says_which_extra_installs_it() -> None:
    config_ = SqlSourceConfig.model_validate(config(url="oracle+oracledb://u:p@h:1521/?service_name=EBS"))
    try:
        import oracledb  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'ml-connector\[oracle\]'"):
            build(config_, {})
    else:
        pytest.skip("oracledb is installed here")


# --------------------------------------------------------------------------- patterns


QUEUE_FLOW = {
    "source": "erp",
    "entity": "sms_queue",
    "trigger": {"field": "id", "is_null": False},
    "first_sighting": "fire",
    "recipients": [{"field": "phone"}],
    "sender": "main.alerts",
    "template": "{{ message }}",
}


async def test_queue_table_sends_each_row_once(db: Db, closing: list[SqlSource]) -> None:
    """The queue-table pattern of the module docstring, with the poller's own decisions."""
    db.ddl(
        "CREATE TABLE sms_queue (id {int} PRIMARY KEY, created_at {ts} NOT NULL, phone TEXT, message TEXT)"
    )
    flow = FlowSpec.model_validate(QUEUE_FLOW)
    source = db.source({"sms_queue": {"table": "sms_queue", "key": "id", "changed_at": "created_at"}})
    closing.append(source)
    t0 = datetime(2024, 5, 1, 12, 0)
    db.insert(
        "sms_queue",
        ["id", "created_at", "phone", "message"],
        [
            (1, t0, "+13125550142", "Shift 7 cancelled"),
            (2, t0 + timedelta(minutes=1), "+13125550187", "Badge expires Friday"),
        ],
    )

    last_seen: dict[str, dict[str, Any]] = {}
    sent: dict[str, tuple[str, str]] = {}  # idempotency key -> (row id, body): the unique index

    async def poll(since: datetime, until: datetime) -> None:
        async for record in source.fetch(flow.entity, since, until):
            snapshot = rules.snapshot(flow.trigger, record.data)
            if rules.evaluate(flow.trigger, record.data, last_seen.get(record.key), flow.first_sighting):
                version = rules.event_version(record.changed_at, snapshot)
                key = notification_key(
                    "queue", record.entity, record.key, version, record.data["phone"], "sms"
                )
                sent.setdefault(key, (record.key, record.data["message"]))
            last_seen[record.key] = snapshot

    # Overlapping polls (5-minute overlap) and a re-poll of the same window.
    await poll(utc(2024, 5, 1, 11, 55), utc(2024, 5, 1, 12, 5))
    db.insert(
        "sms_queue",
        ["id", "created_at", "phone", "message"],
        [
            (3, t0 + timedelta(minutes=3), "+13125550123", "Payroll posted"),
        ],
    )
    await poll(utc(2024, 5, 1, 12, 0), utc(2024, 5, 1, 12, 10))
    await poll(utc(2024, 5, 1, 12, 0), utc(2024, 5, 1, 12, 10))

    assert sorted(sent.values()) == [
        ("1", "Shift 7 cancelled"),
        ("2", "Badge expires Friday"),
        ("3", "Payroll posted"),
    ]


async def test_reads_the_demo_erp_in_its_own_time_zone(tmp_path: Path, closing: list[SqlSource]) -> None:
    now = [utc(2024, 11, 3, 6, 40)]  # 01:40 CDT, the first pass of the repeated hour
    erp = DemoErp(tmp_path / "demo.db", clock=lambda: now[0])
    erp.create()
    config_ = SqlSourceConfig.model_validate(
        {
            "type": "sql",
            "url": f"sqlite:///{erp.path}",
            "timezone": erp.tz,
            "entities": {
                "po": {"table": "po_headers", "key": "po_id", "changed_at": "last_update_date"},
                "person": {"table": "people", "key": "person_id", "changed_at": "last_update_date"},
            },
        }
    )
    source = build(config_, {"name": "demo"})
    closing.append(source)
    now[0] = utc(2024, 11, 3, 7, 20)  # 01:20 CST, the second pass
    erp.approve_po(1002)

    seeded = await collect(source, "po", utc(2024, 11, 3), utc(2024, 11, 4))
    # Both passes read as the later instant: the seeds (written 06:40Z) are never placed in the past.
    approved = [r for r in seeded if r.data["status"] == "APPROVED" and r.key == "1002"]
    assert [r.changed_at for r in approved] == [utc(2024, 11, 3, 7, 20)]
    assert {r.changed_at for r in seeded if r.key != "1002"} == {utc(2024, 11, 3, 7, 40)}
    assert [r.key for r in seeded][0] == "1002"  # 01:20 sorts before the seeds' 01:40
    buyer = await source.lookup("person", str(approved[0].data["buyer_id"]))
    assert buyer is not None and buyer.data["full_name"] == "Luis Ortega"


async def test_a_missing_sqlite_file_is_an_error_not_a_new_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    config = SqlSourceConfig.model_validate({"type": "sql", "url": f"sqlite:///{missing}",
                                             "entities": {"t": {"table": "t", "key": "id", "changed_at": "c"}}})
    source = build(config, {"name": "erp"})
    try:
        with pytest.raises(SourceUnavailable, match=r"sqlite:///.*typo\.db: unable to open database file \(it must"):
            await source.check()
    finally:
        await source.aclose()
    assert not missing.exists()
