"""runtime.preview for a caller that holds a Connector (the dashboard): same answer, nothing stored."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ml_connector.errors import ConfigError
from ml_connector.runtime.preview import preview_connector
from tests.support.pipeline import pipeline


def _open_po(p: object) -> int:
    rows = p.erp.rows("po_headers")  # type: ignore[attr-defined]
    return next(int(str(r["po_id"])) for r in rows if r["status"] in ("INCOMPLETE", "IN PROCESS"))


async def test_preview_of_a_running_connector_shows_the_next_event_and_stores_nothing(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        po = _open_po(p)
        await p.poll()                 # the flow has run: its records' last-seen values are stored
        p.clock.advance(10)
        p.erp.approve_po(po)
        p.clock.advance(10)
        found = await preview_connector(p.connector, "po_approved", since=timedelta(days=2))
        assert [item.record_key for item in found.items] == [str(po)]
        assert found.items[0].event.endswith("-> APPROVED")
        assert found.would_send == 1 and found.notes == []
        assert p.notifications() == []  # nothing stored by the preview
        reports = await p.poll("po_approved", advance=0)
        assert reports[0].inserted == 1  # the poll still sees it: the preview updated no last-seen value
        again = await preview_connector(p.connector, "po_approved", since=timedelta(days=2))
        assert again.items == [] and again.fired == 0  # polled: the transition is now its last-seen value


async def test_preview_of_a_disabled_flow_and_an_unknown_one(tmp_path: Path) -> None:
    def disable(config: dict[str, object]) -> None:
        config["flows"]["invoice_validated"]["enabled"] = False  # type: ignore[index]

    async with pipeline(tmp_path, tweak=disable) as p:
        assert "invoice_validated" not in p.connector.flows
        found = await preview_connector(p.connector, "invoice_validated", since=timedelta(days=2))
        assert found.flow == "invoice_validated"
        with pytest.raises(ConfigError, match="no flow 'nope'"):
            await preview_connector(p.connector, "nope", since=timedelta(days=2))
