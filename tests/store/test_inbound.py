"""Inbound texts in the store: kept encrypted, opt-outs applied, replies threaded, duplicates idempotent."""

from __future__ import annotations

from datetime import timedelta

from ml_connector.core.keywords import Intent, classify
from ml_connector.core.models import Status
from ml_connector.store.inbound import InboundMessage
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.sql import SqlStore

from .builders import PHONE, T0, enqueue, notification

SENDER = "+13125550100"
LEASE = timedelta(seconds=30)
WINDOWS = {"po-approved": timedelta(days=3)}


def sent(store: SqlStore, *notes: object) -> list[int]:
    """Enqueue and 'send' each (Twilio took it): only sent notifications can be answered."""
    ids = enqueue(store, *notes)  # type: ignore[arg-type]
    for claimed in store.claim_due("w", T0 + timedelta(hours=2), LEASE, 100):
        store.finish_attempt(AttemptResult(claimed.id, claimed.attempt_no, Outcome.ACCEPTED, T0,
                                           T0 + timedelta(seconds=1), provider_id=f"SM{claimed.id:032d}",
                                           provider_status="queued"))
    return ids


def text(body: str, sid: str = "SM" + "1" * 32, minutes: int = 180) -> InboundMessage:
    return InboundMessage(provider_id=sid, account_sid="AC" + "a" * 32, sender=PHONE, to=SENDER,
                          messaging_service_sid=None, body=body, intent=classify(body),
                          received_at=T0 + timedelta(minutes=minutes))


def test_a_reply_with_a_reference_lands_on_its_notification(store: SqlStore) -> None:
    first, second = sent(store, notification(1, reply_reference="4711"),
                         notification(2, reply_reference="4712", next_attempt_at=T0 + timedelta(minutes=1)))
    outcome = store.record_inbound(text("YES 4711"), reply_windows=WINDOWS)
    assert (outcome.intent, outcome.notification_id, outcome.match_reason) == (Intent.REPLY, first,
                                                                                "matched by reference")
    (stored,) = store.inbound_messages()
    assert (stored.body, stored.sender, stored.notification_id) == ("YES 4711", PHONE, first)
    replies = [e for e in store.audit(None, None) if e.kind == "reply"]
    assert [(e.notification_id, e.flow) for e in replies] == [(first, "po-approved")]
    assert second != first


def test_an_ambiguous_reply_is_kept_unmatched_with_the_reason(store: SqlStore) -> None:
    sent(store, notification(1, reply_reference="4711"), notification(2, reply_reference="4712"))
    outcome = store.record_inbound(text("ok"), reply_windows=WINDOWS)
    assert outcome.notification_id is None and outcome.match_reason.startswith("unmatched:")
    assert store.inbound_messages()[0].match_reason == outcome.match_reason


def test_a_reply_nobody_waits_for_is_kept(store: SqlStore) -> None:
    outcome = store.record_inbound(text("who is this?"), reply_windows=WINDOWS)
    assert outcome.notification_id is None
    assert "no notification" in outcome.match_reason
    assert [e.kind for e in store.audit(None, None)] == ["inbound"]


def test_stop_suppresses_the_next_notification(store: SqlStore) -> None:
    outcome = store.record_inbound(text("Stop."), reply_windows=WINDOWS)
    assert (outcome.intent, outcome.match_reason) == (Intent.OPT_OUT, "opt-out")
    (nid,) = enqueue(store, notification(1))
    view = store.get_notification(nid)
    assert view is not None and view.status is Status.SUPPRESSED
    assert view.reason == "opted out: replied STOP on 2024-05-01"
    store.record_inbound(text("START", sid="SM" + "2" * 32), reply_windows=WINDOWS)
    (again,) = enqueue(store, notification(2))
    assert store.get_notification(again).status is Status.PENDING  # type: ignore[union-attr]


def test_twilio_posting_twice_changes_nothing_the_second_time(store: SqlStore) -> None:
    sent(store, notification(1))
    first = store.record_inbound(text("ok"), reply_windows=WINDOWS)
    again = store.record_inbound(text("ok"), reply_windows=WINDOWS)
    assert again.duplicate and (again.id, again.notification_id) == (first.id, first.notification_id)
    assert len(store.inbound_messages()) == 1


def test_flows_that_do_not_thread_replies_are_not_matched(store: SqlStore) -> None:
    sent(store, notification(1))
    outcome = store.record_inbound(text("ok"), reply_windows={})
    assert outcome.notification_id is None
