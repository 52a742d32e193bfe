"""The EBS simulator's control API under ``/_sim/``: the Python control methods over JSON.

``POST /_sim/<action>`` with a JSON object of arguments; ``GET /_sim/audit`` lists write-back
rows; ``GET /_sim/state`` shows the clock, pending transactions and live sessions. Unknown rows
are 404, bad arguments 400. Not subject to faults or authentication: it is the test's hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ml_connector.sim.control import Args, action_route, ok

if TYPE_CHECKING:
    from ml_connector.sim.oracle_ebs import ControlResult, EbsSim


def _result(r: ControlResult) -> dict[str, object]:
    return {"key": r.key, "txn": r.txn}


def _commit_flag(a: Args) -> bool:
    value = a.get("commit", True)
    if not isinstance(value, bool):
        raise ValueError("commit must be true or false")
    return value


def _hire(s: EbsSim, a: Args) -> object:
    start = date.fromisoformat(a["start"]) if a.get("start") else None
    return _result(s.hire(str(a["first_name"]), str(a["last_name"]), start=start, mobile=a.get("mobile"),
                          commit=_commit_flag(a)))


_ACTIONS: Mapping[str, Callable[[EbsSim, Args], object]] = {
    "validate_invoice": lambda s, a: _result(s.validate_invoice(
        int(a["invoice_id"]), hold=a.get("hold"), release_holds=bool(a.get("release_holds", False)),
        commit=_commit_flag(a))),
    "add_invoice": lambda s, a: _result(s.add_invoice(
        org_id=int(a.get("org_id", 204)), amount=float(a.get("amount", 1000.0)), commit=_commit_flag(a))),
    "approve_po": lambda s, a: _result(s.approve_po(int(a["po_header_id"]), commit=_commit_flag(a))),
    "hire": _hire,
    "change_phone": lambda s, a: _result(s.change_phone(
        int(a["person_id"]), str(a["phone_type"]), a.get("number"), commit=_commit_flag(a))),
    "change_supplier_site": lambda s, a: _result(s.change_supplier_site(
        int(a["vendor_site_id"]), address_line1=a.get("address_line1"), city=a.get("city"),
        commit=_commit_flag(a))),
    "change_bank_account": lambda s, a: _result(s.change_bank_account(
        int(a["vendor_site_id"]), bank_name=str(a["bank_name"]), account_num=str(a["account_num"]),
        commit=_commit_flag(a))),
    "commit": lambda s, a: ok(lambda: s.commit(str(a["txn"]))),
    "lock": lambda s, a: ok(lambda: s.lock(a["table"], int(a["key"]), str(a.get("user", "JSMITH")))),
    "unlock": lambda s, a: ok(lambda: s.unlock(a["table"], int(a["key"]))),
    "fail_next": lambda s, a: ok(lambda: s.fail_next(int(a.get("count", 1)), int(a.get("status", 503)))),
    "malform_next": lambda s, a: ok(lambda: s.malform_next(int(a.get("count", 1)))),
    "expire_sessions": lambda s, a: {"expired": s.expire_sessions()},
    "set_clock_offset": lambda s, a: ok(lambda: s.set_clock_offset(float(a["seconds"]))),
}


def control_routes(sim: EbsSim) -> list[Route]:
    async def audit(request: Request) -> JSONResponse:
        return JSONResponse(sim.audit_rows())

    async def state(request: Request) -> JSONResponse:
        return JSONResponse({"now_local": sim.now_local().isoformat(), "pending": sim.pending(),
                             "sessions": sim.session_count()})

    return [
        Route("/_sim/audit", audit, methods=["GET"]),
        Route("/_sim/state", state, methods=["GET"]),
        action_route(sim, _ACTIONS),
    ]
