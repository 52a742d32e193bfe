"""The demo's SAP flows through the real poller and store against the Gateway simulator:
a PO released notifies its buyer (looked up through the source); an invoice keyed in twice with
the same reference notifies accounts payable once, another supplier's same reference once more."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.templates import compile_template
from ml_connector.demo_sap import SAP_AP, SAP_BUYERS, sap_sections, seed
from ml_connector.runtime.poller import FlowRuntime, Poller
from ml_connector.sim.sap_gateway import SapGatewaySim
from ml_connector.sources.sap_ecc import SapEccConfig
from ml_connector.sources.sap_odata_source import SapODataSource
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NotificationFilter
from ml_connector.store.sql import SqlStore
from tests.support.clock import ManualClock

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
    yield opened
    opened.close()


class Site:
    def __init__(self) -> None:
        self.clock = ManualClock(NOW)
        self.sim = SapGatewaySim(clock=self.clock, timezone="Europe/Berlin")
        seed(self.sim)
        section, self.flows = sap_sections("http://sapgw.test:44300")
        self.source = SapODataSource("sap", SapEccConfig.model_validate({**section, "retry_delay": 0}),
                                     transport=httpx.ASGITransport(self.sim.create_app()), clock=self.clock)

    def poller(self, name: str, store: SqlStore) -> Poller:
        spec = FlowSpec.model_validate(self.flows[name])
        flow = FlowRuntime(name, spec, self.source, compile_template(name, spec.template), "main", "+15005550006",
                           "DE")
        return Poller(flow, store, self.clock)


def sent(store: SqlStore, flow: str) -> list[tuple[str, str, str]]:
    return sorted((v.record_key, v.recipient, v.body)
                  for v in store.list_notifications(NotificationFilter(flow=flow, limit=100)))


async def test_a_released_po_notifies_its_buyer(store: SqlStore) -> None:
    site = Site()
    poller = site.poller("sap_po_released", store)
    ebeln = site.sim.create_po(lifnr="100000", ekgrp="002", netwr="61250.00")
    await poller.poll()
    assert sent(store, "sap_po_released") == []  # created, not released
    site.clock.advance(timedelta(minutes=1))
    site.sim.release_po(ebeln)
    site.clock.advance(timedelta(seconds=2))
    await poller.poll()
    site.clock.advance(timedelta(minutes=1))
    await poller.poll()
    [(key, to, body)] = sent(store, "sap_po_released")
    assert (key, to) == (ebeln, SAP_BUYERS[1][2])
    assert body.startswith(f"SAP PO {ebeln} released (X):") and "61,250.00" in body and "supplier 100000." in body
    await site.source.aclose()


async def test_an_invoice_keyed_in_twice_notifies_once(store: SqlStore) -> None:
    site = Site()
    poller = site.poller("sap_invoice_arrived", store)
    await poller.poll()
    site.clock.advance(timedelta(minutes=1))
    first, _ = site.sim.post_invoice(lifnr="100000", xblnr="RE-0001", amount="980.00")
    site.clock.advance(timedelta(minutes=1))
    await poller.poll()
    site.clock.advance(timedelta(minutes=3))
    site.sim.post_invoice(lifnr="100000", xblnr="RE-0001", amount="980.00")     # the same invoice again
    site.sim.reverse_invoice(first, "2024")                                      # and a reversal of the first
    site.sim.post_invoice(lifnr="100001", xblnr="RE-0001", amount="15.00")      # another supplier, same number
    site.clock.advance(timedelta(minutes=1))
    await poller.poll()
    notes = sent(store, "sap_invoice_arrived")
    assert [to for _, to, _ in notes] == [SAP_AP, SAP_AP]
    assert sorted(body.split(" entered")[0] for _, _, body in notes) == [
        "SAP invoice RE-0001 from supplier 100000", "SAP invoice RE-0001 from supplier 100001"]
    await site.source.aclose()


async def test_the_example_notices_an_invoice_posted_without_a_timestamp_moving(store: SqlStore) -> None:
    """examples/sap-ecc.yaml's invoice_posted: parked (RBSTAT A), later posted (5); CPUDT/CPUTM stay."""
    import yaml

    example = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "sap-ecc.yaml").read_text())
    site = Site()
    section = {**example["sources"]["sap"], "base_url": "http://sapgw.test:44300", "password": "mlc-pass",
               "retry_delay": 0}
    site.source = SapODataSource("sap", SapEccConfig.model_validate(section),
                                 transport=httpx.ASGITransport(site.sim.create_app()), clock=site.clock)
    site.flows = example["flows"]
    poller = site.poller("invoice_posted", store)
    await poller.poll()
    site.clock.advance(timedelta(minutes=5))
    belnr, gjahr = site.sim.post_invoice(lifnr="100000", xblnr="RE-7", amount="410.00", status="A")
    site.clock.advance(timedelta(minutes=5))
    await poller.poll()
    assert sent(store, "invoice_posted") == []           # parked: no event yet
    site.clock.advance(timedelta(hours=2))
    site.sim.set_invoice_status(belnr, gjahr, "5")        # posted in MIRO; the entry stamp does not move
    site.clock.advance(timedelta(minutes=5))
    await poller.poll()
    site.clock.advance(timedelta(minutes=5))
    await poller.poll()
    await poller.poll("lookback")
    [(key, to, body)] = sent(store, "invoice_posted")
    assert key == f"{belnr}|{gjahr}" and to == "+15005550011" and "posted: €410.00" in body
    await site.source.aclose()
