"""Call again after busy or no-answer, as many times as the voice flow allows, after its delay.

A call that ends busy or no-answer is `undelivered` like any other; a voice flow with
`voice.retries: N` and `voice.retry_delay: D` gets up to N more calls. The wait lives in the
store, not in memory: a notification is due for another call when it has been undelivered for
D (its `updated_at`), and the call counts are its attempts whose last provider status was busy
or no-answer. So a restart loses nothing, and when several processes look at once, the store's
replay (a locked transaction that only reopens undelivered rows) lets exactly one reopen it;
the reopened row is then claimed and called like any notification, its old attempts kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from ml_connector.core.flowspec import VoiceSpec
from ml_connector.core.models import Status
from ml_connector.errors import StoreUnavailable
from ml_connector.store.port import NotificationFilter, Store

__all__ = ["RETRY_ON", "VoiceRetry"]

log = logging.getLogger(__name__)

#: Call statuses worth another call; failed and canceled are not (twilio.md §8).
RETRY_ON = frozenset({"busy", "no-answer"})


class VoiceRetry:
    def __init__(self, store: Store, flows: Mapping[str, VoiceSpec], *, clock: Callable[[], datetime],
                 every: timedelta = timedelta(seconds=5), window: timedelta = timedelta(days=2),
                 batch: int = 500) -> None:
        self._store = store
        self._flows = {name: spec for name, spec in flows.items() if spec.retries > 0}
        self._clock = clock
        self._every = every
        self._window = window
        self._batch = batch

    def retry_once(self) -> list[int]:
        """Reopen every voice notification due for another call; their ids."""
        if not self._flows:
            return []
        now = self._clock()
        reopened: list[int] = []
        candidates = self._store.list_notifications(NotificationFilter(
            statuses=(Status.UNDELIVERED,), since=now - self._window, limit=self._batch))
        for view in candidates:
            spec = self._flows.get(view.flow)
            if view.channel != "voice" or spec is None or view.updated_at + spec.retry_delay > now:
                continue
            full = self._store.get_notification(view.id)
            if full is None or not full.attempts or full.attempts[-1].provider_status not in RETRY_ON:
                continue
            calls = sum(1 for a in full.attempts if a.provider_status in RETRY_ON)
            if calls > spec.retries:
                continue
            last = full.attempts[-1].provider_status
            if self._store.replay([view.id], now, f"voice retry {calls} of {spec.retries} after {last}"):
                reopened.append(view.id)
                log.info("notification %s: %s; calling again (%s of %s)", view.id, last, calls, spec.retries)
        return reopened

    async def run(self, stop: asyncio.Event) -> None:
        if not self._flows:
            return
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.retry_once)
            except StoreUnavailable:  # logged once by the store; the next round looks again
                pass
            except Exception:  # the next round looks again: nothing is lost, the wait is in the store
                log.exception("voice retries: look-up failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._every.total_seconds())
