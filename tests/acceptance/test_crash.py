"""SIGKILL the connector while it sends; after a restart nothing is lost and nothing is sent twice.

Real processes on loopback: `ml-connector simulate` serves the Twilio simulator, `ml-connector
run` is the connector, the demo ERP is a SQLite file the test writes to. The simulator is the
judge: what it accepted is what a phone would have received.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_connector.core.models import Status
from ml_connector.sim.twilio_faults import FaultRule
from ml_connector.store.port import NotificationView
from tests.support.processes import Event, EventMaker, Rig, crash_seed, judge, wait_for


def test_sigkill_mid_dispatch_sends_each_event_exactly_once(tmp_path: Path) -> None:
    seed = crash_seed(default=2)
    with Rig.open(tmp_path, mps=5) as rig:  # paced: some sends done, some in flight, some waiting
        rig.start_simulator()
        rig.sim.set_latency(1.0)  # every request takes a second: sends are in flight when the kill comes
        # Every 5th create is accepted and its answer lost: those are in doubt before the kill as well.
        rig.sim.set_faults([FaultRule("drop_after_accept", "create_message", every_nth=5)], seed=seed)
        rig.start_connector()
        rig.wait_polling()
        maker = EventMaker(rig.erp, seed)
        maker.burst(30)

        def sending() -> int:
            return sum(n.status is Status.SENDING for n in rig.notifications())

        wait_for(lambda: sending() >= 2 and len(rig.sim.messages()) >= 3, timeout=20,
                 what="some messages accepted and more in flight", diagnose=rig.diagnose)
        rig.kill_connector()
        interrupted = {n.id for n in rig.notifications() if n.status is Status.SENDING}
        accepted_at_kill = len(rig.sim.messages())
        deliverable = sum(e.deliverable for e in maker.events)
        assert interrupted, "the kill came after the sends finished"
        assert accepted_at_kill < deliverable, "the kill came after every message was accepted"

        rig.sim.set_latency(0.05)
        rig.start_connector()
        rig.wait_settled(len(maker.events), timeout=45)
        audit = rig.audit_export()
        verdict = judge(maker.events, rig.notifications(), rig.sim.messages(), audit)
        rig.stop_connector()

    print(f"{len(maker.events)} events, {len(interrupted)} sends interrupted, {accepted_at_kill} messages "
          f"accepted before the kill; {verdict.summary()}")
    for line in verdict.lost_callbacks:
        print(f"  final status never reached the connector: {line}")
    assert verdict.problems == []
    assert verdict.accepted == deliverable and verdict.accepted + verdict.failed == len(maker.events)
    # Each interrupted send came back in doubt and was reconciled with Twilio's list before any resend.
    reconciled = {row["notification_id"] for row in audit if row["kind"] == "claimed" and row["detail"]["in_doubt"]}
    assert interrupted <= reconciled


def test_final_status_reported_while_webhooks_were_down_is_learned_later(tmp_path: Path) -> None:
    with Rig.open(tmp_path) as rig:
        rig.start_simulator()
        # Poller and dispatcher only: the webhook server is down, so Twilio's callbacks are refused
        # (it tries each one twice), exactly as while a killed connector restarts.
        rig.start_connector("poller", "dispatcher")
        rig.wait_polling()
        maker = EventMaker(rig.erp, seed=0)
        maker.approve_po(1002)
        maker.validate_invoice(5001)

        def twilio_done() -> bool:
            messages = rig.sim.messages()
            return len(messages) == 2 and rig.sim.pending() == 0

        wait_for(twilio_done, timeout=20, what="Twilio to finish both messages", diagnose=rig.diagnose)
        assert all(not c["ok"] for m in rig.sim.messages() for c in m["callbacks"])
        rig.kill_connector()
        rig.start_connector()
        final = {m["resource"]["sid"]: m["status"] for m in rig.sim.messages()}

        def learned() -> bool:
            return all(n.provider_id and n.status.value == final[n.provider_id] for n in rig.notifications())

        try:
            wait_for(learned, timeout=8, interval=0.25, what="the store to learn the final statuses",
                     diagnose=rig.diagnose)
        finally:
            rig.stop_connector()


def _view(nid: int, record_key: str, status: Status, provider_id: str | None, body: str) -> NotificationView:
    now = datetime.now(UTC)
    return NotificationView(
        id=nid, flow="po_approved", entity="purchase_order", record_key=record_key, channel="sms", account="main",
        sender="+15005550006", recipient="+13125550187", recipient_field="person.mobile_phone", body=body,
        status=status, reason=None, provider_id=provider_id, error_code=None, attempts_made=1, max_attempts=8,
        segments=1, created_at=now, updated_at=now, next_attempt_at=None,
    )


def _message(sid: str, body: str, callbacks: list[tuple[str, bool]]) -> dict[str, Any]:
    return {"sid": sid, "to": "+13125550187", "status": "delivered", "resource": {"sid": sid, "body": body},
            "callbacks": [{"status": status, "ok": ok} for status, ok in callbacks]}


def _audit(nid: int, sid: str, *statuses: str) -> list[dict[str, Any]]:
    rows = [{"notification_id": nid, "kind": "attempt", "status": "queued", "detail": {"provider_id": sid}}]
    return rows + [{"notification_id": nid, "kind": "status", "status": s,
                    "detail": {"provider_id": sid, "provider_status": s, "result": "applied"}} for s in statuses]


def test_the_verdict_catches_doubles_losses_and_unaudited_statuses() -> None:
    """The crash tests can fail: each kind of broken promise is reported."""
    event = Event("po_approved", "1002", "10002", "+13125550187")
    body = "PO 10002 for Acme approved: $1.00."
    good = _message("SM1", body, [("sent", True), ("delivered", True)])
    view = _view(1, "1002", Status.DELIVERED, "SM1", body)
    assert judge([event], [view], [good], _audit(1, "SM1", "sent", "delivered")).problems == []

    doubled = judge([event], [view], [good, _message("SM2", body, [])], _audit(1, "SM1", "sent", "delivered"))
    assert any("sent twice" in p for p in doubled.problems)
    lost = judge([event], [_view(1, "1002", Status.PENDING, None, body)], [], [])
    assert any("accepted 0 messages" in p for p in lost.problems)
    unaudited = judge([event], [view], [good], _audit(1, "SM1", "sent"))
    assert any("not in the audit" in p for p in unaudited.problems)
    backwards = judge([event], [view], [good], _audit(1, "SM1", "delivered", "sent", "delivered"))
    assert any("moved backwards" in p for p in backwards.problems)
    stuck = judge([event], [_view(1, "1002", Status.QUEUED, "SM1", body)],
                  [_message("SM1", body, [("sent", False), ("delivered", False)])], _audit(1, "SM1"))
    assert stuck.problems == [] and len(stuck.lost_callbacks) == 1
    acked_but_ignored = judge([event], [_view(1, "1002", Status.QUEUED, "SM1", body)], [good], _audit(1, "SM1"))
    assert any("store says queued" in p for p in acked_but_ignored.problems)
