"""A connector with a few notifications of every kind, its dashboard served on loopback, and users.

Users: `olivia` (operator) and `victor` (viewer), password `correct horse battery`; tokens
`op_token` (operator) and `view_token` (viewer). Notifications: PO 1002 and 1007 delivered,
PO 1003 failed at Twilio (21211), PO 1006 failed before sending (no phone).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_connector.store.users import Role, UserStore, engine_of
from ml_connector.web.server import serving
from tests.support.pipeline import Pipeline, pipeline

PASSWORD = "correct horse battery"


@dataclass
class Served:
    p: Pipeline
    url: str
    op_token: str
    view_token: str
    users: UserStore

    def by_record(self) -> dict[str, Any]:
        return {n.record_key: n for n in self.p.notifications()}


def _dashboard_section(extra: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def tweak(config: dict[str, Any]) -> None:
        config["dashboard"] = {"host": "127.0.0.1", "port": 0, "secure_cookies": False, **extra}
    return tweak


@contextlib.asynccontextmanager
async def served(tmp_path: Path, *, store_url: str | None = None, **dashboard: Any) -> AsyncIterator[Served]:
    async with pipeline(tmp_path, tweak=_dashboard_section(dashboard), store_url=store_url) as p:
        await p.poll()
        for po in (1002, 1003, 1006, 1007):
            p.erp.approve_po(po)
        await p.poll()
        await p.dispatch()
        users = UserStore(engine_of(p.connector.store))
        now = datetime.now(UTC)
        users.add_user("olivia", Role.OPERATOR, PASSWORD, now, actor="test")
        users.add_user("victor", Role.VIEWER, PASSWORD, now, actor="test")
        op = users.add_token("op_token", Role.OPERATOR, now, actor="test")
        view = users.add_token("view_token", Role.VIEWER, now, actor="test")
        async with serving(p.connector.dashboard_app()) as url:
            yield Served(p, url, op, view, users)
