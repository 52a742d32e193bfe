"""claim_due and finish_attempt: leases, in-doubt sends, every outcome, stale finishes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ml_connector.core.models import Status
from ml_connector.store.port import AttemptResult, Claimed, Outcome
from ml_connector.store.sql import SqlStore

from .builders import BODY, PHONE, T0, enqueue, notification

LEASE = timedelta(seconds=30)
LATER = T0 + timedelta(minutes=5)


def claim_one(store: SqlStore, now=T0, worker: str = "w1") -> Claimed:  # type: ignore[no-untyped-def]
    claimed = store.claim_due(worker, now, LEASE, 10)
    assert len(claimed) == 1
    return claimed[0]


def finish(store: SqlStore, c: Claimed, outcome: Outcome, **kw: object) -> None:
    store.finish_attempt(AttemptResult(c.id, c.attempt_no, outcome, T0, T0 + timedelta(seconds=1), **kw))  # type: ignore[arg-type]


def status_of(store: SqlStore, nid: int) -> Status:
    view = store.get_notification(nid)
    assert view is not None
    return view.status


def test_claim_returns_decrypted_due_rows_only(store: SqlStore) -> None:
    soon = T0 + timedelta(seconds=20)
    due, later = enqueue(store, notification(1), notification(2, next_attempt_at=soon))
    c = claim_one(store)
    assert (c.id, c.recipient, c.body, c.attempt_no, c.max_attempts, c.in_doubt) == (
        due,
        PHONE,
        BODY,
        1,
        3,
        False,
    )
    assert status_of(store, due) is Status.SENDING
    assert store.claim_due("w2", soon - timedelta(microseconds=1), LEASE, 10) == []  # leased; `later` not due
    assert [x.id for x in store.claim_due("w2", soon, LEASE, 10)] == [later]  # first one still leased
    assert store.claim_due("w2", T0, LEASE, 0) == []


def test_expired_lease_comes_back_in_doubt(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    claim_one(store, T0, "crashed")
    again = claim_one(store, T0 + LEASE + timedelta(seconds=1), "w2")
    assert (again.id, again.attempt_no, again.in_doubt, again.in_doubt_since) == (nid, 2, True, T0)
    view = store.get_notification(nid)
    assert view is not None
    assert [(t.attempt_no, t.outcome) for t in view.attempts] == [(1, "in_doubt"), (2, None)]
    claimed = [e for e in store.audit(None, None) if e.kind == "claimed"]
    assert claimed[-1].detail["lease_expired_for"] == "crashed"


def test_accepted_sets_provider_id_and_clears_doubt(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    claim_one(store, T0, "crashed")
    c = claim_one(store, T0 + timedelta(minutes=1))
    finish(store, c, Outcome.ADOPTED, provider_id="SM1", provider_status="sent")
    view = store.get_notification(nid)
    assert view is not None and (view.status, view.provider_id) == (Status.SENT, "SM1")
    third = claim_one_or_none(store, T0 + timedelta(hours=1))
    assert third is None


def claim_one_or_none(store: SqlStore, now) -> Claimed | None:  # type: ignore[no-untyped-def]
    claimed = store.claim_due("w", now, LEASE, 10)
    return claimed[0] if claimed else None


def test_accepted_without_status_is_queued(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    finish(store, claim_one(store), Outcome.ACCEPTED, provider_id="SM1")
    assert status_of(store, nid) is Status.QUEUED


def test_transient_retries_at_the_given_time(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    finish(
        store,
        claim_one(store),
        Outcome.TRANSIENT,
        error_code=20429,
        error_message="Too Many Requests",
        next_attempt_at=LATER,
    )
    view = store.get_notification(nid)
    assert view is not None and (view.status, view.error_code, view.next_attempt_at) == (
        Status.PENDING,
        20429,
        LATER,
    )
    assert store.claim_due("w", LATER - timedelta(seconds=1), LEASE, 10) == []
    assert claim_one(store, LATER).attempt_no == 2


def test_transient_without_retry_time_is_dead(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    finish(store, claim_one(store), Outcome.TRANSIENT, error_code=20429)
    assert status_of(store, nid) is Status.DEAD
    assert claim_one_or_none(store, LATER) is None


def test_permanent_fails_with_code_and_masked_message(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    finish(
        store,
        claim_one(store),
        Outcome.PERMANENT,
        error_code=21211,
        error_message=f"The 'To' number {PHONE} is not a valid phone number.",
    )
    view = store.get_notification(nid)
    assert view is not None and (view.status, view.error_code) == (Status.FAILED, 21211)
    assert view.attempts[0].error_message is not None and PHONE not in view.attempts[0].error_message


def test_in_doubt_is_pending_and_flagged_at_next_claim(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    finish(store, claim_one(store), Outcome.IN_DOUBT, next_attempt_at=LATER)
    assert status_of(store, nid) is Status.PENDING
    c = claim_one(store, LATER)
    assert (c.attempt_no, c.in_doubt, c.in_doubt_since) == (2, True, T0)
    finish(store, c, Outcome.TRANSIENT, next_attempt_at=LATER + timedelta(minutes=1))
    third = claim_one(store, LATER + timedelta(minutes=1))
    assert (third.in_doubt, third.in_doubt_since) == (True, T0)  # still unreconciled
    finish(store, third, Outcome.ACCEPTED, provider_id="SM3")
    view = store.get_notification(nid)
    assert view is not None and view.status is Status.QUEUED


def test_deferred_does_not_count_as_an_attempt(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    finish(store, claim_one(store), Outcome.DEFERRED, next_attempt_at=LATER)
    view = store.get_notification(nid)
    assert view is not None
    assert (view.status, view.attempts_made, view.attempts, view.next_attempt_at) == (
        Status.PENDING,
        0,
        (),
        LATER,
    )
    assert claim_one(store, LATER).attempt_no == 1


def test_finish_after_lease_expiry_is_ignored(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    slow = claim_one(store, T0, "slow")
    fresh = claim_one(store, T0 + LEASE + timedelta(seconds=1), "fresh")
    finish(store, slow, Outcome.PERMANENT, error_code=21211)  # the old worker wakes up
    assert status_of(store, nid) is Status.SENDING
    assert [e.kind for e in store.audit(None, None)][-1] == "stale_finish"
    finish(store, fresh, Outcome.ACCEPTED, provider_id="SM2")
    assert status_of(store, nid) is Status.QUEUED
    finish(store, fresh, Outcome.PERMANENT, error_code=21211)  # finishing twice changes nothing
    assert status_of(store, nid) is Status.QUEUED


def test_every_finish_is_audited(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    finish(store, claim_one(store), Outcome.ACCEPTED, provider_id="SM1")
    (entry,) = [e for e in store.audit(None, None) if e.kind == "attempt"]
    assert (entry.notification_id, entry.status) == (nid, "queued")
    assert entry.detail["provider_id"] == "SM1" and entry.detail["outcome"] == "accepted"


@pytest.mark.parametrize("outcome", [Outcome.ACCEPTED, Outcome.ADOPTED])
def test_accepting_needs_a_provider_id(store: SqlStore, outcome: Outcome) -> None:
    enqueue(store, notification(1))
    with pytest.raises(ValueError, match="provider id"):
        finish(store, claim_one(store), outcome)
