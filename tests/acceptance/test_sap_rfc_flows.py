"""examples/sap-ecc-rfc.yaml's flows through the real poller and store against the agent simulator:
a PO created and then released notifies its buyer (T024, looked up through the source) with the
BAPI's amount and delivery date; a late V1 update is caught once; an invoice keyed in twice with
the same reference notifies accounts payable once, another supplier's same reference once more."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.templates import compile_template
from ml_connector.runtime.poller import LOOKBACK, FlowRuntime, Poller
from ml_connector.sim.sap_agent import SapAgentSim
from ml_connector.sources.sap_ecc import SapEccConfig
from ml_connector.sources.sap_rfc_source import SapRfcSource
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NotificationFilter
from ml_connector.store.sql import SqlStore
from tests.support.clock import ManualClock

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sap-ecc-rfc.yaml"
TOKEN = "acceptance-agent-token"
BUYER = "+13125550182"
HEAD_OF_PROCUREMENT = "+15005550012"  # the example's routing rule for orders of 50,000 and more


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
    yield opened
    opened.close()


class Site:
    def __init__(self) -> None:
        example: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
        self.clock = ManualClock(NOW)
        self.sim = SapAgentSim(clock=self.clock, token=TOKEN)
        self.sim.add_supplier("100000", "Müller Präzision GmbH")
        self.sim.add_group("002", "Einkauf Team 2", BUYER)
        section = {**example["sources"]["sap"], "retry_delay": 0,
                   "agent": {"url": "http://agent.test:8950", "token": TOKEN}}
        self.source = SapRfcSource("sap", SapEccConfig.model_validate(section),
                                   transport=httpx.ASGITransport(self.sim.create_app()), clock=self.clock)
        self.flows = example["flows"]

    def poller(self, name: str, store: SqlStore) -> Poller:
        spec = FlowSpec.model_validate(self.flows[name])
        flow = FlowRuntime(name, spec, self.source, compile_template(name, spec.template), "demo", "+15005550006",
                           "DE")
        return Poller(flow, store, self.clock)


def sent(store: SqlStore, flow: str) -> list[tuple[str, str, str]]:
    return sorted((v.record_key, v.recipient, v.body)
                  for v in store.list_notifications(NotificationFilter(flow=flow, limit=100)))


async def test_a_po_created_then_released_notifies_its_buyer_each_time(store: SqlStore) -> None:
    site = Site()
    created, released = site.poller("po_created", store), site.poller("po_released", store)
    await created.poll()
    await released.poll()
    site.clock.advance(timedelta(minutes=1))
    ebeln = site.sim.create_po(lifnr="100000", ekgrp="002", netwr="61250.00", items=2)
    site.clock.advance(timedelta(minutes=1))
    await created.poll()
    await released.poll()
    [(key, to, body)] = sent(store, "po_created")
    assert (key, to) == (ebeln, BUYER)
    assert body == f"PO {ebeln} created for supplier 100000: €61,250.00, delivery 2024-03-19."
    assert sent(store, "po_released") == []  # its creation touched no release field
    site.clock.advance(timedelta(minutes=1))
    site.sim.release_po(ebeln)
    site.clock.advance(timedelta(minutes=1))
    await created.poll()
    await released.poll()
    notes = sent(store, "po_released")
    assert sorted(to for _, to, _ in notes) == sorted([BUYER, HEAD_OF_PROCUREMENT])
    assert all(key == ebeln and body.startswith(f"PO {ebeln} released (X): €61,250.00") for key, _, body in notes)
    assert len(sent(store, "po_created")) == 1
    await site.source.aclose()


async def test_a_release_committed_late_by_the_update_task_is_caught_once(store: SqlStore) -> None:
    site = Site()
    ebeln = site.sim.create_po(lifnr="100000", ekgrp="002", at=NOW - timedelta(minutes=1))
    released = site.poller("po_released", store)
    await released.poll()
    site.clock.advance(timedelta(minutes=30))
    await released.poll()
    # stamped after the flow started but older than the overlap when the update task commits it
    site.sim.release_po(ebeln, at=site.clock() - timedelta(minutes=15), committed=False)
    site.clock.advance(timedelta(minutes=1))
    site.sim.commit_updates()
    await released.poll()
    assert sent(store, "po_released") == []
    await released.poll(LOOKBACK)
    site.clock.advance(timedelta(minutes=1))
    await released.poll(LOOKBACK)
    await released.poll()
    assert [key for key, _, _ in sent(store, "po_released")] == [ebeln]
    await site.source.aclose()


async def test_an_invoice_keyed_in_twice_notifies_once(store: SqlStore) -> None:
    site = Site()
    poller = site.poller("invoice_arrived", store)
    await poller.poll()
    site.clock.advance(timedelta(minutes=1))
    site.sim.post_invoice(lifnr="100000", xblnr="RE-0001", amount="980.00")
    site.clock.advance(timedelta(minutes=1))
    await poller.poll()
    site.clock.advance(timedelta(minutes=3))
    site.sim.post_invoice(lifnr="100000", xblnr="RE-0001", amount="980.00")     # the same invoice again
    site.sim.post_invoice(lifnr="100001", xblnr="RE-0001", amount="15.00")      # another supplier, same number
    site.clock.advance(timedelta(minutes=1))
    await poller.poll()
    bodies = sorted(body.split(" entered")[0] for _, _, body in sent(store, "invoice_arrived"))
    assert bodies == ["Invoice RE-0001 from supplier 100000", "Invoice RE-0001 from supplier 100001"]
    await site.source.aclose()
