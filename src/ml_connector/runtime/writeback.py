"""Record final delivery statuses back in the ERP, from their own queue.

Write-back never blocks sending: it has its own table, its own retries with backoff, and an ERP
that is down only delays the write-backs. Each one shows in the audit (done, retried, skipped,
given up).

What a failure means decides how long it is retried:

| the ERP...                                   | error                         | retried                     |
| -------------------------------------------- | ----------------------------- | --------------------------- |
| is down, busy or locked                      | retriable (SourceUnavailable) | by the policy (hours)       |
| refuses our credentials or session           | SourceAuthError               | by the policy: an admin fix |
| answers that the write-back is invalid ("E") | other SourceError             | `rejected_tries`, then gave |
|                                              |                               | up with the ERP's message   |

A source that records only some statuses says so with `writes_back(delivery)`; the others are
marked skipped, not done.

At a graceful stop the runner first writes back what is due, for at most `drain_for` (the
shutdown grace period, `dispatcher.shutdown_grace`): a final status reached just before the stop
is recorded in the ERP now, not at the next start. What is left (the ERP slow or down, retries
not yet due) stays queued in the store and is sent at the next start; a call cut off by the end
of the grace period is handed out again once its lease has run out.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from ml_connector import logctx
from ml_connector.core.models import Delivery
from ml_connector.core.retry import RetryPolicy
from ml_connector.errors import MlcError, SourceAuthError, StoreUnavailable
from ml_connector.runtime.metrics import ConnectorMetrics
from ml_connector.runtime.store_wait import wait_for_store
from ml_connector.sources.base import Source, WriteBack
from ml_connector.store.port import Store, WriteBackTask

log = logging.getLogger(__name__)

#: Tries for a write-back the ERP refuses as invalid, unless the source says otherwise.
REJECTED_TRIES = 3


@runtime_checkable
class SelectiveWriteBack(Protocol):
    """A source that records only some final statuses."""

    def writes_back(self, delivery: Delivery) -> bool: ...


def _is_rejection(exc: MlcError) -> bool:
    """The ERP understood the call and refused it: retrying the same values rarely helps."""
    return not exc.retriable and not isinstance(exc, SourceAuthError)


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
        rejected_tries: int = REJECTED_TRIES,
        drain_for: timedelta = timedelta(seconds=10),
        metrics: ConnectorMetrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics or ConnectorMetrics()
        self._sources = sources
        self._worker = worker
        self._clock = clock
        self._policy = policy or RetryPolicy(timedelta(seconds=10), timedelta(minutes=30), 20)
        self._lease = lease
        self._batch = batch_size
        self._idle = idle_poll
        self._rand = rand
        self._rejected_tries = rejected_tries
        self._drain_for = drain_for

    async def run(self, stop: asyncio.Event) -> None:
        """Write back until `stop` is set, then drain what is due (see the module docstring)."""
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
        await self.drain()

    async def drain(self) -> int:
        """Write back everything due now, one at a time, within `drain_for`; how many were handled."""
        handled = 0

        async def due_now() -> None:
            nonlocal handled
            while await self.run_once(limit=1):
                handled += 1

        try:
            await asyncio.wait_for(due_now(), self._drain_for.total_seconds())
        except TimeoutError:
            log.warning("shutdown: write-backs still due after %.0f s stay queued and are sent at the next "
                        "start (%s handled)", self._drain_for.total_seconds(), handled)
        except StoreUnavailable:  # logged once by the store; what is left is sent at the next start
            pass
        return handled

    async def run_once(self, limit: int | None = None) -> int:
        tasks = await asyncio.to_thread(
            self._store.claim_write_backs, self._worker, self._clock(), self._lease, limit or self._batch
        )
        for task in tasks:
            delivery = task.delivery
            with logctx.bound(flow=delivery.flow, notification_id=delivery.notification_id,
                              twilio_sid=delivery.provider_id):
                await self._one(task)
        return len(tasks)

    def _tries_for(self, source: object) -> int:
        tries = getattr(source, "rejected_tries", self._rejected_tries)
        return tries if isinstance(tries, int) and tries >= 1 else self._rejected_tries

    async def _finish(self, task: WriteBackTask, *, ok: bool, error: str | None,
                      next_attempt_at: datetime | None = None, skipped: bool = False) -> None:
        result = "skipped" if skipped else "done" if ok else "retry" if next_attempt_at else "given_up"
        self._metrics.write_back(task.source, result)
        await asyncio.to_thread(self._store.finish_write_back, task.id, ok=ok, error=error,
                                next_attempt_at=next_attempt_at, now=self._clock(), skipped=skipped)

    async def _one(self, task: WriteBackTask) -> None:
        source = self._sources.get(task.source)
        if not isinstance(source, WriteBack):
            await self._finish(task, ok=False, error=f"source {task.source!r} cannot record deliveries")
            return
        if isinstance(source, SelectiveWriteBack) and not source.writes_back(task.delivery):
            await self._finish(task, ok=True, skipped=True,
                               error=f"{task.source} does not record {task.delivery.status} deliveries")
            return
        try:
            await source.write_back(task.delivery)
        except MlcError as exc:
            await self._failed(task, source, exc)
            return
        await self._finish(task, ok=True, error=None)

    async def _failed(self, task: WriteBackTask, source: object, exc: MlcError) -> None:
        error = str(exc)
        retry_at: datetime | None = None
        if _is_rejection(exc):
            tries = self._tries_for(source)
            if task.attempt_no < tries:
                retry_at = self._clock() + self._policy.decide(task.attempt_no, None, self._rand).delay
            else:
                error = f"refused by {task.source} {task.attempt_no} time(s), given up: {exc}"
        else:
            decision = self._policy.decide(task.attempt_no, None, self._rand)
            retry_at = self._clock() + decision.delay if decision.retry else None
        log.warning("write-back of notification %s to %s failed (attempt %s%s): %s",
                    task.delivery.notification_id, task.source, task.attempt_no,
                    "" if retry_at else ", given up", exc)
        await self._finish(task, ok=False, error=error, next_attempt_at=retry_at)
