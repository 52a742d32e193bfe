"""SAP ECC in `ml-connector demo` and `simulate`: the Gateway simulator, its seed data, its events.

In the demo a PO's release becomes an SMS to its purchasing group's buyer (looked up through the
source), and supplier invoices notify accounts payable once per supplier reference: every few
invoices one is keyed in a second time with the same reference, and still notifies once.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

SAP_TZ = "Europe/Berlin"
SAP_USER, SAP_PASSWORD = "MLC_ODATA", "mlc-pass"  # noqa: S105 - the simulator's demo credential
SAP_FAST = {"every": "1s", "overlap": "2m", "clock_skew": "0.5s"}
SAP_SUPPLIERS = (("100000", "Müller Präzision GmbH"), ("100001", "Nordic Steel AB"), ("100002", "Lyon Emballages SA"))
SAP_BUYERS = (("001", "Einkauf Team 1", "+13125550181"), ("002", "Einkauf Team 2", "+13125550182"))
SAP_AP = "+13125550183"


def sap_sections(sap_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SAP source and its flows, as in examples/sap-ecc.yaml but polling every second."""
    source = {
        "type": "sap_ecc", "mode": "odata", "base_url": sap_url, "client": "100", "username": SAP_USER,
        "password": SAP_PASSWORD, "timezone": SAP_TZ, "retry_delay": 0.2,
        "services": {"po": "/sap/opu/odata/sap/ZMM_PO_SRV;v=0001/",
                     "invoices": "/sap/opu/odata/sap/ZMM_SUPPLIER_INVOICE_SRV/"},
        "entities": {
            "purchase_orders": {"service": "po", "entity_set": "PurchaseOrderSet", "key": "Ebeln",
                                "alpha": {"Ebeln": 10, "Lifnr": 10},
                                "change": {"date": "ChangedOn", "time": "ChangedAt"},
                                "where": [{"field": "Bstyp", "eq": "F"}]},
            "buyers": {"service": "po", "entity_set": "PurchasingGroupSet", "key": "Ekgrp"},
            "invoices": {"service": "invoices", "entity_set": "SupplierInvoiceSet", "key": ["Belnr", "Gjahr"],
                         "alpha": {"Lifnr": 10}, "change": {"date": "Cpudt", "time": "Cputm"}},
        },
    }
    common = {"source": "sap", "sender": "main.alerts", "timezone": SAP_TZ, "currency": "EUR", "schedule": SAP_FAST,
              "retry": {"max_attempts": 4, "base_delay": "1s", "max_delay": "5s"}}
    flows = {
        "sap_po_released": {
            **common, "entity": "purchase_orders", "trigger": {"field": "Frgke", "becomes": "R"},
            "recipients": [{"lookup": {"entity": "buyers", "key_field": "Ekgrp", "fields": ["Telfn"]}}],
            "template": "SAP PO {{ Ebeln | alpha }} released ({{ Frgzu }}): {{ Netwr | money(Waers) }} "
                        "to supplier {{ Lifnr | alpha }}.",
        },
        "sap_invoice_arrived": {
            **common, "entity": "invoices", "trigger": {"field": "Xblnr", "changed": True},
            "dedupe_on": ["Lifnr", "Xblnr", "Bukrs"], "recipients": [{"static": [SAP_AP]}],
            "template": "SAP invoice {{ Xblnr }} from supplier {{ Lifnr | alpha }} entered as {{ Belnr }}: "
                        "{{ Rmwwr | money(Waers) }} due.",
        },
    }
    return source, flows


def seed(sim: Any) -> None:
    """Suppliers with a contact and purchasing groups with their buyers' phones."""
    for number, name in SAP_SUPPLIERS:
        sim.add_supplier(number, name, phone="+49 89 1234567",
                         contacts=[("Sales desk", "+49 89 1234500", f"sales@{number}.example")])
    for group, name, phone in SAP_BUYERS:
        sim.add_group(group, name, phone)


def sap_simulator(source: Any) -> Any:
    """A Gateway simulator accepting the config's user and client, in its time zone, seeded."""
    from ml_connector.sim.sap_gateway import SapGatewaySim

    password = source.password.get_secret_value() if source.password is not None else SAP_PASSWORD
    sim = SapGatewaySim(timezone=source.timezone, client=source.sap_client,
                        users={(source.username or SAP_USER).upper(): password})
    seed(sim)
    return sim


class SapEvents:
    """Business events in the Gateway simulator: POs created and released, invoices entered (some twice)."""

    def __init__(self, sim: Any) -> None:
        self._sim = sim
        self._invoices = 0
        self.duplicates: list[str] = []

    def tick(self, rng: random.Random) -> list[str]:
        sim = self._sim
        blocked = [e for e, po in sim.tables.pos.items() if po.get("Frgke") == "B" and not _released(sim, e)]
        roll = rng.random()
        if blocked and roll < 0.4:
            ebeln = rng.choice(blocked)
            sim.release_po(ebeln)
            return [f"SAP PO {ebeln} released"]
        number, name = rng.choice(SAP_SUPPLIERS)
        if roll < 0.7:
            group = rng.choice(SAP_BUYERS)[0]
            ebeln = sim.create_po(lifnr=number, ekgrp=group, netwr=Decimal(rng.randrange(50_000, 9_000_000)) / 100)
            return [f"SAP PO {ebeln} created for {name}"]
        self._invoices += 1
        reference = f"RE-{self._invoices:04d}"
        amount = Decimal(rng.randrange(10_000, 500_000)) / 100
        belnr, _ = sim.post_invoice(lifnr=number, xblnr=reference, amount=amount)
        events = [f"SAP invoice {reference} from {name} entered as {belnr}"]
        if self._invoices % 3 == 1:  # keyed in twice: same supplier, same reference
            again, _ = sim.post_invoice(lifnr=number, xblnr=reference, amount=amount)
            self.duplicates.append(reference)
            events.append(f"SAP invoice {reference} from {name} entered again as {again} (same reference)")
        return events


def _released(sim: Any, ebeln: str) -> bool:
    return any(c.ebeln == ebeln and c.fields.get("Frgke") == "R" for c in sim.tables.changes)


def sap_duplicates_line(store: Any, duplicates: list[str]) -> str:
    """What became of the invoices keyed in twice: one notification per reference."""
    from ml_connector.store.port import NotificationFilter

    if not duplicates:
        return "SAP: no invoice was keyed in twice during this run"
    views = store.list_notifications(NotificationFilter(flow="sap_invoice_arrived", limit=10_000))
    counts = {ref: sum(1 for v in views if f"invoice {ref} " in v.body) for ref in duplicates}
    shown = ", ".join(f"{ref}: {n}" for ref, n in counts.items())
    return (f"SAP invoices entered twice with the same reference -> notifications (dedupe_on Lifnr, Xblnr, "
            f"Bukrs): {shown}")
