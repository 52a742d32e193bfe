"""A faithful SYSPRO imitation: e.net WCF REST, SYSPRO OData v4, and a control API.

Serve ``SysproSim().create_app()`` in-process (``httpx.ASGITransport``) or with uvicorn. It keeps
the behaviours that make SYSPRO hard to integrate with, because an adapter that passes against
an easier server fails against a real one:

* e.net answers HTTP 200 to everything, errors included (``ERROR: ...`` text or lower-cased
  validation XML); bodies are Windows-1252 bytes served as ``application/octet-stream``.
* The UserId ends in two spaces that must travel back (``UserId=...%20%20``).
* Licence seats run out; a second logon by the same operator evicts the first session; idle
  sessions time out; overlapping calls on one UserId are refused.
* Keys are space-padded (``" 00001"``); display numbers carry thousands separators; dates have
  no time; COMFND has no offset, so clients page by key.
* Passwords and XML travel in the query string: URLs longer than ``max_query_length`` are refused
  by HTTP.sys with 414 before e.net sees them.
* Back-dated AP postings: business dates in the past on a row that is new; only the rowversion
  ``TimeStamp`` moves forward.
* Faults: HTTP.sys 503 for the next N calls, a truncated body for the next call, added latency.

Each module states the choices made where no source pins SYSPRO down: syspro_sessions (error
texts, seats, eviction, timeout), syspro_data (key padding, PO statuses, rowversion),
syspro_comfnd (COMFND errors and value types), syspro_porqry, syspro_odata (service root, types,
paging, errors), syspro_odata_filter.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ml_connector.sim.armed import ArmedFaults, OffsetClock
from ml_connector.sim.syspro_control import control_routes
from ml_connector.sim.syspro_data import ORDER_STATUS, SCHEMAS, TIMESTAMP, Row, SysproData
from ml_connector.sim.syspro_enet import enet_endpoint
from ml_connector.sim.syspro_odata import ODataService, TimestampStyle
from ml_connector.sim.syspro_sessions import DEFAULT_OPERATORS, SessionBook, SysproOperator
from ml_connector.sim.syspro_wire import httpsys_page

__all__ = ["DEFAULT_OPERATORS", "ORDER_STATUS", "SCHEMAS", "SysproOperator", "SysproSim"]

ENET_PREFIX = "/SYSPROWCFService/Rest"
FAULT_STATUSES = frozenset({502, 503})


class SysproSim:
    """The simulated SYSPRO server: one company, its operators, sessions, data and fault plan."""

    def __init__(
        self,
        *,
        operators: Iterable[SysproOperator] = DEFAULT_OPERATORS,
        company: str = "EDU1",
        session_timeout: float = 1200,
        clock: Callable[[], datetime] | None = None,
        seed: int = 5,
        company_password: str = "",
        enet_seats: int = 3,
        version: str = "8.0.0.21",
        bo_version: str = "8.0.004",
        latency: float = 0.0,
        max_query_length: int = 16384,
        timestamp_tables: Iterable[str] = ("PorMasterHdr", "ApInvoice"),
        odata_root: str | None = None,
        odata_page_size: int = 100,
        odata_timestamp: TimestampStyle = "binary",
        server_tz: str = "Africa/Johannesburg",
    ) -> None:
        self._clock = OffsetClock(clock, "SysproSim")
        self.tz = ZoneInfo(server_tz)
        self.company = company
        self.version = version
        self.bo_version = bo_version
        self.max_query_length = max_query_length
        self.rng = random.Random(seed)
        self.sessions = SessionBook(operators=operators, company=company, company_password=company_password,
                                    seats=enet_seats, timeout=session_timeout, rng=self.rng)
        self.data = SysproData(today=self.today(), rng=self.rng, timestamp_tables=timestamp_tables)
        self.odata = ODataService(self, root=odata_root or f"/SYSPROODataService/odata/{company}",
                                  page_size=odata_page_size, timestamp_style=odata_timestamp)
        self.latency = 0.0
        self.set_latency(latency)
        self._faults = ArmedFaults()

    # -- clock -----------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The injected clock plus the control offset, in UTC; naive clocks are rejected."""
        return self._clock.now()

    def today(self) -> date:
        """The server's local date (SYSPRO stores dates with no time)."""
        return self.now().astimezone(self.tz).date()

    def advance_clock(self, seconds: float) -> None:
        self._clock.offset += timedelta(seconds=seconds)

    # -- fault plan ------------------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Every e.net and OData call takes this long (inside the session's in-flight window)."""
        if seconds < 0:
            raise ValueError("latency must not be negative")
        self.latency = seconds

    async def pause(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """HTTP.sys answers the next ``count`` e.net/OData calls with ``status`` (502 or 503)."""
        if status not in FAULT_STATUSES:
            raise ValueError("status must be 502 or 503")
        if count < 1:
            raise ValueError("count must be at least 1")
        self._faults.fail_next(count, status)

    def malform_next(self, count: int = 1) -> None:
        """Truncate the body of the next ``count`` e.net/OData responses."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self._faults.malform_next(count)

    def take_malformed(self) -> bool:
        return self._faults.take_malformed()

    def gate(self, request: Request) -> Response | None:
        """What HTTP.sys does before the service sees the call: URL length limit, then faults."""
        if len(request.scope.get("query_string", b"")) + len(request.url.path) > self.max_query_length:
            return httpsys_page(414)
        status = self._faults.take_status()
        if status is not None:
            return httpsys_page(status)
        return None

    # -- sessions --------------------------------------------------------------------------------

    def evict(self, operator: str) -> int:
        """Someone logs on as ``operator`` elsewhere: that operator's sessions die."""
        return self.sessions.evict(operator)

    def expire_sessions(self) -> int:
        """Every session dies now (licence manager restart, e.net service recycled)."""
        return self.sessions.expire_all()

    # -- business changes ------------------------------------------------------------------------

    def add_supplier(self, supplier: str, name: str, *, currency: str = "$") -> None:
        self.data.add_supplier(supplier, name, currency=currency)

    def add_purchase_order(
        self,
        *,
        supplier: str,
        lines: Iterable[tuple[str, Decimal, Decimal]],
        status: str = "0",
        entry_date: date | None = None,
        buyer: str = "BRH",
    ) -> str:
        """Enter a PO (default status '0', in process = awaiting approval); returns its padded key."""
        return self.data.add_purchase_order(supplier=supplier, lines=lines, status=status, buyer=buyer,
                                            entry_date=entry_date or self.today())

    def set_po_status(self, purchase_order: str, status: str) -> int | None:
        """Change a PO's status ('1' = approved); returns the row's new TimeStamp if it has one."""
        return self._stamp(self.data.set_po_status(purchase_order, status, today=self.today()))

    def post_ap_invoice(
        self,
        *,
        supplier: str,
        invoice: str,
        amount: Decimal,
        invoice_date: date | None = None,
        post_date: date | None = None,
    ) -> int | None:
        """Post an AP invoice now; give past dates for a back-dated posting. Returns its TimeStamp."""
        today = self.today()
        return self._stamp(self.data.post_ap_invoice(
            supplier=supplier, invoice=invoice, amount=amount, invoice_date=invoice_date or today,
            post_date=post_date or today))

    @staticmethod
    def _stamp(row: Row) -> int | None:
        value = row.get(TIMESTAMP)
        return value if isinstance(value, int) else None

    def state(self) -> dict[str, object]:
        return {
            "now": self.now().isoformat(),
            "today": self.today().isoformat(),
            "sessions": [{"operator": s.operator, "busy": s.busy} for s in self.sessions.live()],
            "faults": list(self._faults.statuses),
            "malformed": self._faults.malformed,
            "latency": self.latency,
        }

    # -- the app ---------------------------------------------------------------------------------

    def create_app(self) -> Starlette:
        """The ASGI app: e.net under ``/SYSPROWCFService/Rest``, OData under its root, ``/_sim``."""
        async def enet(request: Request) -> Response:
            return await enet_endpoint(self, request)

        async def odata(request: Request) -> Response:
            return await self.odata.handle(request)

        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        routes = [
            Route(ENET_PREFIX + "/{rest:path}", enet, methods=methods),
            Route(self.odata.root, odata, methods=methods),
            Route(self.odata.root + "/{rest:path}", odata, methods=methods),
            *control_routes(self),
        ]
        return Starlette(routes=routes)
