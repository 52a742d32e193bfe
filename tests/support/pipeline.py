"""An in-process ml-connector wired to the demo ERP and the Twilio simulator, for tests.

Everything real (config loading, SQL source, poller, store, dispatcher, Twilio client, webhook
app, signature checks); only the sockets are replaced by in-process ASGI transports, both ways:
the connector's Twilio client calls the simulator app, and the simulator's signed status
callbacks call the connector's webhook app.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from ml_connector.app import Connector, Overrides
from ml_connector.channels.http import AsgiTransport
from ml_connector.config import load_config
from ml_connector.demo import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, DEMO_SENDER, DEMO_TZ, demo_config
from ml_connector.runtime.poller import LOOKBACK, MAIN, PollReport
from ml_connector.sim.demo_erp import DemoErp
from ml_connector.sim.twilio import Account, TwilioSim
from ml_connector.store.crypto import create_key_file
from ml_connector.store.port import NotificationFilter, NotificationView
from tests.support.clock import ManualClock

PUBLIC_URL = "https://connector.example.com"


class FakeClock(ManualClock):
    """One clock for the ERP, the connector and the simulator; starts now, in whole seconds."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__((start or datetime.now(UTC)).replace(microsecond=0))


class LateApp:
    """An ASGI app whose target is set after construction (breaks the sim <-> webhook cycle)."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@dataclass
class Pipeline:
    erp: DemoErp
    sim: TwilioSim
    connector: Connector
    config_path: Path
    clock: FakeClock
    webhook: LateApp

    async def poll(self, flow: str | None = None, kind: str = MAIN, *, advance: float = 2.0) -> list[PollReport]:
        """Let `advance` seconds pass (beyond the clock-skew margin), then poll."""
        self.clock.advance(advance)
        names = [flow] if flow else list(self.connector.pollers)
        return [await self.connector.pollers[name].poll(kind) for name in names]

    async def dispatch(self) -> None:
        """Send everything due now, then let the simulator deliver its callbacks."""
        await self.connector.dispatcher.run_until_idle()
        await self.sim.drain()

    def sim_callbacks_to(self, app: Any) -> None:
        """Point the simulator's status callbacks at another ASGI app (e.g. one that is down)."""
        self.webhook.app = app

    def notifications(self, **filters: Any) -> list[NotificationView]:
        return self.connector.store.list_notifications(NotificationFilter(limit=10_000, **filters))

    def audit(self) -> list[Any]:
        return list(self.connector.store.audit(None, None))


@contextlib.asynccontextmanager
async def pipeline(
    tmp_path: Path,
    *,
    store_url: str | None = None,
    tweak: Callable[[dict[str, Any]], None] | None = None,
    sim_options: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    clock: FakeClock | None = None,
    sendgrid: Any = None,
    webhook_app: Any = None,
) -> AsyncIterator[Pipeline]:
    """The demo's config (two flows over the demo ERP) with in-process transports.

    `tweak` edits the config dict before it is written; `store_url` swaps SQLite for PostgreSQL;
    `clock` replaces the shared hand clock (e.g. one that moves on every reading); `sendgrid`, a
    SendGridSim, takes the email channel's requests and posts its events to the webhook app;
    `webhook_app`, an ASGI app, receives the outbound webhook channel's posts.
    """
    clock = clock or FakeClock()
    erp = DemoErp(tmp_path / "demo-erp.db", tz=DEMO_TZ, clock=clock)
    erp.create()
    webhook = LateApp()
    sim = TwilioSim(
        accounts=(Account(sid=DEMO_ACCOUNT_SID, auth_token=DEMO_AUTH_TOKEN, numbers=(DEMO_SENDER,)),),
        api_keys=(), services=(), callback_transport=httpx.ASGITransport(webhook),
        callback_delay=(0, 0), clock=clock, **dict(sim_options or {}),
    )
    config = demo_config(tmp_path, "http://twilio.invalid", 8080)
    config["webhooks"]["public_url"] = PUBLIC_URL
    config["twilio"]["accounts"]["main"]["base_urls"]["api"] = "http://127.0.0.1:1"  # never dialled
    if store_url:
        config["store"]["url"] = store_url
    if tweak:
        tweak(config)
    config_path = tmp_path / "ml-connector.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    create_key_file(tmp_path / "ml-connector.key")
    connector = Connector(
        load_config(config_path, dict(env or {})),
        env=dict(env or {}),
        overrides=Overrides(twilio_transport=AsgiTransport(sim.create_app()), worker="test-worker", clock=clock,
                            sendgrid_transport=AsgiTransport(sendgrid.create_app()) if sendgrid else None,
                            webhook_transport=AsgiTransport(webhook_app) if webhook_app else None),
    )
    if sendgrid is not None:
        sendgrid.event_transport = httpx.ASGITransport(webhook)
    webhook.app = connector.webhook_app()
    try:
        yield Pipeline(erp, sim, connector, config_path, clock, webhook)
    finally:
        await sim.drain()
        await connector.aclose()
        await sim.aclose()


__all__ = ["LOOKBACK", "MAIN", "PUBLIC_URL", "FakeClock", "Pipeline", "pipeline"]
