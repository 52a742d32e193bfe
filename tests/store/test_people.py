"""What people ask: listing, one notification with its attempts, replay, the audit export."""

from __future__ import annotations

from datetime import timedelta

from ml_connector.core.models import Status
from ml_connector.store.port import AttemptResult, NotificationFilter, Outcome
from ml_connector.store.sql import SqlStore

from .builders import PHONE, T0, enqueue, notification, poll

LEASE = timedelta(seconds=30)


def fail(store: SqlStore, nid: int, attempt_no: int, now=T0) -> None:  # type: ignore[no-untyped-def]
    claimed = store.claim_due("w", now, LEASE, 10)
    assert [c.id for c in claimed] == [nid] and claimed[0].attempt_no == attempt_no
    store.finish_attempt(
        AttemptResult(
            nid, attempt_no, Outcome.PERMANENT, now, now, error_code=30007, error_message="filtered"
        )
    )


def test_replay_reopens_with_a_fresh_budget_and_keeps_attempts(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1, max_attempts=2))
    fail(store, nid, 1)
    again = T0 + timedelta(hours=1)
    assert store.replay([nid, nid], again, "dana@example.com") == [nid]
    view = store.get_notification(nid)
    assert view is not None
    assert (view.status, view.provider_id, view.error_code, view.next_attempt_at) == (
        Status.PENDING,
        None,
        None,
        again,
    )
    assert (view.attempts_made, view.max_attempts, len(view.attempts)) == (1, 3, 1)
    (c,) = store.claim_due("w", again, LEASE, 10)
    assert (c.attempt_no, c.max_attempts, c.in_doubt) == (2, 3, False)
    (entry,) = [e for e in store.audit(None, None) if e.kind == "replay"]
    assert entry.detail["actor"] == "dana@example.com" and entry.detail["previous_status"] == "failed"


def test_replay_skips_what_is_not_replayable(store: SqlStore) -> None:
    pending, failed = enqueue(store, notification(1, next_attempt_at=T0 + timedelta(days=1)), notification(2))
    fail(store, failed, 1)
    assert store.replay([pending, failed, 999], T0, "ops") == [failed]
    view = store.get_notification(pending)
    assert (
        view is not None and view.status is Status.PENDING and view.next_attempt_at == T0 + timedelta(days=1)
    )


def test_list_filters(store: SqlStore) -> None:
    other_phone = "+447700900123"
    tomorrow = T0 + timedelta(days=1)
    a, b = store.commit_poll(
        poll(notification(1), notification(2, recipient=other_phone, next_attempt_at=tomorrow))
    )
    (c,) = store.commit_poll(
        poll(
            notification(3, flow="invoice-held", next_attempt_at=tomorrow), polled_at=T0 + timedelta(hours=1)
        )
    )
    fail(store, a, 1)

    def ids(**kw: object) -> list[int]:
        return [v.id for v in store.list_notifications(NotificationFilter(**kw))]  # type: ignore[arg-type]

    assert ids() == [c, b, a]
    assert ids(flow="po-approved") == [b, a]
    assert ids(statuses=[Status.FAILED]) == [a]
    assert ids(recipient=PHONE) == [c, a]
    assert ids(recipient=other_phone) == [b]
    assert ids(since=T0 + timedelta(minutes=1)) == [c]
    assert ids(until=T0 + timedelta(minutes=1)) == [b, a]
    assert ids(ids=[a, c]) == [c, a]
    assert ids(limit=1) == [c]
    listed = store.list_notifications(NotificationFilter(ids=[b]))[0]
    assert listed.recipient == other_phone and listed.recipient_field == "BUYER_PHONE"


def test_get_unknown_notification_is_none(store: SqlStore) -> None:
    assert store.get_notification(12345) is None


def test_audit_streams_in_id_order_within_the_window(store: SqlStore) -> None:
    store.commit_poll(poll(*(notification(i) for i in range(1200))))
    store.commit_poll(poll(notification(5000), polled_at=T0 + timedelta(hours=2), watermark=None))
    everything = list(store.audit(None, None))
    assert [e.id for e in everything] == sorted(e.id for e in everything)
    assert len(everything) == 1200 + 1 + 1 + 1  # created rows, poll row, created + poll of the later commit
    late = list(store.audit(T0 + timedelta(hours=1), None))
    assert {e.kind for e in late} == {"created", "poll"} and len(late) == 2
    assert list(store.audit(None, T0)) == []
    partial = store.audit(None, None)
    assert next(partial).id == everything[0].id
    partial.close()  # an abandoned export releases its connection
