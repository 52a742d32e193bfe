"""Group store writes that arrive together into one transaction (status reports, attempt results).

Each caller still gets its answer only after its write is durable. While one batch is being
committed, the writes that arrive queue up and go in the next batch, so an idle connector
commits each write at once and a busy one commits hundreds per transaction from one writer,
instead of many threads competing for the database. A batch that fails is retried item by item,
so one bad item cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from ml_connector.errors import StoreUnavailable

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """`await apply(item)` writes `item` with whatever else is waiting, via `apply_many` in a thread."""

    def __init__(self, apply_many: Callable[[Sequence[T]], list[R]], apply_one: Callable[[T], R], *,
                 max_batch: int = 500) -> None:
        self._apply_many = apply_many
        self._apply_one = apply_one
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def apply(self, event: T) -> R:
        """Write `event` (in some batch) and return what the store made of it."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
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
            except StoreUnavailable as exc:  # the store is away: item by item would only wait longer
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except Exception:
                await self._one_by_one(batch)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        for event, future in batch:
            try:
                result = await asyncio.to_thread(self._apply_one, event)
            except Exception as exc:  # this item alone fails; its caller sees the error
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
