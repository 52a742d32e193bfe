"""SQL queue write-back: final status, SID, error code and times into configured columns of the queue
row, or a row of a status table, through the write-back queue and runner EBS uses. SQLite always,
PostgreSQL with MLC_TEST_POSTGRES_URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest
import sqlalchemy as sa

from ml_connector.core.models import StatusEvent
from ml_connector.core.retry import RetryPolicy
from ml_connector.runtime.writeback import WriteBackRunner
from ml_connector.sources.sql import SqlSource, SqlSourceConfig, build, engine_url
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.sql import SqlStore
from tests.store.builders import T0, notification, poll
from tests.support.clock import ManualClock

SID = "SM" + "d" * 32
QUEUE_COLUMNS = {"delivery_status": "status", "twilio_sid": "message_sid", "error_code": "error_code",
                 "sent_at": "sent_at", "final_at": "final_at"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def erp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, sa.Engine]]:
    """(backend, url, engine) of a database holding the queue table and a status table."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'erp.db'}"
        engine = sa.create_engine(url)
        ts = "TEXT"
    else:
        url = request.getfixturevalue("pg_schema_url")
        engine = sa.create_engine(engine_url(url))
        ts = "TIMESTAMP"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE sms_queue (id INTEGER PRIMARY KEY, created_at {ts}, phone TEXT, "
                             f"message TEXT, delivery_status TEXT, twilio_sid TEXT, error_code INTEGER, "
                             f"sent_at {ts}, final_at {ts})"))
        conn.execute(sa.text(f"CREATE TABLE sms_status (queue_id TEXT, status TEXT, sid TEXT, code INTEGER, "
                             f"final_at {ts}, note TEXT)"))
        conn.execute(sa.text("INSERT INTO sms_queue (id, created_at, phone, message) VALUES "
                             "(1, '2024-05-01 06:55:00', '+13125550142', 'hello'), "
                             "(2, '2024-05-01 06:56:00', '+13125550143', 'again')"))
    try:
        yield request.param, url, engine
    finally:
        engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    made = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
    yield made
    made.close()


@pytest.fixture
async def sources() -> AsyncIterator[list[SqlSource]]:
    made: list[SqlSource] = []
    yield made
    for source in made:
        await source.aclose()


def source(url: str, made: list[SqlSource], write_back: dict[str, Any]) -> SqlSource:
    config = SqlSourceConfig.model_validate({
        "type": "sql", "url": url, "timezone": "America/Chicago",
        "entities": {"sms_queue": {"table": "sms_queue", "key": "id", "changed_at": "created_at"}},
        "write_back": write_back,
    })
    built = build(config, {"name": "erp"})
    made.append(built)
    return built


def final_status(store: SqlStore, key: str, status: str, code: int | None) -> None:
    """A queue row's notification accepted by Twilio and then final (`status`, `code`)."""
    store.commit_poll(poll(notification(int(key), entity="sms_queue", write_back="erp")))
    (claimed,) = store.claim_due("w", T0, timedelta(seconds=60), 10)
    store.finish_attempt(AttemptResult(claimed.id, claimed.attempt_no, Outcome.ACCEPTED, T0, T0, provider_id=SID))
    store.apply_status(StatusEvent(SID, status, code, T0 + timedelta(minutes=1), {"MessageSid": SID}))


def runner(store: SqlStore, src: SqlSource, clock: ManualClock) -> WriteBackRunner:
    return WriteBackRunner(store, {"erp": src}, worker="wb", clock=clock, policy=RetryPolicy.immediate(20))


