"""A final status whose callback never arrived is learned from Twilio by the status sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ml_connector.core.models import Status
from ml_connector.runtime.status_sweep import StatusSweep
from tests.support.pipeline import pipeline


async def webhook_down(scope: Any, receive: Any, send: Any) -> None:
    """The connector's webhook while it is unreachable: every callback fails."""
    await send({"type": "http.response.start", "status": 503, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_lost_callbacks_are_recovered_by_the_sweep(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        real_webhook = p.connector.webhook_app()
        p.sim_callbacks_to(webhook_down)
        await p.dispatch()
        [n] = p.notifications()
        assert n.status is Status.QUEUED                     # Twilio delivered it; we never heard
        assert p.sim.message(n.provider_id).status == "delivered"

        sweep = StatusSweep(p.connector.store, p.connector.channels, clock=p.clock)
        assert await sweep.sweep_once() == 0                 # not stale yet: callbacks may still come
        p.clock.advance(11 * 60)
        assert await sweep.sweep_once() == 1
        [n] = p.notifications()
        assert n.status is Status.DELIVERED
        assert await sweep.sweep_once() == 0                 # nothing left to learn
        p.sim_callbacks_to(real_webhook)


async def test_sweep_leaves_messages_with_final_status_alone(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.dispatch()
        p.clock.advance(3600)
        calls = 0
        channel = p.connector.channels["main"]
        original = channel.fetch_status

        async def counting(provider_id: str) -> Any:
            nonlocal calls
            calls += 1
            return await original(provider_id)

        channel.fetch_status = counting  # type: ignore[method-assign]
        assert await StatusSweep(p.connector.store, p.connector.channels, clock=p.clock).sweep_once() == 0
        assert calls == 0
