"""SAP ECC harness in RFC mode: the adapter speaking protocol v1 to the agent simulator.

The entity is purchase orders found through their change documents (CDHDR, object class
EINKBELEG, UDATE/UTIME in Europe/Berlin wall time) and read with BAPI_PO_GETDETAIL1. The
CDHDR filter keeps whole days, so the times are judged client-side; rows come back in no
particular order and are paged with ROWSKIPS/ROWCOUNT. "Late" is a V1 update task committing
a change document stamped with the time of its dialog step.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx

from ml_connector.sim.sap_agent import SapAgentSim
from ml_connector.sources.base import Closeable, Source
from ml_connector.sources.sap_ecc import SapEccConfig
from ml_connector.sources.sap_rfc_source import SapRfcSource
from tests.support.clock import ManualClock

from .harness import START

AGENT_URL = "http://sap-agent.test:8950"
TOKEN = "rfc-contract-token"
SUPPLIER = "100000"


def rfc_config(page_size: int = 3, **overrides: Any) -> SapEccConfig:
    raw: dict[str, Any] = {
        "type": "sap_ecc", "mode": "rfc", "client": "100", "timezone": "Europe/Berlin", "retry_delay": 0,
        "agent": {"url": AGENT_URL, "token": TOKEN},
        "rfc": {"entities": {
            "purchase_orders": {"kind": "change_documents", "page_size": page_size},
            "invoices": {"kind": "table", "table": "RBKP", "key": ["BELNR", "GJAHR"], "page_size": page_size,
                         "fields": ["BUKRS", "LIFNR", "XBLNR", "CPUDT", "CPUTM", "WAERS", "RMWWR", "RBSTAT"],
                         "change": {"date": "CPUDT", "time": "CPUTM"}},
            "buyers": {"kind": "table", "table": "T024", "key": "EKGRP"},
            "suppliers": {"kind": "table", "table": "LFA1", "key": "LIFNR", "alpha": {"LIFNR": 10},
                          "join": [{"table": "ADR6", "by": {"ADRNR": "ADDRNUMBER"}, "fields": ["SMTP_ADDR"],
                                    "where": [{"field": "FLGDEFAULT", "eq": "X"}]}]},
            "vendor_detail": {"kind": "bapi", "function": "BAPI_VENDOR_GETDETAIL", "key_parameter": "VENDORNO"},
        }},
    }
    raw.update(overrides)
    return SapEccConfig.model_validate(raw)


class SapRfcHarness:
    """SapAgentSim in-process behind httpx.ASGITransport, the adapter in RFC mode."""

    page_size = 3

    def __init__(self, name: str, *, entity: str = "purchase_orders") -> None:
        self.name = name
        self.clock = ManualClock(START)
        self.sim = SapAgentSim(clock=self.clock, token=TOKEN)
        self.sim.add_supplier(SUPPLIER, "Müller Präzision GmbH", phone="+49 89 1234567", email="sales@mueller.example")
        self.sim.add_group("001", "Einkauf Team 1", "+14155550100")
        self.entity = entity
        self.key_field = "PO_NUMBER" if entity == "purchase_orders" else "BELNR"
        self.expected_check: Mapping[str, str] = {"client": "100", "user": "MLC_RFC", "release": "731",
                                                  "system_id": "ECD", "mode": "rfc"}
        self._built: list[Source] = []

    def build(self, **overrides: Any) -> Source:
        source = SapRfcSource(f"sap-rfc-{self.name}", rfc_config(self.page_size, **overrides),
                              transport=httpx.ASGITransport(self.sim.create_app()), clock=self.clock)
        self._built.append(source)
        return source

    def change(self, count: int) -> list[str]:
        if self.entity == "invoices":
            return ["|".join(self.sim.post_invoice(lifnr=SUPPLIER, xblnr=f"RE-{n}", amount="99.50"))
                    for n in range(count)]
        return [self.sim.create_po(lifnr=SUPPLIER, netwr="1250.00") for _ in range(count)]

    def late(self, age: timedelta) -> str:
        """A PO (its change document) or an invoice stamped `age` ago and committed only now (V1 update)."""
        if self.entity == "invoices":
            key = "|".join(self.sim.post_invoice(lifnr=SUPPLIER, xblnr="RE-LATE", amount="10.00",
                                                 at=self.clock() - age, committed=False))
        else:
            key = self.sim.create_po(lifnr=SUPPLIER, at=self.clock() - age, committed=False)
        assert self.sim.commit_updates() == 1
        return key

    def expire_sessions(self) -> bool:
        return False  # reads are stateless calls; the agent holds the SAP logon

    def logins(self) -> int:
        return 0

    def corrupt_next(self) -> None:
        self.sim.malform_next(1)

    async def aclose(self) -> None:
        for source in self._built:
            if isinstance(source, Closeable):
                await source.aclose()
