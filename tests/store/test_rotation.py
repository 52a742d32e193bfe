"""Master key rotation: every sealed value moves to the new key in batches, resumable after a crash."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import LargeBinary, create_engine, select

from ml_connector.core.models import StatusEvent
from ml_connector.store.crypto import KeyMismatchError, KeyRing
from ml_connector.store.engine import parse_url
from ml_connector.store.port import NotificationFilter
from ml_connector.store.rotation import Progress, sealed_tables
from ml_connector.store.sql import SqlStore
from ml_connector.store.tables import metadata

from .builders import BODY, PHONE, T0, enqueue, notification, poll

OLD, NEW = b"o" * 32, b"n" * 32
ROWS = 7


def at() -> Any:
    return T0 + timedelta(hours=1)


class Crash(Exception):
    """Stands for the process dying between two batches."""


def fill(store: SqlStore) -> list[int]:
    ids = enqueue(store, *[notification(i, body=f"{BODY} #{i}") for i in range(1, ROWS + 1)])
    for i in range(1, 4):
        store.apply_status(StatusEvent(f"SM{i}", "delivered", None, T0, {"To": PHONE, "n": str(i)}))
    store.secrets().set("EBS_PASSWORD", "welcome1", now=T0, actor="test")
    store.secrets().set("SAP_TOKEN", "tok-123", now=T0, actor="test")
    return ids


def raw_blobs(url: str) -> list[tuple[str, bytes]]:
    """Every sealed value as stored, read beside the store (as an auditor's query would)."""
    engine = create_engine(parse_url(url))
    try:
        with engine.connect() as conn:
            found: list[tuple[str, bytes]] = []
            for spec in sealed_tables():
                for column in spec.columns:
                    found += [(spec.name, bytes(v)) for v in conn.execute(select(column)).scalars()]
            return found
    finally:
        engine.dispose()


def readable_by(ring: KeyRing, blob: bytes) -> bool:
    try:
        ring.decrypt(blob)
    except KeyMismatchError:
        return False
    return True


def test_every_encrypted_column_is_sealed_and_found() -> None:
    """A new encrypted column must use the Sealed type, or rotation would leave it behind."""
    binary = {(t.name, c.name) for t in metadata.tables.values() for c in t.columns
              if isinstance(c.type, LargeBinary) or getattr(c.type, "impl", None).__class__ is LargeBinary}
    sealed = {(t.name, c.name) for t in sealed_tables() for c in t.columns}
    assert sealed == binary
    assert {("notifications", "recipient_enc"), ("notifications", "body_enc"), ("delivery_events", "raw_enc"),
            ("secrets", "value_enc")} <= sealed


def test_interrupted_rotation_resumes_and_ends_on_the_new_key(db_url: str, make_store: Callable[..., SqlStore]) -> None:
    old_only, both, new_only = KeyRing(OLD), KeyRing(NEW, [OLD]), KeyRing(NEW)
    fill(make_store(keyring=old_only)).sort()
    total = len(raw_blobs(db_url))
    assert total == ROWS * 2 + 3 + 2

    store = make_store(keyring=both)  # the new key first, the old one still read
    seen: list[Progress] = []

    def crash_after_two(progress: Progress) -> None:
        seen.append(Progress.parse(progress.text()))
        if len(seen) == 2:
            raise Crash

    with pytest.raises(Crash):
        store.rotation().run(now=at, actor="test", batch=2, on_batch=crash_after_two)

    # mid-way: a marker; rotated rows are readable with the new key only, the rest with the old
    marker = store.rotation().marker()
    assert marker is not None and marker.target == new_only.fingerprint
    assert marker.table == "delivery_events" and marker.counts == {"delivery_events": 3}
    blobs = raw_blobs(db_url)
    on_new = [b for _, b in blobs if readable_by(new_only, b)]
    on_old = [b for _, b in blobs if readable_by(old_only, b)]
    assert len(on_new) == 3 and len(on_old) == total - 3 and not set(on_new) & set(on_old)
    views = store.list_notifications(NotificationFilter(limit=100))
    assert sorted(v.body for v in views) == sorted(f"{BODY} #{i}" for i in range(1, ROWS + 1))
    with pytest.raises(KeyMismatchError):  # the look-up key is sealed by the new key now
        SqlStore(db_url, old_only)

    # a later run (another process, after the crash) resumes at the marker
    resumed = make_store(keyring=both).rotation().run(now=at, actor="test", batch=2)
    assert resumed.resumed and resumed.target == new_only.fingerprint
    assert resumed.rotated == {"delivery_events": 3, "notifications": ROWS, "secrets": 2}
    assert resumed.remaining == {"delivery_events": 0, "notifications": 0, "secrets": 0}
    assert all(readable_by(new_only, b) and not readable_by(old_only, b) for _, b in raw_blobs(db_url))

    # the old key can go: everything reads, phone look-ups and duplicate detection still work
    after = make_store(keyring=new_only)
    assert after.rotation().marker() is None
    views = after.list_notifications(NotificationFilter(limit=100, recipient=PHONE))
    assert len(views) == ROWS and {v.recipient for v in views} == {PHONE}
    assert after.commit_poll(poll(notification(1, body="again"), watermark=None)) == []
    assert after.secrets().values(["EBS_PASSWORD", "SAP_TOKEN"]) == {"EBS_PASSWORD": "welcome1",
                                                                   "SAP_TOKEN": "tok-123"}
    kinds = [e.kind for e in after.audit(None, None) if e.kind.startswith("key_rotation")]
    assert kinds == ["key_rotation_started", "key_rotation_resumed", "key_rotation_finished"]
    finished = [e for e in after.audit(None, None) if e.kind == "key_rotation_finished"][0]
    assert finished.detail["key"] == new_only.fingerprint and finished.detail["remaining"]["notifications"] == 0


def test_rotation_to_the_same_key_is_a_no_op(make_store: Callable[..., SqlStore]) -> None:
    store = make_store(keyring=KeyRing(OLD))
    fill(store)
    result = store.rotation().run(now=at, actor="test")
    assert not result.resumed and result.rotated == {} and result.batches == 0
    assert sum(result.remaining.values()) == 0


def test_values_an_old_process_writes_behind_the_marker_are_reported_then_rotated(
    make_store: Callable[..., SqlStore],
) -> None:
    fill(make_store(keyring=KeyRing(OLD)))
    rotating = make_store(keyring=KeyRing(NEW, [OLD]))
    legacy = make_store(keyring=KeyRing(OLD, [NEW]))  # a process still sealing with the old key

    def old_process_writes(progress: Progress) -> None:
        if progress.table == "secrets" and progress.after == "EBS_PASSWORD":
            legacy.secrets().set("AAA", "behind the marker", now=T0, actor="test")

    result = rotating.rotation().run(now=at, actor="test", batch=1, on_batch=old_process_writes)
    assert result.remaining == {"delivery_events": 0, "notifications": 0, "secrets": 1}
    again = rotating.rotation().run(now=at, actor="test")
    assert not again.resumed and again.rotated == {"secrets": 1}
    assert sum(again.remaining.values()) == 0
    assert make_store(keyring=KeyRing(NEW)).secrets().values(["AAA"]) == {"AAA": "behind the marker"}


def test_a_new_rotation_supersedes_an_interrupted_one_to_another_key(make_store: Callable[..., SqlStore]) -> None:
    fill(make_store(keyring=KeyRing(OLD)))
    middle = b"m" * 32

    def crash(progress: Progress) -> None:
        raise Crash

    with pytest.raises(Crash):
        make_store(keyring=KeyRing(middle, [OLD])).rotation().run(now=at, actor="test", batch=1, on_batch=crash)
    result = make_store(keyring=KeyRing(NEW, [middle, OLD])).rotation().run(now=at, actor="test")
    assert not result.resumed and sum(result.remaining.values()) == 0
    final = make_store(keyring=KeyRing(NEW))
    started = [e for e in final.audit(None, None) if e.kind == "key_rotation_started"]
    assert started[-1].detail["superseded"] == KeyRing(middle).fingerprint


def test_batch_must_be_positive(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="batch"):
        store.rotation().run(now=at, actor="test", batch=0)
