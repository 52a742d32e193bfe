"""store.polls._executemany: the prepared INSERT stores exactly what SQLAlchemy's executemany stores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, Insert, Table, event, text

from ml_connector.core.models import Status
from ml_connector.store import polls
from ml_connector.store.auditrows import audit_row
from ml_connector.store.crypto import KeyRing
from ml_connector.store.sql import SqlStore
from ml_connector.store.tables import audit, notifications

from .builders import T0, notification

CHICAGO = timezone(timedelta(hours=-5))


def _notification_rows(keyring: KeyRing, prefix: str) -> list[dict[str, Any]]:
    """Rows as commit_poll builds them: pending and failed, None and non-ASCII text, other offsets."""
    notes = [
        notification(1),
        notification(2, status=Status.FAILED, reason="no usable phone number (PHONE: empty)", write_back="erp"),
        notification(3, body="Grüße — 📦 ready", record_changed_at=T0.astimezone(CHICAGO)),
        notification(4, next_attempt_at=T0 + timedelta(microseconds=7), segments=3),
    ]
    rows = [polls._notification_row(keyring, x, T0) for x in notes]
    for row in rows:
        row["idempotency_key"] = f"{prefix}:{row['idempotency_key']}"
    return rows


def _audit_rows(prefix: str) -> list[dict[str, Any]]:
    return [
        audit_row(T0, "created", nid=1, flow=f"{prefix}-flow", status="pending", segments=1),
        audit_row(T0.astimezone(CHICAGO), "failed", nid=2, flow=f"{prefix}-flow", status="failed",
                  reason="bad number +13125550142"),
        audit_row(T0 + timedelta(microseconds=1), "poll", nid=None, flow=f"{prefix}-flow", status=None, inserted=2),
    ]


def _stored(conn: Connection, table: Table, column: str, like: str) -> list[tuple[Any, ...]]:
    """Every column except the id, as the driver returns it (bytes, text, timestamps)."""
    columns = ", ".join(c.name for c in table.columns if c.name != "id")
    query = text(f"SELECT {columns} FROM {table.name} WHERE {column} LIKE :like ORDER BY id")  # noqa: S608
    return [tuple(r) for r in conn.execute(query, {"like": like})]


def _both_ways(conn: Connection, stmt: Insert, label: str,
               general: Sequence[dict[str, Any]], prepared: Sequence[dict[str, Any]]) -> None:
    conn.execute(stmt, list(general))  # SQLAlchemy's own executemany
    polls._executemany(conn, label, stmt, prepared)


def test_notifications_are_stored_as_sqlalchemy_stores_them(
    make_store: Callable[..., SqlStore], keyring: KeyRing
) -> None:
    store = make_store()
    general, prepared = _notification_rows(keyring, "a"), _notification_rows(keyring, "b")
    for a, b in zip(general, prepared, strict=True):  # same ciphertexts both ways, keys apart
        b.update({k: v for k, v in a.items() if k != "idempotency_key"})
    with store._engine.begin() as conn:
        _both_ways(conn, notifications.insert(), "test-notifications", general, prepared)
        a = _stored(conn, notifications, "idempotency_key", "a:%")
        b = _stored(conn, notifications, "idempotency_key", "b:%")
    assert len(a) == len(b) == 4
    assert [row[1:] for row in a] == [row[1:] for row in b]
    assert [[type(v) for v in row] for row in a] == [[type(v) for v in row] for row in b]


def test_audit_rows_are_stored_as_sqlalchemy_stores_them(make_store: Callable[..., SqlStore]) -> None:
    store = make_store()
    with store._engine.begin() as conn:
        _both_ways(conn, audit.insert(), "test-audit", _audit_rows("a"), _audit_rows("b"))
        a = _stored(conn, audit, "flow", "a-flow")
        b = _stored(conn, audit, "flow", "b-flow")
    assert len(a) == len(b) == 3
    assert [row[:2] + row[3:] for row in a] == [row[:2] + row[3:] for row in b]  # all but the flow
    assert [[type(v) for v in row] for row in a] == [[type(v) for v in row] for row in b]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_driver_gets_the_values_sqlalchemy_would_send(
    make_store: Callable[..., SqlStore], keyring: KeyRing, backend: str
) -> None:
    """On SQLite: SQLAlchemy's executemany of one-row tuples, ours in multi-row statements; the
    values, their order and their Python types reaching the driver are the same."""
    store = make_store()
    sent: list[tuple[str, bool, list[Any]]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.startswith("INSERT"):
            sent.append((statement, many, list(parameters)))

    rows = [row for i in range(75) for row in _notification_rows(keyring, f"c{i}")]  # 300
    event.listen(store._engine, "before_cursor_execute", capture)
    try:
        with store._engine.begin() as conn:
            stmt = store._insert(notifications).on_conflict_do_nothing(
                index_elements=[notifications.c.idempotency_key])
            conn.execute(stmt, rows)
            conn.execute(notifications.delete())
            polls._executemany(conn, "test-driver", stmt, rows)
    finally:
        event.remove(store._engine, "before_cursor_execute", capture)
    general, *prepared = sent
    assert general[1] and not any(many for _, many, _ in prepared)
    assert [statement.count("), (") + 1 for statement, _, _ in prepared] == [300]
    expected = [value for row in general[2] for value in row]
    got = [value for _, _, values in prepared for value in values]
    assert got == expected
    assert [type(v) for v in got] == [type(v) for v in expected]


def test_many_rows_keep_their_order(
    make_store: Callable[..., SqlStore], keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids follow the rows' order across statements (here of 7 rows at most), on every backend."""
    monkeypatch.setattr(polls, "_MOST_ROWS", 7)
    store = make_store()
    rows = [row for i in range(130) for row in _notification_rows(keyring, f"d{i}")]  # 520 rows
    with store._engine.begin() as conn:
        polls._executemany(conn, "test-order-by-7", notifications.insert(), rows)
        stored = list(conn.execute(text("SELECT idempotency_key FROM notifications ORDER BY id")).scalars())
    assert stored == [row["idempotency_key"] for row in rows]
