"""SAP ECC in RFC mode for `ml-connector simulate`: the agent simulator, its seed data, its events.

The same business as the Gateway demo (demo_sap): POs created and released, supplier invoices
entered, some of them twice with the same reference; here read through change documents and
RFC_READ_TABLE behind the agent protocol.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from ml_connector.demo_sap import SAP_BUYERS, SAP_SUPPLIERS

SAP_AGENT_TOKEN = "simulator-agent-token"  # noqa: S105 - the simulator's demo token


def sap_agent_simulator(source: Any) -> Any:
    """An agent simulator accepting the config's token and client, in its time zone, seeded."""
    from ml_connector.sim.sap_agent import SapAgentSim

    token = source.agent.token.get_secret_value() if source.agent.token is not None else SAP_AGENT_TOKEN
    sim = SapAgentSim(timezone=source.timezone, client=source.sap_client, token=token)
    for number, name in SAP_SUPPLIERS:
        sim.add_supplier(number, name, phone="+49 89 1234567", email=f"sales@{number}.example")
    for group, name, phone in SAP_BUYERS:
        sim.add_group(group, name, phone)
    return sim


class SapAgentEvents:
    """Business events in the agent simulator: POs created and released, invoices entered (some twice)."""

    def __init__(self, sim: Any) -> None:
        self._sim = sim
        self._invoices = 0
        self._blocked: list[str] = []

    def tick(self, rng: random.Random) -> list[str]:
        sim = self._sim
        roll = rng.random()
        if self._blocked and roll < 0.4:
            ebeln = self._blocked.pop(rng.randrange(len(self._blocked)))
            sim.release_po(ebeln)
            return [f"SAP PO {ebeln} released (change document EINKBELEG)"]
        number, name = rng.choice(SAP_SUPPLIERS)
        if roll < 0.7:
            group = rng.choice(SAP_BUYERS)[0]
            ebeln = sim.create_po(lifnr=number, ekgrp=group, netwr=Decimal(rng.randrange(50_000, 9_000_000)) / 100)
            self._blocked.append(ebeln)
            return [f"SAP PO {ebeln} created for {name}"]
        self._invoices += 1
        reference = f"RE-{self._invoices:04d}"
        amount = Decimal(rng.randrange(10_000, 500_000)) / 100
        belnr, _ = sim.post_invoice(lifnr=number, xblnr=reference, amount=amount)
        events = [f"SAP invoice {reference} from {name} entered as {belnr}"]
        if self._invoices % 3 == 1:
            again, _ = sim.post_invoice(lifnr=number, xblnr=reference, amount=amount)
            events.append(f"SAP invoice {reference} from {name} entered again as {again} (same reference)")
        return events
