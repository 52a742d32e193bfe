"""SYSPRO harnesses: e.net (COMFND over the WCF REST endpoint, sessions) and OData (Basic, no sessions).

The entity is AP invoices of one supplier the harness owns, read in `date` mode on InvoiceDate,
which is how a site polls ApInvoice without a rowversion. SYSPRO gives rows no change time, so
the adapter stamps each row with the poll's time (`observed`), and "late" means what it means at
a SYSPRO site: an invoice posted now with a business date in the past (a back-dated posting).
Business dates are whole days, so the flow's overlap and lookback window are days too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx

from ml_connector.sim.syspro import SysproSim
from ml_connector.sources.base import Source
from ml_connector.sources.syspro import SysproConfig, SysproSource
from tests.support.clock import ManualClock

from .harness import START, LoginCounter, SimulatedErp

SUPPLIER = "CTR001"
SUPPLIER_NAME = "Contrôle Qualité Sàrl"   # Windows-1252, not ASCII
OPERATOR, PASSWORD, COMPANY = "MLC", "mlc-pass", "EDU1"
BASE_URL = "http://syspro.test:20003"
ODATA_URL = f"{BASE_URL}/SYSPROODataService/odata/{COMPANY}/"


class SysproHarness(SimulatedErp):
    """SysproSim in-process behind httpx.ASGITransport, the adapter in e.net or OData mode."""

    page_size = 3
    observed = True
    overlap = timedelta(days=1)
    lookback_window = timedelta(days=7)

    def __init__(self, name: str, *, mode: str) -> None:
        self.name = name
        self.mode = mode
        self.clock = ManualClock(START)
        # OData pages are server-driven (the service ignores odata.maxpagesize), so the service
        # itself must page small for paging to be exercised.
        self.sim = SysproSim(clock=self.clock, odata_page_size=self.page_size)
        self.sim.add_supplier(SUPPLIER, SUPPLIER_NAME, currency="EUR")
        self.app = LoginCounter(self.sim.create_app(), lambda path: path.lower().endswith("/rest/logon"))
        self.entity = "invoices"
        self.key_field = "Invoice"
        expected = {"mode": mode, "company": COMPANY, "version": self.sim.version}
        if mode == "enet":
            expected["operator"] = OPERATOR
        self.expected_check: Mapping[str, str] = expected
        self._made = 0
        self._built: list[Source] = []

    def config(self, **overrides: Any) -> SysproConfig:
        raw: dict[str, Any] = {
            "type": "syspro", "mode": self.mode, "base_url": BASE_URL, "operator": OPERATOR,
            "operator_password": PASSWORD, "company_id": COMPANY, "odata_url": ODATA_URL,
            "timezone": "Africa/Johannesburg", "retry_delay": 0,
            "entities": {self.entity: {
                "table": "ApInvoice", "key": ["Supplier", "Invoice"], "change": "date",
                "date_column": "InvoiceDate", "numbers": ["OrigInvValue"], "page_size": self.page_size,
                "where": [{"column": "Supplier", "condition": "EQ", "value": SUPPLIER}],
                "joins": [{"table": "ApSupplier", "key": "Supplier", "columns": ["SupplierName"]}],
            }},
        }
        raw.update(overrides)
        return SysproConfig.model_validate(raw)

    def build(self, **overrides: Any) -> Source:
        source = SysproSource(f"syspro-{self.name}", self.config(**overrides),
                              transport=httpx.ASGITransport(self.app),
                              clock=self.clock)
        self._built.append(source)
        return source

    def _post(self, age: timedelta) -> str:
        self._made += 1
        invoice = f"MLC-{self._made:06d}"
        dated = (self.clock() - age).astimezone(self.sim.tz).date()
        self.sim.post_ap_invoice(supplier=SUPPLIER, invoice=invoice, amount=Decimal("1250.00") + self._made,
                                 invoice_date=dated)
        return f"{SUPPLIER}|{invoice}"

    def change(self, count: int) -> list[str]:
        return [self._post(timedelta()) for _ in range(count)]

    def late(self, age: timedelta) -> str:
        """An invoice posted now with an InvoiceDate `age` ago (a back-dated posting)."""
        return self._post(age)

    def expire_sessions(self) -> bool:
        if self.mode == "odata":
            return False
        self.sim.expire_sessions()
        return True
