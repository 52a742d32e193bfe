"""apply_status: duplicates, out-of-order reports, orphans adopted, older attempts' SIDs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ml_connector.core.models import Status, StatusEvent
from ml_connector.store.port import ApplyResult, AttemptResult, Outcome
from ml_connector.store.sql import SqlStore

from .builders import PHONE, T0, enqueue, notification

LEASE = timedelta(seconds=30)


def report(sid: str, status: str, code: int | None = None, **raw: str) -> StatusEvent:
    params = {"MessageSid": sid, "MessageStatus": status, "To": PHONE, **raw}
    return StatusEvent(sid, status, code, T0 + timedelta(seconds=5), params)


def sent_notification(store: SqlStore, sid: str = "SM1", i: int = 1) -> int:
    (nid,) = enqueue(store, notification(i))
    (c,) = store.claim_due("w", T0, LEASE, 10)
    store.finish_attempt(AttemptResult(nid, c.attempt_no, Outcome.ACCEPTED, T0, T0, provider_id=sid))
    return nid


def status_of(store: SqlStore, nid: int) -> Status:
    view = store.get_notification(nid)
    assert view is not None
    return view.status


def test_reports_move_status_forward(store: SqlStore) -> None:
    nid = sent_notification(store)
    assert store.apply_status(report("SM1", "sent")) is ApplyResult.APPLIED
    assert store.apply_status(report("SM1", "delivered", RawDlrDoneDate="2405011201")) is ApplyResult.APPLIED
    assert status_of(store, nid) is Status.DELIVERED


def test_duplicate_report_changes_nothing(store: SqlStore) -> None:
    nid = sent_notification(store)
    first = report("SM1", "delivered", RawDlrDoneDate="2405011201")
    assert store.apply_status(first) is ApplyResult.APPLIED
    assert store.apply_status(first) is ApplyResult.DUPLICATE
    other_dlr = report("SM1", "delivered", RawDlrDoneDate="2405011202")
    assert store.apply_status(other_dlr) is ApplyResult.STALE  # a new report, but no news
    assert status_of(store, nid) is Status.DELIVERED


@pytest.mark.parametrize(
    ("order", "final"),
    [
        (["delivered", "sent", "queued"], Status.DELIVERED),
        (["undelivered", "sent", "delivered"], Status.UNDELIVERED),
        (["sent", "failed", "delivered"], Status.FAILED),
        (["read", "delivered", "sent"], Status.READ),
        (["delivered", "read"], Status.READ),
    ],
)
def test_out_of_order_reports_never_move_backwards(store: SqlStore, order: list[str], final: Status) -> None:
    nid = sent_notification(store)
    for status in order:
        store.apply_status(report("SM1", status, 30003 if status in ("failed", "undelivered") else None))
    assert status_of(store, nid) is final


def test_failure_report_keeps_the_error_code(store: SqlStore) -> None:
    nid = sent_notification(store)
    assert store.apply_status(report("SM1", "undelivered", 30003)) is ApplyResult.APPLIED
    view = store.get_notification(nid)
    assert view is not None and (view.status, view.error_code) == (Status.UNDELIVERED, 30003)


def test_unknown_sid_is_kept_as_orphan_then_adopted_on_accept(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    (c,) = store.claim_due("w", T0, LEASE, 10)
    # the callbacks beat the commit of the send
    assert store.apply_status(report("SM9", "delivered")) is ApplyResult.ORPHAN
    assert store.apply_status(report("SM9", "sent")) is ApplyResult.ORPHAN
    assert store.apply_status(report("SM9", "sent")) is ApplyResult.DUPLICATE
    store.finish_attempt(
        AttemptResult(
            nid, c.attempt_no, Outcome.ACCEPTED, T0, T0, provider_id="SM9", provider_status="queued"
        )
    )
    assert status_of(store, nid) is Status.DELIVERED
    adopted = [e for e in store.audit(None, None) if e.kind == "status" and e.detail.get("adopted_orphan")]
    assert [e.detail["provider_status"] for e in adopted] == ["sent", "delivered"]
    assert store.apply_status(report("SM9", "sent", RawDlrDoneDate="x")) is ApplyResult.STALE
    orphans = [e for e in store.audit(None, None) if e.kind == "orphan"]
    assert len(orphans) == 2 and orphans[0].notification_id is None


def test_orphans_of_another_sid_are_not_adopted(store: SqlStore) -> None:
    store.apply_status(report("SM-other", "delivered"))
    nid = sent_notification(store, "SM1")
    assert status_of(store, nid) is Status.QUEUED


def test_older_attempt_sid_after_replay_is_stale(store: SqlStore) -> None:
    (nid,) = enqueue(store, notification(1))
    (c,) = store.claim_due("w", T0, LEASE, 10)
    store.finish_attempt(AttemptResult(nid, 1, Outcome.ACCEPTED, T0, T0, provider_id="SM-old"))
    store.apply_status(report("SM-old", "undelivered", 30005))
    assert store.replay([nid], T0 + timedelta(hours=1), "ops") == [nid]
    (c,) = store.claim_due("w", T0 + timedelta(hours=1), LEASE, 10)
    assert c.attempt_no == 2
    store.finish_attempt(AttemptResult(nid, 2, Outcome.ACCEPTED, T0, T0, provider_id="SM-new"))
    assert store.apply_status(report("SM-old", "delivered")) is ApplyResult.STALE
    assert status_of(store, nid) is Status.QUEUED
    assert store.apply_status(report("SM-new", "delivered")) is ApplyResult.APPLIED
    assert status_of(store, nid) is Status.DELIVERED


def test_unknown_provider_status_is_kept_but_changes_nothing(store: SqlStore) -> None:
    nid = sent_notification(store)
    assert store.apply_status(report("SM1", "receiving")) is ApplyResult.STALE
    assert status_of(store, nid) is Status.QUEUED


def test_every_report_is_audited(store: SqlStore) -> None:
    nid = sent_notification(store)
    store.apply_status(report("SM1", "sent"))
    store.apply_status(report("SM1", "sent"))
    entries = [e for e in store.audit(None, None) if e.kind == "status"]
    assert [(e.notification_id, e.detail["result"]) for e in entries] == [
        (nid, "applied"),
        (nid, "duplicate"),
    ]


def test_an_adopted_orphan_updates_what_the_attempt_shows(store: SqlStore) -> None:
    """A callback that beat the commit of its send still ends up on the attempt's status."""
    sid = "SM" + "e" * 32
    [nid] = enqueue(store, notification(91))
    [claimed] = store.claim_due("w", T0, timedelta(seconds=60), 10)
    store.apply_status(StatusEvent(sid, "sent", None, T0, {}))
    store.apply_status(StatusEvent(sid, "delivered", None, T0, {"RawDlrDoneDate": "2405011200"}))
    store.finish_attempt(AttemptResult(nid, claimed.attempt_no, Outcome.ACCEPTED, T0, T0,
                                       provider_id=sid, provider_status="queued"))
    view = store.get_notification(nid)
    assert view is not None and view.status.value == "delivered"
    assert view.attempts[-1].provider_status == "delivered"
