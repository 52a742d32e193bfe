"""The SYSPRO simulator's control API under ``/_sim/``: the Python control methods over JSON.

``POST /_sim/<action>`` with a JSON object of arguments; ``GET /_sim/state`` shows the clock,
live sessions and armed faults. Unknown rows are 404, bad arguments 400. Not subject to faults,
latency or authentication: it is the test's hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ml_connector.sim.control import Args, action_route, ok

if TYPE_CHECKING:
    from ml_connector.sim.syspro import SysproSim


def _date(value: object) -> date | None:
    return date.fromisoformat(str(value)) if value else None


def _lines(value: object) -> list[tuple[str, Decimal, Decimal]]:
    if not isinstance(value, list):
        raise ValueError("lines must be a list of {stock_code, quantity, price}")
    return [(str(item["stock_code"]), Decimal(str(item["quantity"])), Decimal(str(item["price"])))
            for item in value]


ACTIONS: Mapping[str, Callable[[SysproSim, Args], object]] = {
    "add_supplier": lambda s, a: ok(lambda: s.add_supplier(
        str(a["supplier"]), str(a["name"]), currency=str(a.get("currency", "$")))),
    "add_purchase_order": lambda s, a: {"purchase_order": s.add_purchase_order(
        supplier=str(a["supplier"]), lines=_lines(a["lines"]), status=str(a.get("status", "0")),
        entry_date=_date(a.get("entry_date")))},
    "set_po_status": lambda s, a: {"timestamp": s.set_po_status(str(a["purchase_order"]), str(a["status"]))},
    "post_ap_invoice": lambda s, a: {"timestamp": s.post_ap_invoice(
        supplier=str(a["supplier"]), invoice=str(a["invoice"]), amount=Decimal(str(a["amount"])),
        invoice_date=_date(a.get("invoice_date")), post_date=_date(a.get("post_date")))},
    "evict": lambda s, a: {"evicted": s.evict(str(a["operator"]))},
    "expire_sessions": lambda s, a: {"expired": s.expire_sessions()},
    "set_latency": lambda s, a: ok(lambda: s.set_latency(float(a["seconds"]))),
    "fail_next": lambda s, a: ok(lambda: s.fail_next(int(a.get("count", 1)), int(a.get("status", 503)))),
    "malform_next": lambda s, a: ok(lambda: s.malform_next(int(a.get("count", 1)))),
    "advance_clock": lambda s, a: ok(lambda: s.advance_clock(float(a["seconds"]))),
}


def control_routes(sim: SysproSim) -> list[Route]:
    async def state(request: Request) -> JSONResponse:
        return JSONResponse(sim.state())

    return [
        Route("/_sim/state", state, methods=["GET"]),
        action_route(sim, ACTIONS),
    ]
