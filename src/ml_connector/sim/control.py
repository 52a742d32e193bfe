"""The `/_sim/` control route the ERP simulators share: `POST /_sim/<action>` with JSON arguments.

A table of actions maps each name to a function of (simulator, arguments) returning a JSON-able
answer. Unknown actions and unknown rows are 404, bad arguments 400. It is the test's hand: no
faults, latency or authentication apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

Sim = TypeVar("Sim")
Args = Mapping[str, Any]


def ok(effect: Callable[[], object]) -> object:
    """Run an action that answers nothing but success."""
    effect()
    return {"ok": True}


def action_route(sim: Sim, actions: Mapping[str, Callable[[Sim, Args], object]]) -> Route:
    async def action(request: Request) -> JSONResponse:
        name = str(request.path_params["action"])
        handler = actions.get(name)
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

    return Route("/_sim/{action}", action, methods=["POST"])
