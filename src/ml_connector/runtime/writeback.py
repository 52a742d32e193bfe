"""Record final delivery statuses back in the ERP, from their own queue.

Write-back never blocks sending: it has its own table, its own retries with backoff, and an ERP
that is down only delays the write-backs. Each one shows in the audit (done, retried, given up).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from ml_connector.core.retry import RetryPolicy
from ml_connector.errors import MlcError, StoreUnavailable
from ml_connector.runtime.store_wait import wait_for_store
from ml_connector.sources.base import Source, WriteBack
from ml_connector.store.port import Store, WriteBackTask

log = logging.getLogger(__name__)


class WriteBackRunner:
    def __init__(
        self,
        store: Store,
        sources: Mapping[str, Source],
        *,
        worker: str,
        clock: Callable[[], datetime],
        policy: RetryPolicy | None = None,
        lease: timedelta = timedelta(seconds=60),
        batch_size: int = 50,
        idle_poll: timedelta = timedelta(seconds=1),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._sources = sources
        self._worker = worker
        self._clock = clock
        self._policy = policy or RetryPolicy(timedelta(seconds=10), timedelta(minutes=30), 20)
        self._lease = lease
        self._batch = batch_size
        self._idle = idle_poll
        self._rand = rand

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                done = await self.run_once()
            except StoreUnavailable:  # logged once by the store; claimed tasks come back after their lease
                await wait_for_store(self._store, stop)
                continue
            if not done:
                try:
                    await asyncio.wait_for(stop.wait(), self._idle.total_seconds())
                except TimeoutError:
                    pass

    async def run_once(self) -> int:
        tasks = await asyncio.to_thread(
            self._store.claim_write_backs, self._worker, self._clock(), self._lease, self._batch
        )
        for task in tasks:
            await self._one(task)
        return len(tasks)

    async def _one(self, task: WriteBackTask) -> None:
        source = self._sources.get(task.source)
        if not isinstance(source, WriteBack):
            await asyncio.to_thread(
                self._store.finish_write_back, task.id, ok=False,
                error=f"source {task.source!r} cannot record deliveries", next_attempt_at=None, now=self._clock(),
            )
            return
        try:
            await source.write_back(task.delivery)
        except MlcError as exc:
            decision = self._policy.decide(task.attempt_no, None, self._rand)
            retry_at = self._clock() + decision.delay if decision.retry else None
            log.warning("write-back of notification %s to %s failed (attempt %s): %s",
                        task.delivery.notification_id, task.source, task.attempt_no, exc)
            await asyncio.to_thread(self._store.finish_write_back, task.id, ok=False, error=str(exc),
                                    next_attempt_at=retry_at, now=self._clock())
            return
        await asyncio.to_thread(self._store.finish_write_back, task.id, ok=True, error=None,
                                next_attempt_at=None, now=self._clock())
