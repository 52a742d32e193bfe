"""SAP ECC harnesses (OData through Gateway): client paging with $top/$skip, and server paging.

The entity is purchase orders of a customer's ZMM_PO_SRV, whose ChangedOn/ChangedAt are the
newest committed change document (DATS + TIMS, SAP wall time in Europe/Berlin). ChangedOn is a
DATS field, so the adapter's filter keeps whole days and the times are judged client-side.
"Late" is what it is at an SAP site: a V1 update task committing a change document stamped
with the time of its dialog step.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx

from ml_connector.sim.sap_gateway import SapGatewaySim
from ml_connector.sources.base import Closeable, Source
from ml_connector.sources.sap_ecc import SapEccConfig
from ml_connector.sources.sap_odata_source import SapODataSource
from tests.support.clock import ManualClock

from .harness import START

BASE_URL = "http://sapgw.test:44300"
USER, PASSWORD = "MLC_ODATA", "mlc-pass"
SUPPLIER = "100000"


class SapHarness:
    """SapGatewaySim in-process behind httpx.ASGITransport, the adapter in OData mode."""

    page_size = 3

    def __init__(self, name: str, *, paging: str = "skip") -> None:
        self.name = name
        self.clock = ManualClock(START)
        server = ["PurchaseOrderSet"] if paging == "server" else []
        self.sim = SapGatewaySim(clock=self.clock, server_paging=server, server_page_size=self.page_size)
        self.sim.add_supplier(SUPPLIER, "Müller Präzision GmbH", phone="+49 89 1234567")
        self.sim.add_group("001", "Einkauf Team 1", "+14155550100")
        self.entity = "purchase_orders"
        self.key_field = "Ebeln"
        self.expected_check: Mapping[str, str] = {"client": "100", "user": USER, "release": "731",
                                                  "system_id": "ECD"}
        self._built: list[Source] = []

    def config(self, **overrides: Any) -> SapEccConfig:
        raw: dict[str, Any] = {
            "type": "sap_ecc", "mode": "odata", "base_url": BASE_URL, "client": "100", "username": USER,
            "password": PASSWORD, "timezone": "Europe/Berlin", "retry_delay": 0,
            "services": {"po": "/sap/opu/odata/sap/ZMM_PO_SRV;v=0001/"},
            "entities": {self.entity: {
                "entity_set": "PurchaseOrderSet", "key": "Ebeln", "alpha": {"Ebeln": 10, "Lifnr": 10},
                "change": {"date": "ChangedOn", "time": "ChangedAt"}, "page_size": self.page_size,
                "where": [{"field": "Bstyp", "eq": "F"}],
            }},
        }
        raw.update(overrides)
        return SapEccConfig.model_validate(raw)

    def build(self, **overrides: Any) -> Source:
        source = SapODataSource(f"sap-{self.name}", self.config(**overrides),
                                transport=httpx.ASGITransport(self.sim.create_app()), clock=self.clock)
        self._built.append(source)
        return source

    def change(self, count: int) -> list[str]:
        return [self.sim.create_po(lifnr=SUPPLIER, netwr="1250.00") for _ in range(count)]

    def late(self, age: timedelta) -> str:
        """A PO whose change document is stamped `age` ago and committed only now (V1 update)."""
        ebeln = self.sim.create_po(lifnr=SUPPLIER, at=self.clock() - age, committed=False)
        assert self.sim.commit_updates() == 1
        return ebeln

    def expire_sessions(self) -> bool:
        self.sim.expire_sessions()
        return True

    def logins(self) -> int:
        return self.sim.logins

    def corrupt_next(self) -> None:
        self.sim.malform_next(1)

    async def aclose(self) -> None:
        for source in self._built:
            if isinstance(source, Closeable):
                await source.aclose()
