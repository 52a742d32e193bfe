"""Personal data never reaches the database in clear: phone numbers, bodies, raw callbacks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from ml_connector.core.models import Status, StatusEvent
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.rotation import sealed_tables
from ml_connector.store.sql import SqlStore

from .builders import BODY, PG_URL, PHONE, T0, libpq, notification, poll

NEEDLES = [PHONE, PHONE[2:], "312-555-0142", BODY, "Dana Whitfield"]


def exercise(store: SqlStore) -> None:
    """Touch every table that could hold a phone number or body."""
    bad = notification(9, status=Status.FAILED, reason=f"not a mobile number: {PHONE}", write_back="ebs")
    ids = store.commit_poll(poll(notification(1, write_back="ebs"), notification(2, write_back="ebs"), bad))
    claimed = store.claim_due("w", T0, timedelta(seconds=30), 10)
    assert {c.id for c in claimed} == set(ids[:2])
    first, second = claimed
    store.finish_attempt(AttemptResult(first.id, 1, Outcome.ACCEPTED, T0, T0, provider_id="SM1"))
    store.finish_attempt(
        AttemptResult(
            second.id,
            1,
            Outcome.PERMANENT,
            T0,
            T0,
            error_code=21211,
            error_message=f"The 'To' number {PHONE} is not a valid phone number.",
        )
    )
    raw = {
        "MessageSid": "SM1",
        "MessageStatus": "undelivered",
        "To": PHONE,
        "From": "+13125550100",
        "ErrorMessage": f"Unreachable {PHONE}",
    }
    store.apply_status(StatusEvent("SM1", "undelivered", 30003, T0, raw))
    store.apply_status(StatusEvent("SM-orphan", "sent", None, T0, {**raw, "MessageSid": "SM-orphan"}))
    store.replay([second.id], T0, "ops")
    tasks = store.claim_write_backs("wb", T0, timedelta(seconds=30), 10)
    assert len(tasks) == 3  # failed before sending, failed at the provider, undelivered
    for task in tasks:
        store.finish_write_back(task.id, ok=False, error=f"EBS rejected {PHONE}", next_attempt_at=T0, now=T0)
    view = store.get_notification(first.id)
    assert view is not None and (view.recipient, view.body) == (PHONE, BODY)  # readable through the store


def test_sqlite_file_and_wal_hold_no_plaintext(tmp_path: Path, keyring: object) -> None:
    db = tmp_path / "store.db"
    store = SqlStore(f"sqlite:///{db}", keyring)  # type: ignore[arg-type]
    try:
        exercise(store)
        files = [p for p in (db, Path(f"{db}-wal")) if p.exists()]
        assert Path(f"{db}-wal") in files  # WAL mode: most recent pages live in the -wal file
        contents = b"".join(p.read_bytes() for p in files)
    finally:
        store.close()
    contents += db.read_bytes()  # after the checkpoint at close
    assert b"sending" in contents or b"queued" in contents  # the scan does see stored text
    for needle in NEEDLES:
        assert needle.encode() not in contents, needle


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="MLC_TEST_POSTGRES_URL not set")
def test_postgres_columns_hold_no_plaintext(pg_schema: tuple[str, str], keyring: object) -> None:
    schema, url = pg_schema
    store = SqlStore(url, keyring)  # type: ignore[arg-type]
    try:
        exercise(store)
    finally:
        store.close()
    assert PG_URL
    with psycopg.connect(libpq(PG_URL)) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s",
            [schema],
        ).fetchall()
        texts = [(t, c) for t, c, kind in columns if kind in ("text", "character varying")]
        blobs = [(t, c) for t, c, kind in columns if kind == "bytea"]
        assert len(texts) > 20
        assert set(blobs) == {(t.name, c.name) for t in sealed_tables() for c in t.columns}  # every bytea is sealed
        for needle in NEEDLES:
            for table, column in texts:
                hits = conn.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" LIKE %s', [f"%{needle}%"]
                ).fetchone()
                assert hits == (0,), (table, column, needle)
            for table, column in blobs:
                hits = conn.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" '
                    f"WHERE position(convert_to(%s, 'UTF8') in \"{column}\") > 0",
                    [needle],
                ).fetchone()
                assert hits == (0,), (table, column, needle)
        sanity = conn.execute(
            f'SELECT count(*) FROM "{schema}".notifications WHERE status LIKE %s', ["%"]
        ).fetchone()
        assert sanity == (3,)
