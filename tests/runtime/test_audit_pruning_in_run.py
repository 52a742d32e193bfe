"""`run` prunes the audit trail by `audit.retention` in the background (dispatcher role)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support.pipeline import pipeline


def with_retention(config: dict[str, Any]) -> None:
    config["audit"] = {"retention": "1h", "prune_batch": 2}


async def test_run_prunes_rows_older_than_the_retention(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=with_retention) as p:
        await p.poll()
        p.erp.approve_po(1001)
        await p.poll()
        before = len(p.audit())
        p.clock.advance(7200)
        stop = asyncio.Event()
        task = asyncio.create_task(p.connector.run(stop, ("dispatcher",)))
        try:
            for _ in range(1000):
                if any(e.kind == "audit_pruned" for e in p.audit()) or task.done():
                    break
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            await task
        pruned = [e for e in p.audit() if e.kind == "audit_pruned"]
        assert pruned and sum(int(e.detail["deleted"]) for e in pruned) == before


async def test_no_retention_no_pruner(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        assert p.connector.audit_pruner is None
