"""Digests end to end: five validated invoices for one approver become one SMS at the window's close."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ml_connector.core.models import Status
from ml_connector.runtime.digests import DigestCloser
from tests.support.pipeline import FakeClock, pipeline

FLOW = "invoice_validated"
INVOICES = (5001, 5002, 5004, 5005, 5006)
START = datetime(2026, 12, 8, 15, 10, tzinfo=UTC)


def hourly_digest(config: dict[str, Any]) -> None:
    config["flows"][FLOW]["template"] = "{{ invoice_num }}"
    config["flows"][FLOW]["digest"] = {
        "every": "1h", "top": 3,
        "template": "{{ count }} invoices await your approval: {{ items | join(', ') }}"
                    "{% if more %} and {{ more }} more{% endif %}.",
    }


async def test_five_invoices_become_one_digest(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=hourly_digest, clock=FakeClock(START)) as p:
        with sqlite3.connect(p.erp.path) as db:
            db.execute("UPDATE ap_invoices SET approver_phone = '(312) 555-0142'")
        await p.poll()
        for invoice in INVOICES:
            p.erp.validate_invoice(invoice)
        await p.poll()
        await p.poll()  # the overlap reads them again: still five items
        closer = DigestCloser(p.connector.store, p.connector.flows, clock=p.clock)
        assert await closer.close_due() == []  # the window closes at 16:00
        await p.dispatch()
        assert p.notifications(flow=FLOW) == [] and p.sim.messages() == []

        p.clock.advance(datetime(2026, 12, 8, 16, 0, tzinfo=UTC) - p.clock.now)
        (nid,) = await closer.close_due()
        await p.dispatch()
        (digest,) = p.notifications(flow=FLOW)
        assert digest.id == nid and digest.status is Status.DELIVERED
        assert digest.body.startswith("5 invoices await your approval: ") and digest.body.endswith(" and 2 more.")
        assert digest.recipient == "+13125550142"
        assert len(p.sim.messages()) == 1

        p.erp.validate_invoice(5007)  # after the close: the next window
        await p.poll()
        p.clock.advance(timedelta(hours=1))
        (later,) = await closer.close_due()
        await p.dispatch()
        (next_one,) = [n for n in p.notifications(flow=FLOW) if n.id == later]
        assert next_one.body.startswith("1 invoices await your approval: ") and "more" not in next_one.body
        assert len(p.sim.messages()) == 2
