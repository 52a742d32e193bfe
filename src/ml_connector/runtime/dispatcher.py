"""Claim due notifications, send them with bounded concurrency, record every attempt.

A claimed row whose earlier attempt never finished (crash, timeout after the request left) is
in doubt: Twilio's Messages create has no idempotency key, so it is first looked up in Twilio's
message list and adopted if found; only an authoritative "not found" sends again (invariant 2).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ml_connector.channels.base import Channel
from ml_connector.compliance.pacing import Pacer
from ml_connector.core.redact import mask_phone
from ml_connector.core.retry import RetryPolicy
from ml_connector.core.segments import segment_info
from ml_connector.core.models import OutboundMessage
from ml_connector.errors import DeliveryError, InDoubtError, PermanentError, TransientError
from ml_connector.store.port import AttemptResult, Claimed, Outcome, Store

log = logging.getLogger(__name__)

#: How long to wait before reconciling a send whose outcome is unknown.
IN_DOUBT_DELAY = timedelta(seconds=5)
#: Margin before the in-doubt attempt's start when searching Twilio's message list.
RECONCILE_MARGIN = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    worker: str
    concurrency: int = 50
    lease: timedelta = timedelta(seconds=60)
    batch_size: int = 200
    idle_poll: timedelta = timedelta(milliseconds=200)
    status_callback_url: str | None = None


class Dispatcher:
    """Sends what the outbox holds. One per process; several processes may share a PostgreSQL store."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        pacer: Pacer,
        policies: Mapping[str, RetryPolicy],
        settings: DispatcherSettings,
        *,
        clock: Callable[[], datetime],
        account_limits: Mapping[str, int] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._channels = channels
        self._pacer = pacer
        self._policies = policies
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._account_slots = {a: asyncio.Semaphore(n) for a, n in (account_limits or {}).items()}
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until `stop` is set; then finish what is in flight."""
        while not stop.is_set():
            claimed = await self.claim_and_start()
            if not claimed:
                try:
                    await asyncio.wait_for(stop.wait(), self._settings.idle_poll.total_seconds())
                except TimeoutError:
                    pass
        await self.drain()

    async def claim_and_start(self) -> int:
        """Claim as many due rows as there are free slots and start sending them."""
        free = self._settings.concurrency - len(self._in_flight)
        if free <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return 1
        limit = min(free, self._settings.batch_size)
        claimed = await asyncio.to_thread(
            self._store.claim_due, self._settings.worker, self._clock(), self._settings.lease, limit
        )
        for row in claimed:
            task = asyncio.create_task(self._process(row))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed)

    async def drain(self) -> None:
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def run_until_idle(self) -> None:
        """Send everything due now (tests and `replay --now`)."""
        while await self.claim_and_start():
            pass
        await self.drain()

    # -- one notification ---------------------------------------------------------------------

    def _message(self, row: Claimed) -> OutboundMessage:
        return OutboundMessage(
            notification_id=row.id,
            account=row.account,
            to=row.recipient,
            sender=row.sender,
            body=row.body,
            status_callback=self._settings.status_callback_url,
        )

    async def _process(self, row: Claimed) -> None:
        started = self._clock()
        try:
            result = await self._attempt(row, started)
        except Exception as exc:  # a bug must not strand the row: leave it in doubt, reconcile later
            log.exception("notification %s: unexpected error while sending", row.id)
            result = AttemptResult(
                row.id, row.attempt_no, Outcome.IN_DOUBT, started, self._clock(),
                error_message=f"internal error: {type(exc).__name__}",
                next_attempt_at=self._clock() + IN_DOUBT_DELAY,
            )
        await asyncio.to_thread(self._store.finish_attempt, result)

    async def _attempt(self, row: Claimed, started: datetime) -> AttemptResult:
        channel = self._channels[row.account]
        message = self._message(row)
        if row.in_doubt:
            since = (row.in_doubt_since or row.created_at) - RECONCILE_MARGIN
            try:
                found = await channel.find_sent(message, since)
            except DeliveryError as exc:
                # Cannot tell yet: try reconciling again later, never send blindly.
                return AttemptResult(
                    row.id, row.attempt_no, Outcome.IN_DOUBT, started, self._clock(),
                    error_code=exc.code, error_message=f"reconciliation failed: {exc.reason}",
                    next_attempt_at=self._clock() + IN_DOUBT_DELAY,
                )
            if found is not None:
                log.info("notification %s: adopted earlier send %s", row.id, found.provider_id)
                return AttemptResult(
                    row.id, row.attempt_no, Outcome.ADOPTED, started, self._clock(),
                    provider_id=found.provider_id, provider_status=found.provider_status,
                )
        sender_key = f"{row.account}.{row.sender}"
        segments = segment_info(row.body).segments  # Twilio paces segments, not messages
        wait = self._pacer.wait_for(sender_key)
        if wait > self._settings.lease.total_seconds() / 2:
            return AttemptResult(
                row.id, row.attempt_no, Outcome.DEFERRED, started, self._clock(),
                error_message="paced: sender at its MPS", next_attempt_at=self._clock() + timedelta(seconds=wait),
            )
        delay = self._pacer.reserve(sender_key, segments)
        if delay > 0:
            await asyncio.sleep(delay)
        account_slot = self._account_slots.get(row.account)
        try:
            if account_slot is None:
                sent = await channel.send(message)
            else:
                async with account_slot:
                    sent = await channel.send(message)
        except TransientError as exc:
            if exc.slow_down:
                self._pacer.slow_down(sender_key)
            decision = self._policies[row.flow].decide(row.attempt_no, exc.retry_after, self._rand)
            log.warning(
                "notification %s to %s: transient failure %s (attempt %s/%s)",
                row.id, mask_phone(row.recipient), exc, row.attempt_no, row.max_attempts,
            )
            return AttemptResult(
                row.id, row.attempt_no, Outcome.TRANSIENT, started, self._clock(),
                error_code=exc.code, error_message=exc.reason,
                next_attempt_at=(
                    self._clock() + decision.delay
                    if decision.retry and row.attempt_no < row.max_attempts
                    else None
                ),
            )
        except InDoubtError as exc:
            return AttemptResult(
                row.id, row.attempt_no, Outcome.IN_DOUBT, started, self._clock(),
                error_message=exc.reason, next_attempt_at=self._clock() + IN_DOUBT_DELAY,
            )
        except PermanentError as exc:
            log.warning("notification %s to %s: failed %s", row.id, mask_phone(row.recipient), exc)
            return AttemptResult(
                row.id, row.attempt_no, Outcome.PERMANENT, started, self._clock(),
                error_code=exc.code, error_message=exc.reason,
            )
        return AttemptResult(
            row.id, row.attempt_no, Outcome.ACCEPTED, started, self._clock(),
            provider_id=sent.provider_id, provider_status=sent.provider_status,
        )
