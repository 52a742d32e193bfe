"""Any SQL table or query as a source: keyset paging on (changed_at, key), the database's clock.

Config::

    sources:
      erp_db:
        type: sql
        url: postgresql://reader:${ERP_DB_PASSWORD}@db.example.com/erp
        timezone: America/Chicago        # the clock naive timestamps were written in
        entities:
          po_headers: {table: po.po_headers, key: po_id, changed_at: last_update_date}
          open_invoices:
            query: "SELECT i.*, v.phone FROM ap_invoices i JOIN vendors v ON v.id = i.vendor_id"
            key: invoice_id
            changed_at: last_update_date
            page_size: 200

Drivers: `postgresql://` means psycopg 3 (installed). Oracle works with `oracle+oracledb://` (thin
mode, no Oracle client; `pip install 'ml-connector[oracle]'`), SQL Server with `mssql+pyodbc://`
(`pip install 'ml-connector[mssql]'` plus Microsoft's ODBC driver). SQLite needs nothing.

Engine: the sync SQLAlchemy engine, one page per `asyncio.to_thread` call. The async engine
would need an async driver for each database (aiosqlite is not a dependency; pyodbc has no async
twin); the sync engine works with every driver, and a poll is one short query per page, so a
worker thread costs nothing that matters. No connection is held between pages: a consumer that
stops early leaves nothing open, and memory is one page whatever the table size.

Paging: `WHERE changed_at >= lo AND changed_at < hi AND (changed_at > :c OR (changed_at = :c AND
key > :k)) ORDER BY changed_at, key LIMIT page_size`, where (:c, :k) are the raw values of the
previous page's last row, so the cursor compares exactly what the database stores. The key must
be unique (ties on changed_at are broken by it); an index on (changed_at, key) makes each page
one index range scan. Rows whose changed_at is NULL are never read. A `query` must not end in
ORDER BY (SQL Server refuses it in a subquery), and `:name` inside it is a bind parameter: write
`\\:` for a literal colon.

Time: `since`/`until` are aware UTC. Columns with a time zone (timestamptz) are compared and read
directly. Naive columns (EBS DATE, SQL Server datetime2, SQLite text) hold wall-clock times in
`timezone`; a naive value maps to UTC by one fixed, monotonic rule:

- an ambiguous wall time (the repeated hour when clocks fall back) is the *later* of its two
  instants: a row can then only appear later than it happened, never earlier, so it lands in a
  window not yet polled instead of one already closed;
- a wall time that never existed (the hour skipped when clocks spring forward; a clock-driven
  database never writes one) is the instant the clock jumped over it.

Because the rule is monotonic, the naive rows whose UTC time lies in [since, until) are exactly
the rows with `first_wall_at_or_after(since) <= value < first_wall_at_or_after(until)`; consecutive
windows therefore neither lose nor repeat a row across either DST change, and each record is
also checked against [since, until) in Python after conversion. SQLite has no date type: its
values are read and compared as the stored text (`YYYY-MM-DD HH:MM:SS[.ffffff]`, naive).

Values: Decimal stays Decimal, datetimes become aware UTC (naive ones read in `timezone`), dates
and times stay as they are, bytes become hex text; the key is text, stripped (CHAR padding).

Queue-table pattern: an internal system that wants a text sent inserts a row
(`id`, `created_at`, `phone`, `message`) into a table of its own, e.g. `sms_queue`, and never
updates it. The entity `{table: sms_queue, key: id, changed_at: created_at}` streams each new
row; a flow with `trigger: {field: id, is_null: false}`, `first_sighting: fire`, recipients
`[{field: phone}]` and template `"{{ message }}"` sends each row once: the notification's
idempotency key includes the row's key, so overlapping polls and re-polls insert nothing new.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.sql.elements import ColumnElement

from ml_connector.core.models import CheckResult, Delivery, Record, require_aware
from ml_connector.errors import (
    ConfigError,
    SourceAuthError,
    SourceError,
    SourcePayloadError,
    SourceUnavailable,
)
from ml_connector.sources.fields import PhoneRegion, TimeZoneName
from ml_connector.sources.sql_writeback import SqlWriteBack

T = TypeVar("T")

# --------------------------------------------------------------------------------------- config

#: URL driver names rewritten to the driver ml-connector supports for that database.
DRIVER_REWRITES: dict[str, str] = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "oracle": "oracle+oracledb",
}

#: database backend -> the install extra that provides its driver.
DRIVER_EXTRAS: dict[str, str] = {"oracle": "oracle", "mssql": "mssql"}


def engine_url(url: str) -> URL:
    """Parse a configured URL and point it at the supported driver (postgresql -> psycopg 3).

    A SQLite file is opened read-only: the connector never writes to a source, and a mistyped
    path must be an error, not a new empty database.
    """
    parsed = make_url(url)
    parsed = parsed.set(drivername=DRIVER_REWRITES.get(parsed.drivername, parsed.drivername))
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") \
            and not database.startswith("file:"):
        parsed = parsed.set(database=f"file:{database}?mode=ro", query={**parsed.query, "uri": "true"})
    return parsed


class SqlEntity(BaseModel):
    """One table or query read as a stream of records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str | None = None  # "name" or "schema.name"
    query: str | None = None  # wrapped as a subquery: SELECT ... FROM (query) AS mlc_src
    key: str
    changed_at: str
    columns: list[str] | None = None  # None: every column
    page_size: int = Field(default=500, ge=1, le=100_000)

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlEntity:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` or `query`")
        if self.columns is not None and not self.columns:
            raise ValueError("`columns` must list at least one column, or be left out for all")
        return self


class SqlSourceConfig(BaseModel):
    """A database reached through SQLAlchemy.

    `url` is a SQLAlchemy URL. `postgresql://` uses psycopg 3 (installed). Oracle:
    `oracle+oracledb://user:pw@host:1521/?service_name=EBSDB` (thin mode; extra `oracle`).
    SQL Server: `mssql+pyodbc://user:pw@dsn` (extra `mssql` plus Microsoft's ODBC driver).
    Validation errors never echo the URL: it holds a password.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    type: Literal["sql"]
    url: str
    timezone: TimeZoneName = "UTC"
    default_region: PhoneRegion = "US"
    connect_args: dict[str, Any] = Field(default_factory=dict)
    entities: dict[str, SqlEntity] = Field(min_length=1)
    #: Final delivery statuses written into the database (sources.sql_writeback); None: not at all.
    write_back: SqlWriteBack | None = None

    @model_validator(mode="after")
    def _write_back_targets(self) -> SqlSourceConfig:
        if self.write_back is None:
            return self
        for name, target in self.write_back.entities.items():
            entity = self.entities.get(name)
            if entity is None:
                raise ValueError(f"write_back.entities.{name}: no such entity; entities: {', '.join(self.entities)}")
            if entity.table is None and target.update is None and target.insert is None:
                raise ValueError(f"write_back.entities.{name}: entity {name!r} is a query: name the table "
                                 "to write to with `update` or `insert`")
        return self

    @field_validator("url")
    @classmethod
    def _url_parses(cls, value: str) -> str:
        try:
            engine_url(value)
        except (sa_exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
            raise ValueError(
                "not a database URL; expected dialect+driver://user:password@host:port/database"
            ) from None
        return value




# ---------------------------------------------------------------------------------- wall clock

_TICK = timedelta(microseconds=1)
#: Larger than any UTC-offset change at a single transition (DST is 30 min to 2 h).
_MAX_SHIFT = timedelta(hours=3)


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def _first_true(pred: Callable[[datetime], bool], lo: datetime, hi: datetime) -> datetime:
    """Smallest t in (lo, hi] with pred(t), for pred false at lo and true at hi, monotone."""
    while hi - lo > _TICK:
        mid = lo + (hi - lo) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _fold1(wall: datetime) -> datetime:
    # The constructor, because datetime.replace() with keywords costs ~5x more, once per row.
    return datetime(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second, wall.microsecond,
                    fold=1)


def wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall-clock time in `tz` as aware UTC: ambiguous -> later instant, gap -> the jump.

    Monotonic (never decreasing in `wall`), which is what makes window bounds exact.
    """
    if wall.fold:
        wall = wall.replace(fold=0)
    offset = tz.utcoffset(wall)
    if offset is not None and offset == tz.utcoffset(_fold1(wall)):
        # Both folds agree: neither ambiguous nor skipped, so there is one instant (the common
        # case, kept cheap because every row of a naive-clock table comes through here).
        instant = wall - offset
        return datetime.combine(instant, instant.time(), UTC)
    later = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if _wall(later, tz) == wall:
        return later
    # In a gap fold=1 reads the wall time with the offset after the jump (an instant before it)
    # and fold=0 with the offset before (an instant after it); the jump lies between.
    after = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    return _first_true(lambda u: _wall(u, tz) > wall, later, after)


def first_wall_at_or_after(instant: datetime, tz: ZoneInfo) -> datetime:
    """The smallest naive wall time n with wall_to_utc(n) >= instant (a window's naive bound)."""
    wall = _wall(require_aware(instant, "window bound"), tz)
    if wall_to_utc(wall - _TICK, tz) < instant:
        return wall
    return _first_true(lambda n: wall_to_utc(n, tz) >= instant, wall - _MAX_SHIFT, wall)


# ---------------------------------------------------------------------------------- clock kinds

ClockKind = Literal["aware", "naive", "text"]

#: How window bounds are bound as parameters, per kind of changed_at column.
_BIND_TYPES: dict[ClockKind, Callable[[], sa.types.TypeEngine[Any]]] = {
    "aware": lambda: sa.DateTime(timezone=True),
    "naive": lambda: sa.DateTime(),
    "text": lambda: sa.String(),
}


def _text_stamp(wall: datetime) -> str:
    return wall.isoformat(sep=" ", timespec="microseconds" if wall.microsecond else "seconds")


@dataclass(frozen=True, slots=True)
class _Clock:
    """How one changed_at column keeps time: the window bounds to bind, and its values in UTC."""

    kind: ClockKind
    tz: ZoneInfo

    def bounds(self, since: datetime, until: datetime) -> tuple[Any, Any]:
        if self.kind == "aware":
            return since.astimezone(UTC), until.astimezone(UTC)
        lo, hi = first_wall_at_or_after(since, self.tz), first_wall_at_or_after(until, self.tz)
        return (_text_stamp(lo), _text_stamp(hi)) if self.kind == "text" else (lo, hi)

    def bind(self, value: Any) -> ColumnElement[Any]:
        return sa.literal(value, _BIND_TYPES[self.kind]())


#: Zones tzdata defines with one fixed offset and no transitions (its `etcetera` file and aliases).
_FIXED_ZONE = re.compile(r"(Etc/)?(UTC|UCT|Universal|Zulu|Greenwich|GMT([+-]0)?|GMT0)|Etc/GMT[+-]\d{1,2}")


def fixed_offset(tz: ZoneInfo) -> timedelta | None:
    """The offset of a zone that never changes it (UTC, Etc/GMT+5), else None."""
    if not _FIXED_ZONE.fullmatch(tz.key or ""):
        return None
    return tz.utcoffset(datetime(2000, 1, 1))


def utc_reader(tz: ZoneInfo) -> Callable[[Any], datetime | None]:
    """`to_utc` for one zone, with the common cases first: it runs once per row read.

    A naive value in a fixed-offset zone (UTC, the usual server setting) needs no DST rule.
    """
    fixed = fixed_offset(tz)

    def read(value: Any) -> datetime | None:
        if type(value) is str:
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                return None
        if type(value) is datetime and value.tzinfo is None:
            if fixed is None:
                return wall_to_utc(value, tz)
            instant = value - fixed
            return datetime.combine(instant, instant.time(), UTC)
        return to_utc(value, tz)

    return read


def to_utc(value: Any, tz: ZoneInfo) -> datetime | None:
    """A database time value (datetime, date or ISO text) as aware UTC; None when not a time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return wall_to_utc(value, tz)
        if value.utcoffset() is not None:
            return value.astimezone(UTC)
        return wall_to_utc(value.replace(tzinfo=None), tz)
    if isinstance(value, date):
        return wall_to_utc(datetime.combine(value, time()), tz)
    return None


def _clock_from_type(type_: sa.types.TypeEngine[Any]) -> ClockKind | None:
    """Decision by declared column type; None means 'look at a value'."""
    if isinstance(type_, sa.DateTime):
        return "aware" if getattr(type_, "timezone", False) else "naive"
    if isinstance(type_, sa.Date):
        return "naive"
    if isinstance(type_, sa.String):
        return "text"
    return None


def _clock_from_value(value: Any) -> ClockKind | None:
    """Decision by a sampled value (query entities carry no column types)."""
    if isinstance(value, datetime):
        return "aware" if value.tzinfo is not None else "naive"
    kinds: dict[type, ClockKind] = {date: "naive", str: "text"}
    return kinds.get(type(value))


# ---------------------------------------------------------------------------------- values

_PLAIN: tuple[tuple[tuple[type, ...], Callable[[Any, ZoneInfo], Any]], ...] = (
    ((bool, int, float, str, Decimal), lambda v, tz: v),
    ((datetime,), lambda v, tz: to_utc(v, tz)),
    ((date, time, timedelta), lambda v, tz: v),
    ((bytes, bytearray, memoryview), lambda v, tz: bytes(v).hex()),
    ((uuid.UUID,), lambda v, tz: str(v)),
)


#: Exact types a record carries as the driver returns them (subclasses, e.g. datetime, which is a
#: date, go through `plain_value`). Checked per row with one C-level set test, so a row of such
#: values costs no Python call per column.
_AS_IS: frozenset[type] = frozenset({type(None), bool, int, float, str, Decimal, date, time, timedelta})


def plain_value(value: Any, tz: ZoneInfo) -> Any:
    """A column value as a record carries it (first matching row of the table above)."""
    if value is None:
        return None
    for types, convert in _PLAIN:
        if isinstance(value, types):
            return convert(value, tz)
    return value


def key_text(value: Any) -> str:
    """A key as text: integral decimals without '.0', bytes as hex, CHAR padding stripped."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value).strip()


#: Python type of the key column -> how a text key is turned back into it for lookup.
_KEY_PARSERS: dict[type, Callable[[str], Any]] = {int: int, Decimal: Decimal, float: float, str: str}

# ---------------------------------------------------------------------------------- errors

#: SQLSTATE class (first two characters) -> error.
_SQLSTATE_ERRORS: dict[str, type[SourceError]] = {
    "28": SourceAuthError,  # invalid authorization
    "08": SourceUnavailable,  # connection exception
    "3D": SourcePayloadError,  # no such database/catalog
    "42": SourcePayloadError,  # syntax error, no such table or column, no privilege
    "22": SourcePayloadError,  # data exception
    "40": SourceUnavailable,  # serialization failure, deadlock
    "53": SourceUnavailable,  # insufficient resources
    "57": SourceUnavailable,  # operator intervention, shutdown, statement cancelled
}

#: Driver messages without a SQLSTATE (connection time, SQLite, Oracle) -> error.
_MESSAGE_ERRORS: tuple[tuple[re.Pattern[str], type[SourceError]], ...] = (
    (
        re.compile(
            r"password authentication failed|role \".*\" does not exist|no pg_hba\.conf entry"
            r"|ORA-01017|ORA-28000|Login failed for user|access denied",
            re.I,
        ),
        SourceAuthError,
    ),
    (
        re.compile(
            r"database \".*\" does not exist|no such table|no such column|syntax error"
            r"|ORA-00942|ORA-00904|ORA-00933|Invalid object name|Invalid column name",
            re.I,
        ),
        SourcePayloadError,
    ),
)

#: Exception class -> error, most specific first; anything else from a driver is retried.
_CLASS_ERRORS: tuple[tuple[type[BaseException], type[SourceError]], ...] = (
    (sa_exc.NoSuchTableError, SourcePayloadError),
    (sa_exc.ProgrammingError, SourcePayloadError),
    (sa_exc.DataError, SourcePayloadError),
    (sa_exc.IntegrityError, SourcePayloadError),
    (ValueError, SourcePayloadError),  # a value the driver could not convert
    (sa_exc.SQLAlchemyError, SourceUnavailable),
    (OSError, SourceUnavailable),
)


def _sqlstate(error: BaseException) -> str | None:
    orig = getattr(error, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code is None and orig is not None and orig.args and isinstance(orig.args[0], str):
        code = orig.args[0] if re.fullmatch(r"[0-9A-Z]{5}", orig.args[0]) else None  # pyodbc
    return code if isinstance(code, str) else None


def classify(error: BaseException) -> type[SourceError]:
    """Which SourceError a database failure is: SQLSTATE, then driver message, then class."""
    state = _sqlstate(error)
    if state and state[:2] in _SQLSTATE_ERRORS:
        return _SQLSTATE_ERRORS[state[:2]]
    message = str(getattr(error, "orig", None) or error)
    for pattern, kind in _MESSAGE_ERRORS:
        if pattern.search(message):
            return kind
    for cls, kind in _CLASS_ERRORS:
        if isinstance(error, cls):
            return kind
    return SourceUnavailable


_HANDLED = (sa_exc.SQLAlchemyError, OSError, ValueError)

# ---------------------------------------------------------------------------------- entities


@dataclass(frozen=True, slots=True)
class _Entity:
    """A configured entity bound to real columns: what to select and how to page it."""

    name: str
    spec: SqlEntity
    label: str  # "table po.po_headers" or "query"
    columns: tuple[tuple[str, ColumnElement[Any]], ...]  # (name in Record.data, expression)
    names: tuple[str, ...]  # the columns' names in Record.data, in order
    key: ColumnElement[Any]
    changed: ColumnElement[Any]
    changed_name: str
    declared_clock: ClockKind | None
    key_type: type | None


@dataclass(frozen=True, slots=True)
class _Page:
    """One page: its records, how many rows the database returned, and where the next starts.

    The records are three parallel lists, made Records one by one as the consumer takes them: a
    backfill creates millions, and a page of Records (each one tracked by the garbage collector)
    lived long enough to reach the oldest generation and set off a full collection every few
    dozen pages. Keys, instants and (untracked) dicts of plain values cost the collector nothing.
    """

    keys: list[str]
    times: list[datetime]  # changed_at, aware UTC
    datas: list[dict[str, Any]]
    rows: int
    cursor: tuple[Any, Any] | None  # raw (changed_at, key) of the last row, as stored


@dataclass(frozen=True, slots=True)
class _PageQueries:
    """An entity's two page queries, built once: a backfill runs them thousands of times, and
    building a statement costs as much as reading a few hundred rows."""

    first: sa.Select[Any]  # binds mlc_start (the window's start) and mlc_hi
    after: sa.Select[Any]  # binds mlc_start (the cursor's changed_at), mlc_hi and mlc_key

    @classmethod
    def build(cls, entity: _Entity, clock: _Clock, selected: Sequence[ColumnElement[Any]]) -> _PageQueries:
        changed, key = entity.changed, entity.key
        # Bound as the clock's type, as a window bound is (`_Clock.bind`); the key as its column's.
        start = sa.bindparam("mlc_start", type_=_BIND_TYPES[clock.kind]())
        hi = sa.bindparam("mlc_hi", type_=_BIND_TYPES[clock.kind]())
        base = sa.select(*selected).order_by(changed, key).limit(entity.spec.page_size)
        # After the first page the range starts at the cursor itself (never before the window's
        # start): the OR is only a filter, so without this every page would walk the index from
        # the window's start, and a backfill would cost O(rows^2).
        after = sa.or_(changed > start, sa.and_(changed == start, key > sa.bindparam("mlc_key")))
        return cls(first=base.where(changed >= start, changed < hi),
                   after=base.where(changed >= start, changed < hi, after))


def _match(available: Sequence[str], wanted: str, entity: str, label: str) -> str:
    """The real column name for a configured one: exact, else case-insensitive (Oracle folds)."""
    if wanted in available:
        return wanted
    folded = [name for name in available if name.lower() == wanted.lower()]
    if len(folded) == 1:
        return folded[0]
    raise SourcePayloadError(
        f"entity {entity!r}: column {wanted!r} not found in {label}; it has {', '.join(available)}"
    )


def _split_table(name: str) -> tuple[str | None, str]:
    schema, _, table = name.rpartition(".")
    return schema or None, table


def _python_type(type_: sa.types.TypeEngine[Any]) -> type | None:
    try:
        return type_.python_type
    except NotImplementedError:
        return None


# ---------------------------------------------------------------------------------- source


@dataclass
class SqlSource:
    """A `Source` over SQL tables and queries; one engine, entities resolved lazily, once."""

    config: SqlSourceConfig
    name: str | None = None
    _url: URL = field(init=False)
    _engine: Engine = field(init=False)
    _tz: ZoneInfo = field(init=False)
    _to_utc: Callable[[Any], datetime | None] = field(init=False)
    _entities: dict[str, _Entity] = field(init=False, default_factory=dict)
    _clocks: dict[str, _Clock] = field(init=False, default_factory=dict)
    _key_types: dict[str, type] = field(init=False, default_factory=dict)
    _pages: dict[str, _PageQueries] = field(init=False, default_factory=dict)
    _lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    _writer: Any = field(init=False, default=None)  # sources.sql_writer.SqlStatusWriter, at first use

    def __post_init__(self) -> None:
        self._url = engine_url(self.config.url)
        self._tz = ZoneInfo(self.config.timezone)
        self._to_utc = utc_reader(self._tz)
        self._engine = _create_engine(self._url, self.config.connect_args)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for instrumentation: events, pool status)."""
        return self._engine

    @property
    def safe_url(self) -> str:
        """The configured URL with its password hidden (not the driver-level rewrite)."""
        return make_url(self.config.url).render_as_string(hide_password=True)

    # -- Source protocol ------------------------------------------------------------------

    async def check(self) -> CheckResult:
        """Connect, name the server, and read one row of every entity."""
        details = await self._run("connect", self._identity)
        for name in self.config.entities:
            entity = await self._entity(name)
            sample = await self._run(f"read {name}", partial(self._sample, entity=entity))
            details[f"entity {name}"] = f"ok ({entity.label}, {'has rows' if sample else 'empty'})"
        return CheckResult(system=f"sql ({self._engine.dialect.name})", details=details)

    async def fetch(self, entity: str, since: datetime, until: datetime) -> AsyncIterator[Record]:
        """Records changed in [since, until), oldest first, ties by key; one page in memory."""
        require_aware(since, "since")
        require_aware(until, "until")
        self._known(entity)
        if since >= until:
            return
        resolved = await self._entity(entity)
        clock = await self._clock(resolved)
        if clock is None:  # a query with no timestamped rows yet
            return
        lo, hi = clock.bounds(since, until)
        queries = self._pages.get(entity)
        if queries is None:
            queries = self._pages[entity] = _PageQueries.build(resolved, clock, self._selected(resolved))
        cursor: tuple[Any, Any] | None = None
        while True:
            page = partial(self._page, entity=resolved, queries=queries, lo=lo, hi=hi, after=cursor)
            found = await self._run(f"fetch {entity}", page)
            for key, changed_at, data in zip(found.keys, found.times, found.datas, strict=True):
                if since <= changed_at < until:
                    yield Record(entity, key, changed_at, data)
            if found.rows < resolved.spec.page_size:
                return
            if found.cursor == cursor:
                raise SourcePayloadError(f"entity {entity!r}: paging did not advance past {cursor!r}")
            cursor = found.cursor

    async def lookup(self, entity: str, key: str) -> Record | None:
        """The row whose key renders as `key` (latest by changed_at if the key repeats)."""
        resolved = await self._entity(entity)
        parse = await self._key_parser(resolved)
        try:
            wanted = parse(key)
        except (ValueError, InvalidOperation):
            return None  # e.g. "n/a" against an integer key: no such row
        rows = await self._run(f"lookup {entity}", lambda c: self._one(c, resolved, wanted))
        return rows[0] if rows else None

    def writes_back(self, delivery: Delivery) -> bool:
        """Whether this delivery is one `write_back` records (its entity and status are configured)."""
        return self.config.write_back is not None and self.config.write_back.wants(delivery)

    @property
    def rejected_tries(self) -> int:
        """Tries before a write-back the database refuses (no such row, a constraint) is given up."""
        return self.config.write_back.rejected_tries if self.config.write_back else 3

    async def write_back(self, delivery: Delivery) -> None:
        """Record one final status in the configured columns (UPDATE of the row, or INSERT)."""
        wb = self.config.write_back
        if wb is None or not wb.wants(delivery):
            return
        if self._writer is None:
            from ml_connector.sources.sql_writer import SqlStatusWriter  # the writer builds on this module

            self._writer = SqlStatusWriter(wb, self.config.entities, self.config.url, self._tz, self.name)
        await self._writer.write(delivery)

    async def aclose(self) -> None:
        """Close pooled connections."""
        await asyncio.to_thread(self._engine.dispose)
        if self._writer is not None:
            await self._writer.aclose()

    # -- resolution -------------------------------------------------------------------------

    def _known(self, name: str) -> None:
        if name not in self.config.entities:
            known = ", ".join(self.config.entities)
            raise ConfigError(f"source {self.name or 'sql'!r} has no entity {name!r}; it has {known}")

    async def _entity(self, name: str) -> _Entity:
        self._known(name)
        async with self._lock:
            if name not in self._entities:
                spec = self.config.entities[name]
                self._entities[name] = await self._run(
                    f"describe {name}", lambda c: self._resolve(c, name, spec)
                )
        return self._entities[name]

    def _resolve(self, conn: Connection, name: str, spec: SqlEntity) -> _Entity:
        sqlite = conn.dialect.name == "sqlite"
        if spec.table is not None:
            schema, table_name = _split_table(spec.table)
            table = sa.Table(table_name, sa.MetaData(), schema=schema, autoload_with=conn)
            label = f"table {spec.table}"
            names = [column.name for column in table.columns]
            # SQLite stores text whatever the declared type: read it raw, as stored.
            exprs: dict[str, ColumnElement[Any]] = {
                n: sa.type_coerce(table.c[n], sa.types.NullType()) if sqlite else table.c[n]
                for n in names
            }
            declared = {n: _clock_from_type(table.c[n].type) for n in names}
            types = {n: _python_type(table.c[n].type) for n in names}
        else:
            label = "query"
            probe = sa.text(spec.query or "").columns().subquery("mlc_src")
            names = list(conn.execute(sa.select(sa.text("*")).select_from(probe).where(sa.false())).keys())
            wrapped = sa.text(spec.query or "").columns(*[sa.column(n) for n in names]).subquery("mlc_src")
            exprs = {n: wrapped.c[n] for n in names}
            declared = dict.fromkeys(names)
            types = dict.fromkeys(names)
        key = _match(names, spec.key, name, label)
        changed = _match(names, spec.changed_at, name, label)
        if spec.columns is None:
            wanted = [(n, n) for n in names]
        else:
            wanted = [(c, _match(names, c, name, label)) for c in spec.columns]
        shown = {real for _, real in wanted}
        for configured, real in ((spec.key, key), (spec.changed_at, changed)):
            if real not in shown:
                wanted.append((configured, real))
                shown.add(real)
        clock = "text" if sqlite else declared[changed]
        if not sqlite and spec.table is not None and clock is None:
            raise SourcePayloadError(
                f"entity {name!r}: column {changed!r} in {label} is not a date/time column"
            )
        return _Entity(
            name=name,
            spec=spec,
            label=label,
            columns=tuple((shown_name, exprs[real]) for shown_name, real in wanted),
            names=tuple(shown_name for shown_name, _ in wanted),
            key=exprs[key],
            changed=exprs[changed],
            changed_name=next(shown_name for shown_name, real in wanted if real == changed),
            declared_clock=clock,
            key_type=types[key],
        )

    async def _clock(self, entity: _Entity) -> _Clock | None:
        """The entity's clock: from the declared column type, else from one sampled value."""
        if entity.name not in self._clocks:
            kind = entity.declared_clock
            if kind is None:
                sample = await self._sampled(entity)
                if sample is None:
                    return None
                kind = _clock_from_value(sample[1])
                if kind is None:
                    raise SourcePayloadError(
                        f"entity {entity.name!r}: {entity.spec.changed_at!r} holds "
                        f"{type(sample[1]).__name__} values, not dates or times"
                    )
            self._clocks[entity.name] = _Clock(kind, self._tz)
        return self._clocks[entity.name]

    async def _key_parser(self, entity: _Entity) -> Callable[[str], Any]:
        """How a text key becomes a value of the key column's type (sampled for queries)."""
        if entity.name not in self._key_types:
            key_type = entity.key_type
            if key_type is None:
                sample = await self._sampled(entity)
                key_type = type(sample[0]) if sample is not None else str
            self._key_types[entity.name] = key_type
        return _KEY_PARSERS.get(self._key_types[entity.name], str)

    async def _sampled(self, entity: _Entity) -> tuple[Any, Any] | None:
        return await self._run(f"describe {entity.name}", lambda c: self._sample(c, entity, dated=True))

    # -- queries (run in a worker thread) ---------------------------------------------------

    def _identity(self, conn: Connection) -> dict[str, str]:
        dialect = conn.dialect
        version = ".".join(str(part) for part in (dialect.server_version_info or ()))
        database, user = self._url.database or "", self._url.username or ""
        sql = _IDENTITY_SQL.get(dialect.name)
        if sql is not None:
            found = conn.execute(sa.text(sql)).one()
            database, user = str(found[0] or database), str(found[1] or user)
        return {
            "dialect": f"{dialect.name}+{dialect.driver}",
            "server_version": version,
            "database": database,
            "user": user,
            "url": self.safe_url,
        }

    def _sample(self, conn: Connection, entity: _Entity, dated: bool = False) -> tuple[Any, Any] | None:
        stmt = sa.select(entity.key, entity.changed).limit(1)
        if dated:
            stmt = stmt.where(entity.changed.is_not(None))
        row = conn.execute(stmt).first()
        return None if row is None else (row[0], row[1])

    def _page(
        self,
        conn: Connection,
        entity: _Entity,
        queries: _PageQueries,
        lo: Any,
        hi: Any,
        after: tuple[Any, Any] | None,
    ) -> _Page:
        if after is None:
            rows = conn.execute(queries.first, {"mlc_start": lo, "mlc_hi": hi}).all()
        else:
            rows = conn.execute(queries.after, {"mlc_start": after[0], "mlc_hi": hi, "mlc_key": after[1]}).all()
        cursor = (rows[-1][-1], rows[-1][-2]) if rows else None
        return _Page(*self._converted(entity, rows), len(rows), cursor)

    def _one(self, conn: Connection, entity: _Entity, key: Any) -> list[Record]:
        stmt = (
            sa.select(*self._selected(entity))
            .where(entity.key == key)
            .order_by(entity.changed.desc())
            .limit(1)
        )
        return self._records(entity, conn.execute(stmt).all())

    @staticmethod
    def _selected(entity: _Entity) -> list[ColumnElement[Any]]:
        return [
            *(expr.label(f"c{i}") for i, (_, expr) in enumerate(entity.columns)),
            entity.key.label("mlc_key"),
            entity.changed.label("mlc_changed"),
        ]

    def _records(self, entity: _Entity, rows: Sequence[sa.Row[Any]]) -> list[Record]:
        """Rows (the entity's columns, then key and changed_at) as records."""
        keys, times, datas = self._converted(entity, rows)
        return [Record(entity.name, *parts) for parts in zip(keys, times, datas, strict=True)]

    def _converted(
        self, entity: _Entity, rows: Sequence[sa.Row[Any]]
    ) -> tuple[list[str], list[datetime], list[dict[str, Any]]]:
        """Rows (the entity's columns, then key and changed_at) as records' keys, times and data.

        The hot loop of every poll: a row whose values all need no conversion is turned into a
        dict by C-level calls only; others convert just the values that need it.
        """
        names, tz, changed_name, entity_name = entity.names, self._tz, entity.changed_name, entity.name
        read_time = self._to_utc
        width = len(names)
        keys: list[str] = []
        times: list[datetime] = []
        datas: list[dict[str, Any]] = []
        for row in rows:
            raw_key, raw_changed = row[width], row[width + 1]
            changed_at = read_time(raw_changed)
            if changed_at is None or raw_key is None:
                raise SourcePayloadError(
                    f"entity {entity_name!r}: row with key {raw_key!r} has changed_at {raw_changed!r}, "
                    "which is not a date/time"
                )
            # Stops before the key and changed_at copies; no `strict=` (a keyword makes zip ~50% slower).
            data = dict(zip(names, row))  # noqa: B905
            if not _AS_IS.issuperset(map(type, row)):
                for name, value in data.items():  # replacing values while iterating is allowed
                    if type(value) not in _AS_IS and name != changed_name:
                        data[name] = plain_value(value, tz)
            data[changed_name] = changed_at
            keys.append(str(raw_key) if type(raw_key) is int else key_text(raw_key))
            times.append(changed_at)
            datas.append(data)
        return keys, times, datas

    # -- error boundary ---------------------------------------------------------------------

    async def _run(self, what: str, work: Callable[[Connection], T]) -> T:
        def in_thread() -> T:
            with self._engine.connect() as conn:
                return work(conn)

        try:
            return await asyncio.to_thread(in_thread)
        except SourceError as error:
            if error.source is not None or self.name is None:
                raise
            raise type(error)(str(error), source=self.name) from error
        except _HANDLED as error:
            kind = classify(error)
            raise kind(f"{what} at {self.safe_url}: {self._cause(error)}", source=self.name) from error

    def _cause(self, error: BaseException) -> str:
        """The driver's own words, first line only, with the password scrubbed."""
        text = str(getattr(error, "orig", None) or error).strip().splitlines()
        message = text[0] if text else type(error).__name__
        if self._url.get_backend_name() == "sqlite" and message == "unable to open database file":
            message += " (it must exist and be readable: the source opens it read-only)"
        password = self._url.password
        return message.replace(str(password), "***") if password else message


#: dialect -> SQL naming the database and user the connection reached.
_IDENTITY_SQL: dict[str, str] = {
    "postgresql": "SELECT current_database(), current_user",
    "oracle": "SELECT sys_context('USERENV', 'DB_NAME'), USER FROM dual",
    "mssql": "SELECT DB_NAME(), SUSER_SNAME()",
    "mysql": "SELECT DATABASE(), CURRENT_USER()",
}


def _create_engine(url: URL, connect_args: Mapping[str, Any]) -> Engine:
    try:
        return sa.create_engine(url, connect_args=dict(connect_args), pool_pre_ping=True)
    except (sa_exc.NoSuchModuleError, ImportError) as error:
        extra = DRIVER_EXTRAS.get(url.get_backend_name())
        hint = f"; install it with: pip install 'ml-connector[{extra}]'" if extra else ""
        raise ConfigError(f"the database driver for {url.drivername!r} is not installed{hint}") from error


def build(config: SqlSourceConfig, context: Mapping[str, Any]) -> SqlSource:
    """Registry factory: `context['name']`, when given, prefixes error messages."""
    name = context.get("name")
    return SqlSource(config, name=str(name) if name is not None else None)
