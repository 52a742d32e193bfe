"""Quiet hours: a notification outside the recipient's business hours is stored deferred with its
due time and the reason, is delivered when the window opens, and critical flows do not wait."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_connector.core.models import Status
from tests.support.pipeline import FakeClock, pipeline

FLOW = "invoice_validated"
#: Monday 7 December 2026, 23:00 in Chicago (the demo ERP's and flows' zone).
LATE_MONDAY = datetime(2026, 12, 8, 5, 0, tzinfo=UTC)
TUESDAY_OPENING = datetime(2026, 12, 8, 14, 0, tzinfo=UTC)  # 08:00 CST


def office_hours(critical: bool = False) -> Any:
    def tweak(config: dict[str, Any]) -> None:
        flow = config["flows"][FLOW]
        flow["business_hours"] = {"windows": [{"days": "mon-fri", "from": "08:00", "to": "20:00"}]}
        flow["critical"] = critical
    return tweak


async def test_a_notification_at_23_00_is_delivered_at_the_windows_opening(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=office_hours(), clock=FakeClock(LATE_MONDAY)) as p:
        await p.poll()
        p.erp.validate_invoice(5001)
        await p.poll()
        await p.dispatch()
        (held,) = p.notifications(flow=FLOW)
        assert held.status is Status.DEFERRED
        assert held.reason == "quiet hours: held until 2026-12-08 08:00 CST (America/Chicago)"
        assert held.next_attempt_at == TUESDAY_OPENING
        assert p.sim.messages() == []
        deferred = [e for e in p.audit() if e.notification_id == held.id and e.kind == "deferred"]
        assert deferred and deferred[0].detail["until"] == TUESDAY_OPENING.isoformat()

        p.clock.advance(TUESDAY_OPENING - p.clock.now)  # the window opens
        await p.dispatch()
        (sent,) = p.notifications(flow=FLOW)
        assert sent.status is Status.DELIVERED
        assert len(p.sim.messages()) == 1


async def test_a_critical_flow_sends_at_once(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=office_hours(critical=True), clock=FakeClock(LATE_MONDAY)) as p:
        await p.poll()
        p.erp.validate_invoice(5001)
        await p.poll()
        await p.dispatch()
        (n,) = p.notifications(flow=FLOW)
        assert n.status is Status.DELIVERED