def rows(engine: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def wall(value: Any) -> str:
    """A stored time as 'YYYY-MM-DD HH:MM:SS' (SQLite keeps text, PostgreSQL a timestamp)."""
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


async def test_the_final_status_is_written_into_the_queue_row(
        erp: tuple[str, str, sa.Engine], store: SqlStore, sources: list[SqlSource]) -> None:
    _, url, engine = erp
    src = source(url, sources, {"entities": {"sms_queue": {"columns": QUEUE_COLUMNS}}})
    final_status(store, "1", "undelivered", 30003)
    clock = ManualClock(T0 + timedelta(minutes=2))

    assert await runner(store, src, clock).run_once() == 1

    ((status, sid, code, sent, final),) = rows(
        engine, "SELECT delivery_status, twilio_sid, error_code, sent_at, final_at FROM sms_queue WHERE id = 1")
    assert (status, sid, code) == ("undelivered", SID, 30003)
    # Times in the source's time zone (America/Chicago, UTC-5 in May), as the queue keeps them.
    assert wall(final) == "2024-05-01 07:01:00"
    assert wall(sent).startswith("2024-05-01 ")
    assert rows(engine, "SELECT delivery_status FROM sms_queue WHERE id = 2") == [(None,)]
    assert [(e.status, e.detail.get("source")) for e in store.audit(None, None) if e.kind == "write_back"] == [
        ("done", "erp")]


async def test_a_status_table_gets_one_row_per_final_status(
        erp: tuple[str, str, sa.Engine], store: SqlStore, sources: list[SqlSource]) -> None:
    _, url, engine = erp
    src = source(url, sources, {
        "entities": {"sms_queue": {"insert": "sms_status", "columns": {
            "queue_id": "record_key", "status": "status", "sid": "message_sid", "code": "error_code",
            "final_at": "final_at"}}},
        "status_codes": {"delivered": "D"},
    })
    final_status(store, "2", "delivered", None)

    await runner(store, src, ManualClock(T0 + timedelta(minutes=2))).run_once()

    ((queue_id, status, sid, code, final, note),) = rows(engine, "SELECT * FROM sms_status")
    assert (queue_id, status, sid, code, note) == ("2", "D", SID, None, None)
    assert wall(final) == "2024-05-01 07:01:00"
    assert rows(engine, "SELECT delivery_status FROM sms_queue") == [(None,), (None,)]  # the queue untouched


async def test_a_queue_row_that_is_gone_is_given_up_after_bounded_tries_with_the_reason(
        erp: tuple[str, str, sa.Engine], store: SqlStore, sources: list[SqlSource]) -> None:
    _, url, engine = erp
    src = source(url, sources, {"rejected_tries": 2, "entities": {"sms_queue": {"columns": QUEUE_COLUMNS}}})
    final_status(store, "7", "delivered", None)  # no queue row 7
    clock = ManualClock(T0 + timedelta(minutes=2))
    wb = runner(store, src, clock)
    for _ in range(4):
        clock.advance(timedelta(minutes=1))
        await wb.run_once()

    outcomes = [(e.status, str(e.detail.get("message"))) for e in store.audit(None, None) if e.kind == "write_back"]
    assert [status for status, _ in outcomes] == ["retry", "gave_up"]
    assert "no row in sms_queue with id = '7'" in outcomes[-1][1] and "2 time(s)" in outcomes[-1][1]


async def test_statuses_and_entities_not_configured_are_skipped(
        erp: tuple[str, str, sa.Engine], store: SqlStore, sources: list[SqlSource]) -> None:
    _, url, engine = erp
    src = source(url, sources, {"statuses": ["delivered"], "entities": {"sms_queue": {"columns": QUEUE_COLUMNS}}})
    final_status(store, "1", "undelivered", 30003)

    await runner(store, src, ManualClock(T0 + timedelta(minutes=2))).run_once()

    assert [e.status for e in store.audit(None, None) if e.kind == "write_back"] == ["skipped"]
    assert rows(engine, "SELECT delivery_status FROM sms_queue WHERE id = 1") == [(None,)]


async def test_an_unknown_column_names_the_table_and_its_columns(
        erp: tuple[str, str, sa.Engine], store: SqlStore, sources: list[SqlSource]) -> None:
    _, url, _ = erp
    src = source(url, sources, {"rejected_tries": 1,
                                "entities": {"sms_queue": {"columns": {"msg_status": "status"}}}})
    final_status(store, "1", "delivered", None)

    await runner(store, src, ManualClock(T0 + timedelta(minutes=2))).run_once()

    (message,) = [str(e.detail.get("message")) for e in store.audit(None, None) if e.kind == "write_back"]
    assert "column 'msg_status' not found in table sms_queue" in message and "delivery_status" in message


def test_the_reading_side_of_a_sqlite_source_stays_read_only(tmp_path: Path) -> None:
    from ml_connector.sources.sql_writer import writable_url

    assert str(engine_url(f"sqlite:///{tmp_path / 'erp.db'}").database).endswith("?mode=ro")
    assert str(writable_url(f"sqlite:///{tmp_path / 'erp.db'}").database).endswith("?mode=rw")


@pytest.mark.parametrize(("write_back", "message"), [
    ({"entities": {"nope": {"columns": {"a": "status"}}}}, "write_back.entities.nope: no such entity"),
    ({"entities": {"recent": {"columns": {"a": "status"}}}}, "entity 'recent' is a query: name the table"),
    ({"entities": {"sms_queue": {"update": "a", "insert": "b", "columns": {"a": "status"}}}}, "not both"),
    ({"entities": {"sms_queue": {"columns": {"a": "colour"}}}}, "write_back.entities.sms_queue.columns.a"),
    ({"statuses": ["sent"], "entities": {"sms_queue": {"columns": {"a": "status"}}}}, "only final statuses"),
])
def test_write_back_config_errors_name_the_key(write_back: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        SqlSourceConfig.model_validate({
            "type": "sql", "url": "sqlite:///erp.db",
            "entities": {"sms_queue": {"table": "sms_queue", "key": "id", "changed_at": "created_at"},
                         "recent": {"query": "SELECT * FROM sms_queue", "key": "id", "changed_at": "created_at"}},
            "write_back": write_back,
        })
    assert message in str(caught.value)


def test_flows_of_a_sql_source_with_write_back_queue_their_final_statuses(tmp_path: Path) -> None:
    """The connector marks the flow's notifications for write-back, as it does for EBS."""
    import yaml

    from ml_connector.app import Connector
    from ml_connector.config import load_config
    from tests.cli.conftest import write_config

    def with_write_back(config: dict[str, Any]) -> None:
        config["sources"]["erp"]["write_back"] = {"entities": {
            name: {"insert": "notification_status", "columns": {"record": "record_key", "status": "status"}}
            for name in config["sources"]["erp"]["entities"]}}

    path = write_config(tmp_path, tweak=with_write_back)
    assert yaml.safe_load(path.read_text())["sources"]["erp"]["write_back"]
    connector = Connector(load_config(path, {}), env={})
    try:
        assert {f.write_back_source for f in connector.flows.values() if f.spec.source == "erp"} == {"erp"}
    finally:
        connector.store.close()
