"""The SYSPRO simulator's control API under ``/_sim/``: the Python control methods over JSON.

``POST /_sim/<action>`` with a JSON object of arguments; ``GET /_sim/state`` shows the clock,
live sessions and armed faults. Unknown rows are 404, bad arguments 400. Not subject to faults,
latency or authentication: it is the test's hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from ml_connector.sim.syspro import SysproSim

Args = Mapping[str, Any]


def _date(value: object) -> date | None:
    return date.fromisoformat(str(value)) if value else None


def _lines(value: object) -> list[tuple[str, Decimal, Decimal]]:
    if not isinstance(value, list):
        raise ValueError("lines must be a list of {stock_code, quantity, price}")
    return [(str(item["stock_code"]), Decimal(str(item["quantity"])), Decimal(str(item["price"])))
            for item in value]


def _ok(effect: Callable[[], object]) -> object:
    effect()
    return {"ok": True}


ACTIONS: Mapping[str, Callable[[SysproSim, Args], object]] = {
    "add_supplier": lambda s, a: _ok(lambda: s.add_supplier(
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
    "set_latency": lambda s, a: _ok(lambda: s.set_latency(float(a["seconds"]))),
    "fail_next": lambda s, a: _ok(lambda: s.fail_next(int(a.get("count", 1)), int(a.get("status", 503)))),
    "malform_next": lambda s, a: _ok(lambda: s.malform_next(int(a.get("count", 1)))),
    "advance_clock": lambda s, a: _ok(lambda: s.advance_clock(float(a["seconds"]))),
}


def control_routes(sim: SysproSim) -> list[Route]:
    async def action(request: Request) -> JSONResponse:
        name = str(request.path_params["action"])
        handler = ACTIONS.get(name)
        if handler is None:
            return JSONResponse({"error": f"unknown action {name}"}, status_code=404)
        raw = await request.body()
        try:
            args = json.loads(raw) if raw else {}
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
            return JSONResponse(handler(sim, args))
        except KeyError as exc:
            return JSONResponse({"error": f"not found or missing: {exc.args[0]}"}, status_code=404)
        except (ValueError, TypeError, ArithmeticError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def state(request: Request) -> JSONResponse:
        return JSONResponse(sim.state())

    return [
        Route("/_sim/state", state, methods=["GET"]),
        Route("/_sim/{action}", action, methods=["POST"]),
    ]
