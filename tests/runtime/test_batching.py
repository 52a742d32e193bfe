"""Status reports that arrive together are stored together; one bad report fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from ml_connector.core.models import StatusEvent
from ml_connector.runtime.batching import Batcher
from ml_connector.store.port import ApplyResult

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def event(i: int) -> StatusEvent:
    return StatusEvent(f"SM{i:032d}", "delivered", None, T0, {})


class Recorder:
    def __init__(self, poison: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.poison = poison
        self.release = threading.Event()
        self.release.set()

    def many(self, events: Sequence[StatusEvent]) -> list[ApplyResult]:
        self.release.wait(5)
        self.batches.append([e.provider_id for e in events])
        if any(e.provider_id == self.poison for e in events):
            raise RuntimeError("one bad report")
        return [ApplyResult.APPLIED for _ in events]

    def one(self, e: StatusEvent) -> ApplyResult:
        self.singles.append(e.provider_id)
        if e.provider_id == self.poison:
            raise RuntimeError("one bad report")
        return ApplyResult.APPLIED


async def test_a_lone_report_is_stored_at_once() -> None:
    rec = Recorder()
    batcher = Batcher(rec.many, rec.one)
    assert await batcher.apply(event(1)) is ApplyResult.APPLIED
    assert rec.batches == [[event(1).provider_id]]


async def test_reports_arriving_during_a_commit_share_the_next_transaction() -> None:
    rec = Recorder()
    batcher = Batcher(rec.many, rec.one)
    rec.release.clear()                                  # the first commit is slow
    first = asyncio.create_task(batcher.apply(event(0)))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(batcher.apply(event(i))) for i in range(1, 21)]
    await asyncio.sleep(0.05)
    rec.release.set()
    assert await asyncio.gather(first, *rest) == [ApplyResult.APPLIED] * 21
    assert [len(b) for b in rec.batches] == [1, 20]


async def test_a_failing_batch_is_retried_report_by_report() -> None:
    rec = Recorder(poison=event(3).provider_id)
    batcher = Batcher(rec.many, rec.one)
    rec.release.clear()
    blocker = asyncio.create_task(batcher.apply(event(0)))
    await asyncio.sleep(0.05)
    tasks = [asyncio.create_task(batcher.apply(event(i))) for i in range(1, 6)]
    await asyncio.sleep(0.05)
    rec.release.set()
    assert await blocker is ApplyResult.APPLIED
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert [isinstance(o, RuntimeError) for o in outcomes] == [False, False, True, False, False]
    assert rec.singles == [event(i).provider_id for i in range(1, 6)]


async def test_batches_are_capped() -> None:
    rec = Recorder()
    batcher = Batcher(rec.many, rec.one, max_batch=4)
    rec.release.clear()
    tasks = [asyncio.create_task(batcher.apply(event(i))) for i in range(10)]
    await asyncio.sleep(0.05)
    rec.release.set()
    await asyncio.gather(*tasks)
    assert max(len(b) for b in rec.batches) <= 4
    assert sorted(p for b in rec.batches for p in b) == sorted(event(i).provider_id for i in range(10))


@pytest.mark.parametrize("size", [1, 7])
async def test_every_caller_gets_its_own_answer(size: int) -> None:
    answers = [ApplyResult.APPLIED, ApplyResult.DUPLICATE, ApplyResult.STALE, ApplyResult.ORPHAN]

    def many(events: Sequence[StatusEvent]) -> list[ApplyResult]:
        return [answers[int(e.provider_id[2:]) % 4] for e in events]

    batcher = Batcher(many, lambda e: many([e])[0])
    results = await asyncio.gather(*(batcher.apply(event(i)) for i in range(size)))
    assert results == [answers[i % 4] for i in range(size)]
