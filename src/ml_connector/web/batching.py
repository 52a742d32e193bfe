"""Group status reports that arrive together into one store transaction.

Each callback still gets its answer only after its report is durable. While one batch is being
committed, the reports that arrive queue up and go in the next batch, so an idle connector
commits each report at once and a busy one commits hundreds per transaction from one writer,
instead of forty threads competing for the database. A batch that fails is retried report by
report, so one bad report cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from ml_connector.core.models import StatusEvent
from ml_connector.store.port import ApplyResult

ApplyMany = Callable[[Sequence[StatusEvent]], list[ApplyResult]]
ApplyOne = Callable[[StatusEvent], ApplyResult]


class StatusBatcher:
    def __init__(self, apply_many: ApplyMany, apply_one: ApplyOne, *, max_batch: int = 500) -> None:
        self._apply_many = apply_many
        self._apply_one = apply_one
        self._max_batch = max_batch
        self._waiting: list[tuple[StatusEvent, asyncio.Future[ApplyResult]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def apply(self, event: StatusEvent) -> ApplyResult:
        """Store `event` (in some batch) and return what the store made of it."""
        future: asyncio.Future[ApplyResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((event, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            events = [event for event, _ in batch]
            try:
                results = await asyncio.to_thread(self._apply_many, events)
            except Exception:
                await self._one_by_one(batch)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(self, batch: list[tuple[StatusEvent, asyncio.Future[ApplyResult]]]) -> None:
        for event, future in batch:
            try:
                result = await asyncio.to_thread(self._apply_one, event)
            except Exception as exc:  # this report alone fails (its callback gets 500: Twilio retries)
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
