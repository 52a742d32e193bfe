"""Suppressions: opted-out recipients get no notification from that sender, from a poll or waiting,
and Twilio's 21610 puts them on the list; nothing about them is stored in clear."""

from __future__ import annotations

from datetime import timedelta

from ml_connector.core.models import Status
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.sql import SqlStore
from ml_connector.store.suppressions import EVERYWHERE

from .builders import PHONE, T0, enqueue, notification

SENDER = "+13125550100"
OTHER_SENDER = "MG" + "b" * 32
LEASE = timedelta(seconds=30)


def status_and_reason(store: SqlStore, nid: int) -> tuple[Status, str | None]:
    view = store.get_notification(nid)
    assert view is not None
    return view.status, view.reason


def test_a_poll_suppresses_a_notification_to_an_opted_out_recipient(store: SqlStore) -> None:
    store.suppress(PHONE, SENDER, source="keyword", reason="opted out: replied STOP", at=T0)
    to_them, elsewhere, other = enqueue(store, notification(1), notification(2, sender=OTHER_SENDER),
                                        notification(3, recipient="+13125550199",
                                                     idempotency_key="k3:+13125550199"))
    assert status_and_reason(store, to_them) == (Status.SUPPRESSED, "opted out: replied STOP")
    assert status_and_reason(store, elsewhere) == (Status.PENDING, None)
    assert status_and_reason(store, other) == (Status.PENDING, None)
    assert [c.id for c in store.claim_due("w", T0, LEASE, 10)] == [elsewhere, other]
    assert store.is_suppressed(PHONE, SENDER) == "opted out: replied STOP"
    assert store.is_suppressed(PHONE, OTHER_SENDER) is None


def test_everywhere_covers_every_sender(store: SqlStore) -> None:
    store.suppress(PHONE, EVERYWHERE, source="operator", reason="asked by phone", at=T0)
    (nid,) = enqueue(store, notification(1, sender=OTHER_SENDER))
    assert status_and_reason(store, nid)[0] is Status.SUPPRESSED


def test_an_opt_out_suppresses_what_is_still_waiting(store: SqlStore) -> None:
    waiting, deferred = enqueue(store, notification(1), notification(
        2, status=Status.DEFERRED, reason="quiet hours", next_attempt_at=T0 + timedelta(hours=9)))
    assert store.suppress(PHONE, SENDER, source="keyword", reason="opted out: replied STOP", at=T0) == 2
    assert status_and_reason(store, waiting) == (Status.SUPPRESSED, "opted out: replied STOP")
    assert status_and_reason(store, deferred)[0] is Status.SUPPRESSED
    assert store.claim_due("w", T0 + timedelta(days=1), LEASE, 10) == []
    kinds = [e.kind for e in store.audit(None, None)]
    assert kinds.count("opt_out") == 1 and kinds.count("suppressed") == 2


def test_an_opt_in_lifts_it_for_what_comes_next(store: SqlStore) -> None:
    store.suppress(PHONE, SENDER, source="keyword", reason="opted out: replied STOP", at=T0)
    (before,) = enqueue(store, notification(1))
    store.lift_suppression(PHONE, [SENDER], at=T0)
    (after,) = enqueue(store, notification(2))
    assert status_and_reason(store, before)[0] is Status.SUPPRESSED  # stays as it was decided
    assert status_and_reason(store, after)[0] is Status.PENDING
    assert store.is_suppressed(PHONE, SENDER) is None


def test_twilio_21610_puts_the_recipient_on_the_list(store: SqlStore) -> None:
    first, second = enqueue(store, notification(1), notification(2, next_attempt_at=T0 + timedelta(hours=1)))
    (claimed,) = store.claim_due("w", T0, LEASE, 10)
    assert claimed.id == first
    store.finish_attempt(AttemptResult(first, claimed.attempt_no, Outcome.PERMANENT, T0, T0 + timedelta(seconds=1),
                                       error_code=21610, error_message="Attempt to send to unsubscribed recipient"))
    assert status_and_reason(store, first)[0] is Status.FAILED
    assert status_and_reason(store, second)[0] is Status.SUPPRESSED
    assert store.is_suppressed(PHONE, SENDER) is not None
    (third,) = enqueue(store, notification(3))
    assert status_and_reason(store, third)[0] is Status.SUPPRESSED


def test_the_list_holds_no_phone_number(store: SqlStore, db_url: str) -> None:
    store.suppress(PHONE, SENDER, source="keyword", reason="opted out: replied STOP from +13125550142", at=T0)
    reason = store.is_suppressed(PHONE, SENDER)
    assert reason is not None and "5550142" not in reason
