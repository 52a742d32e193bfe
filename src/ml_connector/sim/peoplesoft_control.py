"""The PeopleSoft simulator's control API: ``POST /_sim/<action>`` with JSON arguments.

The test's (and the demo's) hand: no faults or authentication apply. Rows written with
``"commit": false`` stay invisible until ``/_sim/commit`` with the returned ``txn``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING

from starlette.routing import Route

from ml_connector.sim.control import Args, action_route, ok

if TYPE_CHECKING:
    from ml_connector.sim.peoplesoft import ControlResult, PsSim


def _result(r: ControlResult) -> dict[str, object]:
    return {"key": r.key, "txn": r.txn}


def _commit(a: Args) -> bool:
    value = a.get("commit", True)
    if not isinstance(value, bool):
        raise ValueError("commit must be true or false")
    return value


def _job(s: PsSim, a: Args) -> object:
    effdt = date.fromisoformat(a["effdt"]) if a.get("effdt") else None
    return _result(s.job_action(a.get("emplid"), str(a["action"]), effdt=effdt, deptid=a.get("deptid"),
                                commit=_commit(a)))


ACTIONS: Mapping[str, Callable[[PsSim, Args], object]] = {
    "job_action": _job,
    "post_payrun": lambda s, a: _result(s.post_payrun(str(a.get("paygroup", "BW1")), commit=_commit(a))),
    "change_shift": lambda s, a: _result(s.change_shift(str(a["emplid"]), float(a.get("hours", 1)),
                                                        commit=_commit(a))),
    "set_phone": lambda s, a: ok(lambda: s.set_phone(str(a["emplid"]), str(a["phone_type"]), str(a["phone"]),
                                                     preferred=a.get("preferred"))),
    "add_employees": lambda s, a: {"emplids": s.add_employees(int(a.get("count", 1)),
                                                              paygroup=str(a.get("paygroup", "BW1")))},
    "commit": lambda s, a: ok(lambda: s.commit(str(a["txn"]))),
    "domain_down": lambda s, a: ok(lambda: s.domain_down(bool(a.get("down", True)))),
    "deactivate": lambda s, a: ok(lambda: s.deactivate(str(a["operation"]))),
    "activate": lambda s, a: ok(lambda: s.activate(str(a["operation"]))),
    "fail_next_ib": lambda s, a: ok(lambda: s.fail_next_ib(int(a.get("count", 1)))),
    "malform_next": lambda s, a: ok(lambda: s.malform_next(int(a.get("count", 1)))),
    "expire_tokens": lambda s, a: {"expired": s.expire_tokens()},
    "set_clock_offset": lambda s, a: ok(lambda: s.set_clock_offset(float(a["seconds"]))),
}


def control_routes(sim: PsSim) -> list[Route]:
    return [action_route(sim, ACTIONS)]
