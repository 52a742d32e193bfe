"""Audit retention in the background of `run`: rows older than `audit.retention` are deleted,
a bounded batch per transaction and a bounded number of batches per run, so pruning a large
backlog never holds the database for long; each batch is audited (store.retention)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from ml_connector.errors import StoreUnavailable

log = logging.getLogger(__name__)


class PrunableStore(Protocol):
    def prune_audit(self, before: datetime, limit: int, now: datetime | None = None) -> int: ...


class AuditPruner:
    def __init__(self, store: PrunableStore, retention: timedelta, *, clock: Callable[[], datetime],
                 every: timedelta, batch: int, max_batches: int) -> None:
        self._store = store
        self._retention = retention
        self._clock = clock
        self._every = every
        self._batch = batch
        self._max_batches = max_batches

    async def prune_once(self) -> int:
        """One run: at most `max_batches` batches; returns the rows deleted."""
        now = self._clock()
        before = now - self._retention
        total = 0
        for _ in range(self._max_batches):
            deleted = await asyncio.to_thread(self._store.prune_audit, before, self._batch, now)
            total += deleted
            if deleted < self._batch:
                break
        if total:
            log.info("audit: deleted %s row(s) older than %s (audit.retention)", total, before.isoformat())
        return total

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.prune_once()
            except StoreUnavailable:
                pass  # logged once by the store; the next run picks up from there
            except Exception:  # retention is housekeeping: it must never take the process down
                log.exception("audit pruning failed; will try again")
            try:
                await asyncio.wait_for(stop.wait(), self._every.total_seconds())
            except TimeoutError:
                pass
