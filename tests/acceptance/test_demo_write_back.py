"""The demo writes back every final EBS status it shows: its journeys against the EBS simulator's audit."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from ml_connector.demo import Journey, run_demo, written_back_line


def _journey(flow: str, record: str, *steps: str) -> Journey:
    journey = Journey(flow=flow, record=record)
    for step in steps:
        journey.add(step)
    return journey


def test_the_reconciliation_names_a_final_status_missing_from_the_audit() -> None:
    journeys = {
        1: _journey("ebs_po_approved", "5002", "pending", "sent", "undelivered"),
        2: _journey("ebs_invoice_validated", "10002", "pending", "sent", "delivered"),
        3: _journey("ebs_invoice_validated", "10003", "pending", "sending"),  # not final: not due
        4: _journey("po_approved", "1002", "pending", "delivered"),  # not an EBS flow
    }
    rows = [{"source_id": "5002", "status": "UNDELIVERED"}]
    flows = {"ebs_po_approved", "ebs_invoice_validated"}

    assert written_back_line(journeys, flows, rows) == (
        "final EBS statuses shown but not written back: #2 ebs_invoice_validated 10002 delivered")
    rows.append({"source_id": "10002", "status": "DELIVERED"})
    assert written_back_line(journeys, flows, rows) == "every final EBS status shown (2) was written back"


@pytest.mark.slow
async def test_the_demo_writes_back_every_final_ebs_status_it_shows(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=False, color_system=None)

    delivered = await run_demo(duration=12, data_dir=tmp_path, every=0.3, console=console)

    text = out.getvalue()
    assert delivered, text
    # A final line: "#7  ebs_po_approved  5002  +44207•••0958  pending → ... → undelivered  [30006] ..."
    # (or "... (no number)  failed  no usable phone number ..." for one that never reached Twilio).
    finals = re.findall(r"^#\d+\s+(ebs_\w+)\s.*?(?:→ |\s)(delivered|undelivered|failed)(?:\s|$)", text, re.M)
    assert finals, text  # the demo showed EBS notifications reaching a final status
    assert f"every final EBS status shown ({len(finals)}) was written back" in text, text
    assert f"{len(finals)} final delivery status(es) written back" in text, text
