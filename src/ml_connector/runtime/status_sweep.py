"""Ask Twilio for the status of messages whose final callback never came.

Twilio retries a status callback once; if the connector was down or unreachable both times, the
notification would stay `queued` or `sent` for ever and its final status would never reach the
audit. The sweep fetches such messages' current status and applies it exactly like a callback
(forward only, audited, idempotent), so a lost callback only delays the final status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ml_connector.channels.base import Channel
from ml_connector.core.channel_kinds import CHANNEL_KINDS, route_key
from ml_connector.core.models import Status
from ml_connector.errors import DeliveryError, StoreUnavailable
from ml_connector.store.port import NotificationFilter, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepSettings:
    every: timedelta = timedelta(minutes=1)
    #: A message this long without a final status gets looked up.
    stale_after: timedelta = timedelta(minutes=10)
    #: Older than this, Twilio's `sent` is as final as it gets (carriers without receipts).
    give_up_after: timedelta = timedelta(days=3)
    batch: int = 100


class StatusSweep:
    def __init__(self, store: Store, channels: Mapping[str, Channel], *, clock: Callable[[], datetime],
                 settings: SweepSettings | None = None) -> None:
        self._store = store
        self._channels = channels
        self._clock = clock
        self._settings = settings or SweepSettings()
        self._cursor: datetime | None = None  # walks back through a backlog larger than one batch

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep_once()
            except StoreUnavailable:  # logged once by the store; the next sweep picks up from there
                pass
            except Exception:  # the sweep is a safety net: it must never take the process down
                log.exception("status sweep failed; will try again")
            try:
                await asyncio.wait_for(stop.wait(), self._settings.every.total_seconds())
            except TimeoutError:
                pass

    async def sweep_once(self) -> int:
        """Look up one batch of stale messages; returns how many statuses moved forward."""
        now = self._clock()
        settings = self._settings
        until = self._cursor or now - settings.stale_after
        stale = await asyncio.to_thread(self._store.list_notifications, NotificationFilter(
            statuses=(Status.QUEUED, Status.SENT), since=now - settings.give_up_after, until=until,
            limit=settings.batch,
        ))
        self._cursor = min(v.created_at for v in stale) if len(stale) == settings.batch else None
        moved = 0
        for view in stale:
            kind = CHANNEL_KINDS.get(view.channel)
            channel = self._channels.get(route_key(view.account, view.channel))
            if channel is None or view.provider_id is None or kind is None or not kind.lookup:
                continue
            try:
                event = await channel.fetch_status(view.provider_id)
            except DeliveryError as exc:
                log.warning("status sweep: cannot fetch notification %s (%s): %s", view.id, view.provider_id, exc)
                continue
            result = await asyncio.to_thread(self._store.apply_status, event)
            moved += result == "applied"
        if moved:
            log.info("status sweep: %s notification(s) learned their status from Twilio", moved)
        return moved
