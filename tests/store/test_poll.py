"""commit_poll: idempotent inserts, watermark never backwards, one transaction."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from ml_connector.core.models import Status
from ml_connector.store.port import NotificationFilter
from ml_connector.store.sql import SqlStore

from .builders import T0, notification, poll

ALL = NotificationFilter(limit=10_000)


def test_same_keys_twice_insert_once(store: SqlStore) -> None:
    first = store.commit_poll(poll(notification(1), notification(2)))
    again = store.commit_poll(poll(notification(2), notification(1), notification(3)))
    assert len(first) == 2 and len(again) == 1
    assert again[0] not in first
    assert len(store.list_notifications(ALL)) == 3
    created = [e for e in store.audit(None, None) if e.kind == "created"]
    assert sorted(e.notification_id for e in created if e.notification_id) == sorted(first + again)


def test_duplicate_keys_inside_one_commit_insert_once(store: SqlStore) -> None:
    assert len(store.commit_poll(poll(notification(1), notification(1)))) == 1


def test_returned_ids_follow_the_commit_order(store: SqlStore) -> None:
    ids = store.commit_poll(poll(*(notification(i) for i in (5, 3, 9))))
    keys = [store.get_notification(i).record_key for i in ids]  # type: ignore[union-attr]
    assert keys == ["5", "3", "9"]


def test_watermark_never_moves_backwards(store: SqlStore) -> None:
    assert store.get_watermark("po-approved") is None
    store.commit_poll(poll(watermark=T0))
    store.commit_poll(poll(watermark=T0 - timedelta(hours=1)))
    assert store.get_watermark("po-approved") == T0
    store.commit_poll(poll(watermark=None))
    assert store.get_watermark("po-approved") == T0
    store.commit_poll(poll(watermark=T0 + timedelta(microseconds=1)))
    assert store.get_watermark("po-approved") == T0 + timedelta(microseconds=1)
    assert store.get_watermark("po-approved", "lookback") is None


def test_a_failing_insert_rolls_back_the_watermark_and_states(store: SqlStore) -> None:
    store.commit_poll(poll(notification(1), watermark=T0))
    broken = replace(notification(2), entity=None)  # NOT NULL violation inside the transaction
    with pytest.raises(Exception, match="(?i)null"):
        store.commit_poll(poll(notification(3), broken, watermark=T0 + timedelta(hours=1)))
    assert store.get_watermark("po-approved") == T0
    assert store.last_seen("po-approved", ["2", "3"]) == {}
    assert [n.record_key for n in store.list_notifications(ALL)] == ["1"]


def test_record_states_are_upserted(store: SqlStore) -> None:
    store.commit_poll(poll(notification(1)))
    assert store.last_seen("po-approved", ["1", "2"]) == {"1": {"STATUS": "APPROVED"}}
    later = poll(watermark=None)
    later = replace(later, states=[replace(poll(notification(1)).states[0], values={"STATUS": "CLOSED"})])
    store.commit_poll(later)
    assert store.last_seen("po-approved", ["1"]) == {"1": {"STATUS": "CLOSED"}}
    assert store.last_seen("other-flow", ["1"]) == {}


def test_notifications_decided_before_sending_are_audited(store: SqlStore) -> None:
    bad = notification(
        1, status=Status.FAILED, reason="unparseable phone 312-555-0142", recipient="312-555-0142"
    )
    quiet = notification(2, status=Status.SUPPRESSED, reason="opted out")
    ids = store.commit_poll(poll(bad, quiet))
    kinds = {(e.notification_id, e.kind) for e in store.audit(None, None)}
    assert {(ids[0], "failed"), (ids[1], "suppressed"), (ids[0], "created")} <= kinds
    view = store.get_notification(ids[0])
    assert view is not None and view.status is Status.FAILED and "555-0142" not in (view.reason or "")
    assert store.claim_due("w", T0 + timedelta(days=1), timedelta(seconds=30), 10) == []


def test_thousands_of_rows_in_one_commit(store: SqlStore) -> None:
    notes = [notification(i) for i in range(3000)]
    assert len(store.commit_poll(poll(*notes))) == 3000
    assert store.commit_poll(poll(*notes)) == []
