"""Oracle EBS harnesses: ISG with an ICX session, ISG with Basic on every call, and ORDS.

Each runs in both JSON styles: ISG's own ("native") and that of an XML-to-JSON bridge in front
of it ("bridged": every scalar a string, null and empty tables as `{"@xsi:nil": "true"}`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from ml_connector.sim.oracle_ebs import EbsSim, JsonStyle
from ml_connector.sources.base import Source
from ml_connector.sources.oracle_ebs import OracleEbsConfig, OracleEbsSource
from tests.support.clock import ManualClock

from .harness import START, LoginCounter, SimulatedErp

PAYABLES = {"responsibility": "PAYABLES_MANAGER", "application": "SQLAP", "org_id": 204}


def ebs_harnesses() -> dict[str, Callable[[], EbsHarness]]:
    """Every EBS mode, in both JSON styles."""
    modes: dict[str, dict[str, str]] = {
        "isg-session": {}, "isg-basic": {"auth": "basic"}, "ords": {"mode": "ords", "auth": "basic"},
    }
    made: dict[str, Callable[[], EbsHarness]] = {}
    for label, options in modes.items():
        for style in ("native", "bridged"):
            name = label if style == "native" else f"{label}-bridged"
            made[f"ebs-{name}"] = functools.partial(EbsHarness, name, json_style=style, **options)
    return made


class EbsHarness(SimulatedErp):
    """EbsSim in-process behind httpx.ASGITransport, with the adapter configured for one mode."""

    page_size = 3

    def __init__(self, name: str, *, mode: str = "isg", auth: str = "session",
                 json_style: JsonStyle = "native") -> None:
        self.name = name
        self.clock = ManualClock(START)
        self.sim = EbsSim(clock=self.clock, json_style=json_style)
        self.app = LoginCounter(self.sim.create_app(), lambda path: path == "/webservices/rest/login")  # type: ignore[arg-type]
        self.mode, self.auth = mode, auth
        self.entity = "invoices"
        self.key_field = "INVOICE_ID" if mode == "isg" else "invoice_id"
        self.expected_check = {"user": "ISGUSER", "mode": mode}
        if mode == "isg" and auth == "session":
            self.expected_check = {**self.expected_check, "ebs_version": "12.2.10",
                                   "responsibility": "PAYABLES_MANAGER", "org_id": "204"}
        self._built: list[Source] = []

    def config(self, **overrides: Any) -> OracleEbsConfig:
        entity: dict[str, Any] = (
            {"method": "get_changed_invoices", "output": "X_INVOICES", "key": "INVOICE_ID"}
            if self.mode == "isg" else
            {"object": "ap_invoices", "key": "invoice_id", "changed_at": "last_update_date"}
        )
        raw: dict[str, Any] = {
            "type": "oracle_ebs", "base_url": "http://ebs.test", "username": "ISGUSER",
            "password": "welcome1", "auth": self.auth, "mode": self.mode, "ords_path": "/ords/xxmlc",
            "timezone": "America/New_York", "retry_delay": 0, "context": PAYABLES,
            "entities": {self.entity: {**entity, "page_size": self.page_size}},
        }
        raw.update(overrides)
        return OracleEbsConfig.model_validate(raw)

    def build(self, **overrides: Any) -> Source:
        source = OracleEbsSource(f"ebs-{self.name}", self.config(**overrides),
                                 transport=httpx.ASGITransport(self.app),  # type: ignore[arg-type]
                                 clock=self.clock)
        self._built.append(source)
        return source

    def change(self, count: int) -> list[str]:
        return [str(self.sim.add_invoice().key) for _ in range(count)]

    def late(self, age: timedelta) -> str:
        self.clock.advance(-age)
        result = self.sim.add_invoice(commit=False)
        self.clock.advance(age)
        assert result.txn is not None
        self.sim.commit(result.txn)
        return str(result.key)

    def expire_sessions(self) -> bool:
        if self.mode == "ords" or self.auth == "basic":
            return False
        self.sim.expire_sessions()
        return True
