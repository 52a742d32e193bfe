"""The app's poll loop skips a paused flow (paused in the store, by any process) and keeps its watermark."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ml_connector.store.flows import MAIN
from tests.support.pipeline import Pipeline, pipeline

PAUSED, OTHER = "po_approved", "invoice_validated"


async def run_pollers_until(p: Pipeline, flow: str, polls_after: int = 2) -> None:
    """Run the poller role until `flow` has been polled `polls_after` more times (seen in the store)."""
    stop = asyncio.Event()
    seen: list[object] = []
    task = asyncio.create_task(p.connector.run(stop, ("poller",)))
    try:
        for _ in range(2000):
            state = p.connector.store.flow_states([flow], p.clock.now)[flow]
            if state.last_poll_at is not None and (not seen or seen[-1] != state.last_poll_at):
                seen.append(state.last_poll_at)
                p.clock.advance(1)
            if len(seen) > polls_after or task.done():
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task
    assert len(seen) > polls_after, f"{flow} was not polled"


async def test_paused_flow_is_not_polled_and_resumes_from_its_watermark(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        await p.poll()
        store = p.connector.store
        kept = store.get_watermark(PAUSED, MAIN)
        assert kept is not None
        store.set_flow_paused(PAUSED, True, "alice")
        p.erp.approve_po(1001)
        p.clock.advance(2)
        await run_pollers_until(p, OTHER)
        assert p.notifications(flow=PAUSED) == []
        assert store.get_watermark(PAUSED, MAIN) == kept
        assert store.flow_states([PAUSED], p.clock.now)[PAUSED].last_poll_at is None
        store.set_flow_paused(PAUSED, False, "alice")
        await run_pollers_until(p, PAUSED, polls_after=0)
        assert [n.record_key for n in p.notifications(flow=PAUSED)] == ["1001"]
