"""The admin listener: `/healthz`, `/readyz` and `/metrics` of every process, whatever its roles.

It binds an address of its own (`admin.host`/`admin.port`, loopback by default), apart from the
webhook listener that faces the internet, so probes and scrapes reach processes that serve no
webhooks, and the metrics (flow names, volumes, error codes) are not published. Health checks
need no authentication: a load balancer, systemd or Kubernetes asks them.

- `GET /healthz`: 200 "ok" while the event loop runs (liveness: restart the process when not).
- `GET /readyz`: 200 or 503 with a JSON body naming each check (runtime.health).
- `GET /metrics`: the process's registries in the Prometheus text format; generated in a worker
  thread, since the outbox gauges read the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ml_connector.config_ops import ADMIN_PORT_ENV
from ml_connector.errors import ConfigError
from ml_connector.runtime.health import HealthSettings, Readiness, summary
from ml_connector.runtime.metrics import OutboxCollector
from ml_connector.store.probe import StoreProbe
from ml_connector.web.health import AccountHoldCollector, store_problem
from ml_connector.web.server import serving

__all__ = ["create_admin_app", "serve_admin"]

log = logging.getLogger(__name__)


def create_admin_app(readiness: Readiness, registries: Callable[[], Sequence[CollectorRegistry]]) -> Starlette:
    """The admin ASGI app; `registries()` lists what /metrics serves at the time of each scrape."""

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        ready, body = summary(await readiness.checks())
        return JSONResponse(body, status_code=200 if ready else 503)

    def exposition() -> bytes:
        return b"".join(generate_latest(registry) for registry in registries())

    async def metrics(request: Request) -> Response:
        return Response(await asyncio.to_thread(exposition), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes)


async def serve_admin(connector: Any, stop: asyncio.Event) -> None:
    """Serve the admin listener of `connector` (app.Connector) until `stop`; sets `admin_url`.

    Its checks follow the roles of every `run()` of the connector (`running_roles`)."""
    config = connector.config.admin
    probe = StoreProbe(connector.config.store.url)
    outbox = CollectorRegistry(auto_describe=False)
    outbox.register(OutboxCollector(probe, connector.clock))
    readiness = Readiness(
        probe=probe, store_problem=store_problem(connector.store), pollers=connector.poll_health,
        roles=connector.running_roles, clock=connector.clock,
        settings=HealthSettings(stuck_after=config.stuck_after_intervals, max_pending_age=config.max_pending_age),
    )
    # A served webhook app's registry has the account holds too; without one they are shown from here.
    holds = CollectorRegistry(auto_describe=False)
    holds.register(AccountHoldCollector(connector.dispatcher.holds, list(connector.config.twilio.accounts)))
    app = create_admin_app(readiness, lambda: [connector.metrics.registry, outbox,
                                               *(connector.web_registries or [holds])])
    try:
        async with serving(app, config.host, connector.admin_port) as url:
            connector.admin_url = url
            log.info("admin listener on %s (/healthz, /readyz, /metrics)", url)
            await stop.wait()
    except OSError as exc:  # binding: the port is taken, or the address is not this host's
        raise ConfigError(
            f"admin listener {config.host}:{connector.admin_port}: {exc.strerror or exc}; choose another "
            f"admin.port (or {ADMIN_PORT_ENV} for this process), or set admin.enabled: false") from None
    finally:
        connector.admin_url = None
        probe.close()
