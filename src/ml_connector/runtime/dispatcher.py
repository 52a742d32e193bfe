"""Claim due notifications, send them with bounded concurrency, record every attempt.

A claimed row whose earlier attempt never finished (crash, timeout after the request left) is
in doubt: Twilio's Messages create has no idempotency key, so it is first looked up in Twilio's
message list and adopted if found; only an authoritative "not found" sends again (invariant 2).
A look-up that cannot finish leaves the row in doubt, to be looked up again later under its own
policy (core.retry.LookupPolicy): look-ups are reads, they use none of the retry budget, which
counts only requests that could have sent a message. When the look-up finds nothing and the
budget is already spent by earlier sends, the notification ends `dead` instead of sending again.

Every attempt ends before its lease does: pacing waits longer than MAX_PACING_WAIT (or half of
what is left of the lease) are not waited but deferred, lined up at the sender's rate, and the
Twilio calls share a deadline short of the lease, so no other dispatcher (nor this one)
re-claims a row whose request may still be in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from ml_connector import logctx
from ml_connector.channels.base import Channel, Probe
from ml_connector.compliance.pacing import Pacer
from ml_connector.core.channel_kinds import CHANNEL_KINDS, MESSAGE_CHANNELS, route_key
from ml_connector.core.flowspec import RetrySpec
from ml_connector.core.models import OutboundMessage, SendResult
from ml_connector.core.redact import mask_phone
from ml_connector.core.resolution import DELIVERY_CODES, Action
from ml_connector.core.retry import LOOKUP_FIRST_DELAY, LOOKUP_MAX_DELAY, LookupPolicy, RetryPolicy
from ml_connector.core.segments import segment_info
from ml_connector.errors import (
    AccountError,
    DeliveryError,
    InDoubtError,
    NotResent,
    PermanentError,
    StoreUnavailable,
    TransientError,
)
from ml_connector.runtime.account_hold import PROBE_EVERY, AccountHolds, Hold
from ml_connector.runtime.batching import Batcher
from ml_connector.runtime.metrics import ConnectorMetrics
from ml_connector.runtime.store_wait import wait_for_store
from ml_connector.store.port import AttemptResult, Claimed, Outcome, Store

log = logging.getLogger(__name__)

#: Shortest wait before reconciling a send whose outcome is unknown.
IN_DOUBT_DELAY = LOOKUP_FIRST_DELAY
#: Longest wait between two look-ups of a send that stays in doubt.
IN_DOUBT_MAX_DELAY = LOOKUP_MAX_DELAY
#: Look-ups of in-doubt sends, unless the dispatcher is given another policy.
DEFAULT_LOOKUPS = LookupPolicy()
#: Margin before the in-doubt attempt's start when searching Twilio's message list.
RECONCILE_MARGIN = timedelta(minutes=2)
#: Share of the lease an attempt may use; the rest absorbs clock and scheduling slack.
LEASE_SHARE = 0.8
#: Longest pacing wait taken while holding a concurrency slot; longer ones go back to the store,
#: so a slow sender's backlog cannot occupy the slots every other sender needs.
MAX_PACING_WAIT = 2.0
#: A deferred send comes back this much before its slot and waits the rest in memory: a sender
#: left idle while its next row is still being claimed loses that time for good.
DEFER_EARLY = MAX_PACING_WAIT / 2
#: Used for notifications of a flow no longer in the configuration.
DEFAULT_POLICY = RetryPolicy.from_spec(RetrySpec())
#: Codes a status callback reports when Twilio accepted a message but its sender's queue
#: overflowed (30001, with a Messaging Service): the sender must slow down, as for a 429.
PUSH_BACK_CODES = tuple(sorted(c for c, r in DELIVERY_CODES.items() if r.action is Action.RETRY_SLOW))
#: How often the dispatcher looks for such reports (any process may have received them).
PUSH_BACK_CHECK = timedelta(seconds=5)
#: How far back each look reaches: a report is stamped when received and may commit later.
PUSH_BACK_LATE = timedelta(seconds=30)

Sleep = Callable[[float], Awaitable[None]]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DispatcherSettings:
    worker: str
    concurrency: int = 50
    lease: timedelta = timedelta(seconds=60)
    batch_size: int = 200
    idle_poll: timedelta = timedelta(milliseconds=200)
    status_callback_url: str | None = None
    account_probe_every: timedelta = PROBE_EVERY


class _ConfigMissing(Exception):
    """The row names an account or sender this process has no configuration for."""


def in_doubt_delay(in_doubt_for: timedelta) -> timedelta:
    """Wait before the next look-up: half the time the send has been in doubt, within bounds.

    Look-ups thus space out geometrically while Twilio cannot answer, with no counter to keep.
    """
    return DEFAULT_LOOKUPS.delay(in_doubt_for)


def round_attempt(row: Claimed, policy: RetryPolicy) -> int:
    """The attempt's number within its replay round, as the retry policy counts attempts.

    `row.attempt_no` counts every attempt ever made and `row.max_attempts` is the budget of the
    current round (a replay adds a fresh one), so the policy must see the attempts left, not
    the total: otherwise a replayed notification would give up after its first failure.
    """
    left = row.max_attempts - row.attempt_no
    return max(1, policy.max_attempts - left)


def _finish_one(store: Store) -> Callable[[AttemptResult], bool]:
    def finish(result: AttemptResult) -> bool:
        return store.finish_attempts([result])[0]

    return finish


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
        sleep: Sleep = asyncio.sleep,
        lookups: LookupPolicy = DEFAULT_LOOKUPS,
        metrics: ConnectorMetrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics or ConnectorMetrics()
        self._lookups = lookups
        self._channels = channels
        self._pacer = pacer
        self._policies = policies
        self._settings = settings
        self._clock = clock
        self._rand = rand
        self._sleep = sleep
        self._account_slots = {a: asyncio.Semaphore(n) for a, n in (account_limits or {}).items()}
        #: Accounts Twilio refused: their rows wait (runtime.account_hold).
        self.holds = AccountHolds(clock, settings.account_probe_every)
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Attempts finishing together are recorded in one transaction by one writer.
        self._finish: Batcher[AttemptResult, bool] = Batcher(store.finish_attempts, _finish_one(store))
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until `stop` is set; then finish what is in flight.

        Rows are claimed in batches of at least a quarter of the slots (or of `batch_size`), not
        one per slot as slots free up: a claim is a write transaction whose cost hardly depends
        on how many rows it takes. Sends already under way finish and are recorded; rows still
        waiting for their pacing slot are handed back untried, so shutdown never waits on pacing.
        """
        self._stopping = stop
        refill = max(1, min(self._settings.batch_size, self._settings.concurrency) // 4)
        watcher = asyncio.create_task(self._watch_push_back(stop))
        prober = asyncio.create_task(self._probe_held(stop))
        try:
            while not stop.is_set():
                if self._free_slots() < refill:
                    await self._wait_for_slot(stop)
                    continue
                try:
                    claimed = await self.claim_and_start()
                except StoreUnavailable:  # logged once by the store; sends in flight keep their results
                    await wait_for_store(self._store, stop)
                    continue
                if not claimed:
                    await self._wait(stop, self._settings.idle_poll.total_seconds())
            await self.drain()
        finally:
            for task in (watcher, prober):
                task.cancel()
            await asyncio.gather(watcher, prober, return_exceptions=True)

    async def _probe_held(self, stop: asyncio.Event) -> None:
        """Probe each held account when due; release it when Twilio takes it again."""
        tick = min(1.0, self.holds.probe_every.total_seconds())
        while not stop.is_set():
            await self._wait(stop, tick)
            for account in self.holds.due_probes():
                await self.probe_account(account)

    async def probe_account(self, account: str) -> bool:
        """One probe of a held account; True when it was released."""
        channel = self._channels.get(account)
        try:
            if isinstance(channel, Probe):
                await self._limited(account, channel.probe())
        except DeliveryError as exc:
            self.holds.probe_failed(account, exc)
            return False
        if self.holds.release(account):
            await self._record_hold(account, None)
        return True

    async def _record_hold(self, account: str, hold: Hold | None) -> None:
        """Keep the store's copy for `check`; a store that is away only loses this copy."""
        try:
            await asyncio.to_thread(self._store.record_account_hold, account,
                                    hold.describe() if hold else None, self._clock())
        except Exception as exc:
            log.warning("could not record the hold of Twilio account %s in the store: %s", account,
                        type(exc).__name__)

    async def _watch_push_back(self, stop: asyncio.Event) -> None:
        """Slow down each sender whose messages Twilio reported as queue overflows (30001).

        Those arrive by status callback, possibly to another process, long after the create
        call succeeded; the store is where every process can see them.
        """
        seen: dict[int, datetime] = {}
        since = self._clock()
        while not stop.is_set():
            await self._wait(stop, PUSH_BACK_CHECK.total_seconds())
            until = self._clock()
            try:
                reported = await asyncio.to_thread(
                    self._store.errors_reported, PUSH_BACK_CODES, since - PUSH_BACK_LATE, until
                )
            except StoreUnavailable:  # logged once by the store; the next look covers this window again
                continue
            except Exception as exc:  # the next look covers this window again
                log.warning("could not look for queue overflows reported by Twilio: %s", type(exc).__name__)
                continue
            senders = {(account, sender) for event_id, account, sender in reported if event_id not in seen}
            seen = {i: t for i, t in seen.items() if t >= since - PUSH_BACK_LATE}
            seen.update((event_id, until) for event_id, _, _ in reported)
            since = until
            for account, sender in sorted(senders):
                key = f"{account}.{sender}"
                try:
                    self._pacer.slow_down(key)
                except KeyError:  # a sender no longer configured here
                    continue
                log.warning("sender %s of account %s: Twilio reported queue overflow (30001); slowing down to "
                            "%.2f segments/s", sender, account, self._pacer.rate(key))

    async def claim_and_start(self) -> int:
        """Claim as many due rows as there are free slots and start sending them.

        Returns how many rows were claimed; with every slot busy it waits for one to free up
        and returns 1, so a caller looping "while claimed" keeps going.
        """
        free = self._free_slots()
        if free <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return 1
        limit = min(free, self._settings.batch_size)
        claimed = await asyncio.to_thread(
            self._store.claim_due, self._settings.worker, self._clock(), self._settings.lease, limit
        )
        deadline = asyncio.get_running_loop().time() + self._settings.lease.total_seconds() * LEASE_SHARE
        for row in claimed:
            task = asyncio.create_task(self._process(row, deadline))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def drain(self) -> None:
        """Wait for every send in flight to be recorded."""
        while self._in_flight or self._side_tasks:
            await asyncio.gather(*self._in_flight, *self._side_tasks, return_exceptions=True)

    async def run_until_idle(self) -> None:
        """Send everything due now, including retries that fall due while sending (tests, replay)."""
        while True:
            if await self.claim_and_start():
                continue
            if not self._in_flight:
                return
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)

    def _free_slots(self) -> int:
        return self._settings.concurrency - len(self._in_flight)

    async def _wait_for_slot(self, stop: asyncio.Event) -> None:
        """Until a send in flight is recorded, or `stop`.

        One event rather than `asyncio.wait` over the tasks in flight: that registers and removes
        a callback on every task each time, for each of hundreds of sends a second.
        """
        self._slot_freed.clear()
        freed = asyncio.ensure_future(self._slot_freed.wait())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({freed, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (freed, stopper):
                waiter.cancel()
            await asyncio.gather(freed, stopper, return_exceptions=True)

    @staticmethod
    async def _wait(stop: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass

    # -- one notification ---------------------------------------------------------------------

    def _message(self, row: Claimed) -> OutboundMessage:
        return OutboundMessage(
            notification_id=row.id,
            account=row.account,
            to=row.recipient,
            sender=row.sender,
            body=row.body,
            status_callback=self._settings.status_callback_url if row.channel in MESSAGE_CHANNELS else None,
            channel=row.channel,
        )

    def _result(
        self,
        row: Claimed,
        outcome: Outcome,
        started: datetime,
        *,
        sent: SendResult | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> AttemptResult:
        return AttemptResult(
            row.id, row.attempt_no, outcome, started, self._clock(),
            provider_id=sent.provider_id if sent else None,
            provider_status=sent.provider_status if sent else None,
            error_code=error_code, error_message=error_message, next_attempt_at=next_attempt_at,
        )

    def _still_in_doubt(
        self, row: Claimed, started: datetime, message: str, error_code: int | None = None,
        *, outcome: Outcome = Outcome.IN_DOUBT,
    ) -> AttemptResult:
        """In doubt (a send that may have gone) or LOOKUP_FAILED (only its look-up ran), looked up later."""
        since = row.in_doubt_since or started
        return self._result(
            row, outcome, started, error_code=error_code, error_message=message,
            next_attempt_at=self._clock() + self._lookups.delay(self._clock() - since),
        )

    async def _process(self, row: Claimed, deadline: float) -> None:
        logctx.bind(flow=row.flow, notification_id=row.id)  # a task of its own: its log lines only
        started = self._clock()
        try:
            result = await self._attempt(row, started, deadline)
        except _ConfigMissing as exc:
            result = self._unconfigured(row, started, str(exc))
        except Exception as exc:  # a bug must not strand the row: leave it in doubt, reconcile later
            log.exception("notification %s: unexpected error while sending", row.id)
            result = self._still_in_doubt(row, started, f"internal error: {type(exc).__name__}")
        await self._record(row, result)

    async def _record(self, row: Claimed, result: AttemptResult) -> None:
        """Record the attempt, waiting out a store outage: the result lives only in this process.

        Given up only at shutdown; then the lease runs out and the row comes back in doubt, to be
        looked up before any resend, so nothing is lost or doubled either way."""
        self._metrics.attempt(row.account, result)
        while True:
            try:
                await self._finish.apply(result)
                return
            except StoreUnavailable:
                if not await wait_for_store(self._store, self._stopping):
                    log.warning("notification %s: attempt %s not recorded before shutdown (store away); "
                                "it will be looked up after its lease", row.id, row.attempt_no)
                    return
            except Exception:  # the lease runs out and the row comes back in doubt: nothing is lost
                log.exception("notification %s: could not record attempt %s", row.id, row.attempt_no)
                return

    def _unconfigured(self, row: Claimed, started: datetime, problem: str) -> AttemptResult:
        """Nothing was sent: fail the notification with the reason, unless an earlier send is in doubt."""
        log.error("notification %s: %s", row.id, problem)
        if row.in_doubt:
            return self._still_in_doubt(row, started, problem)
        return self._result(row, Outcome.PERMANENT, started, error_message=problem)

    def _route(self, row: Claimed) -> tuple[Channel, str]:
        """The channel that sends the row and its pacing key (per sender, or per account)."""
        kind = CHANNEL_KINDS.get(row.channel)
        if kind is None:
            raise _ConfigMissing(f"unknown channel {row.channel!r}")
        channel = self._channels.get(route_key(row.account, row.channel))
        if channel is None:
            if row.channel == "sms":
                raise _ConfigMissing(f"no Twilio account {row.account!r} in the configuration")
            raise _ConfigMissing(f"no {row.channel} channel for account {row.account!r} in the configuration")
        if kind.pacing == "account":
            sender_key = route_key(row.account, row.channel)
        else:
            sender_key = f"{row.account}.{row.sender}"
        try:
            self._pacer.rate(sender_key)
        except KeyError:
            raise _ConfigMissing(f"sender {row.sender!r} is not configured for account {row.account!r}") from None
        return channel, sender_key

    async def _attempt(self, row: Claimed, started: datetime, deadline: float) -> AttemptResult:
        channel, sender_key = self._route(row)
        message = self._message(row)
        held = self.holds.get(row.account)
        if held is not None:  # nothing is asked of Twilio: not a send, not a look-up
            return self._result(
                row, Outcome.HELD, started, error_code=held.code, error_message=f"account held: {held.reason}",
                next_attempt_at=max(held.next_probe, self._clock()) + timedelta(seconds=self._rand()),
            )
        if row.in_doubt:
            found = await self._reconcile(row, channel, message, started, deadline)
            if found is not None:
                return found
        # Twilio paces SMS segments, not messages; other channels pace one request per notification.
        segments = segment_info(row.body).segments if CHANNEL_KINDS[row.channel].segments else 1
        remaining = deadline - asyncio.get_running_loop().time()
        if self._pacer.wait_for(sender_key) > min(MAX_PACING_WAIT, remaining / 2):
            later = self._pacer.defer(sender_key, segments)
            self._metrics.paced(sender_key, "deferred")
            return self._result(
                row, Outcome.DEFERRED, started, error_message="paced: sender at its MPS",
                next_attempt_at=self._clock() + timedelta(seconds=max(0.0, later - DEFER_EARLY)),
            )
        delay = self._pacer.reserve(sender_key, segments)
        if delay > 0:
            self._metrics.paced(sender_key, "waited", delay)
        if not await self._paced(delay):
            return self._result(
                row, Outcome.DEFERRED, started, error_message="shutting down before the send",
                next_attempt_at=self._clock(),
            )
        began = time.perf_counter()
        try:
            async with asyncio.timeout_at(deadline):
                sent = await self._limited(row.account, channel.send(message))
        except TimeoutError:
            return self._still_in_doubt(row, started, "no answer before the lease ran out")
        except DeliveryError as exc:
            return self._failed(row, sender_key, started, exc)
        finally:
            self._metrics.sent(row.account, time.perf_counter() - began)
        logctx.bind(twilio_sid=sent.provider_id)
        return self._result(row, Outcome.ACCEPTED, started, sent=sent)

    async def _reconcile(
        self, row: Claimed, channel: Channel, message: OutboundMessage, started: datetime, deadline: float
    ) -> AttemptResult | None:
        """The attempt's result when the look-up settles it; None: not found, send again.

        Settled: adopted; still unknown (LOOKUP_FAILED, which uses none of the budget); or, when
        nothing was found but earlier sends already spent the budget, dead with that reason.
        """
        since = (row.in_doubt_since or row.created_at) - RECONCILE_MARGIN
        limit = min(deadline, asyncio.get_running_loop().time() + self._lookups.timeout.total_seconds())
        failed = Outcome.LOOKUP_FAILED
        try:
            async with asyncio.timeout_at(limit):
                found = await self._limited(row.account, channel.find_sent(message, since))
        except TimeoutError:
            return self._still_in_doubt(row, started, "reconciliation did not finish in time", outcome=failed)
        except NotResent as exc:  # the channel cannot tell and sends at most once: fail, never resend
            log.warning("notification %s: earlier send cannot be looked up; not sent again: %s", row.id, exc)
            return self._result(row, Outcome.PERMANENT, started, error_code=exc.code, error_message=exc.reason)
        except AccountError as exc:
            self._hold(row.account, exc)
            return self._still_in_doubt(row, started, f"account held: {exc}", error_code=exc.code, outcome=failed)
        except DeliveryError as exc:
            # Cannot tell yet: look again later, never send blindly.
            log.warning("notification %s: reconciliation failed, will look again: %s", row.id, exc)
            return self._still_in_doubt(row, started, f"reconciliation failed: {exc.reason}", error_code=exc.code,
                                        outcome=failed)
        except Exception as exc:  # a bug in the look-up is no reason to send, nor to spend the budget
            log.exception("notification %s: unexpected error while looking up the earlier send", row.id)
            return self._still_in_doubt(row, started, f"internal error: {type(exc).__name__}", outcome=failed)
        if found is not None:
            logctx.bind(twilio_sid=found.provider_id)
            log.info("notification %s: adopted earlier send %s", row.id, found.provider_id)
            return self._result(row, Outcome.ADOPTED, started, sent=found)
        if row.attempt_no > row.max_attempts:
            log.warning("notification %s: earlier send not found at the provider and its %s attempt(s) are "
                        "spent; giving up", row.id, row.max_attempts)
            return self._result(row, Outcome.TRANSIENT, started, error_message=(
                "retries exhausted: the last send's outcome was unknown and Twilio's message list does not show it"))
        log.info("notification %s: earlier send not found at the provider; sending again", row.id)
        return None

    async def _limited(self, account: str, call: Awaitable[_T]) -> _T:
        """Run one provider call within the account's concurrency limit."""
        slot = self._account_slots.get(account)
        if slot is None:
            return await call
        async with slot:
            return await call

    async def _paced(self, delay: float) -> bool:
        """Wait `delay` seconds for the pacing slot; False when shutdown began meanwhile."""
        if delay > 0 and not self._stopping.is_set():
            sleeper = asyncio.ensure_future(self._sleep(delay))
            stopper = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (sleeper, stopper):
                    waiter.cancel()
                await asyncio.gather(sleeper, stopper, return_exceptions=True)
        return not self._stopping.is_set()

    # -- what a failed send means ------------------------------------------------------------------

    def _failed(self, row: Claimed, sender_key: str, started: datetime, exc: DeliveryError) -> AttemptResult:
        for kind, handler in _FAILURES:
            if isinstance(exc, kind):
                return handler(self, row, sender_key, started, exc)
        return self._still_in_doubt(row, started, exc.reason, error_code=exc.code)  # unknown kind: be safe

    def _transient(self, row: Claimed, sender_key: str, started: datetime, exc: DeliveryError) -> AttemptResult:
        if not isinstance(exc, TransientError):
            raise TypeError(f"expected a TransientError, got {type(exc).__name__}")
        if exc.slow_down:
            self._pacer.slow_down(sender_key)
        policy = self._policies.get(row.flow, DEFAULT_POLICY)
        decision = policy.decide(round_attempt(row, policy), exc.retry_after, self._rand)
        retry = decision.retry and row.attempt_no < row.max_attempts
        log.warning(
            "notification %s to %s: transient failure %s (attempt %s of %s)%s",
            row.id, mask_phone(row.recipient), exc, row.attempt_no, row.max_attempts,
            "" if retry else "; giving up",
        )
        return self._result(
            row, Outcome.TRANSIENT, started, error_code=exc.code, error_message=exc.reason,
            next_attempt_at=self._clock() + decision.delay if retry else None,
        )

    def _hold(self, account: str, exc: AccountError) -> Hold:
        held, first = self.holds.hold(account, exc)
        if first:
            task = asyncio.create_task(self._record_hold(account, held))
            self._side_tasks.add(task)  # drained like a send, so shutdown waits for it
            task.add_done_callback(self._side_tasks.discard)
        return held

    def _account_refused(
        self, row: Claimed, sender_key: str, started: datetime, exc: DeliveryError
    ) -> AttemptResult:
        """The account was refused, not this message: it waits for the account, its budget untouched."""
        if not isinstance(exc, AccountError):
            raise TypeError(f"expected an AccountError, got {type(exc).__name__}")
        held = self._hold(row.account, exc)
        return self._result(
            row, Outcome.HELD, started, error_code=exc.code, error_message=f"account held: {exc.reason}",
            next_attempt_at=held.next_probe + timedelta(seconds=self._rand()),
        )

    def _in_doubt(self, row: Claimed, sender_key: str, started: datetime, exc: DeliveryError) -> AttemptResult:
        log.warning("notification %s: outcome unknown, will reconcile: %s", row.id, exc)
        return self._still_in_doubt(row, started, exc.reason, error_code=exc.code)

    def _permanent(self, row: Claimed, sender_key: str, started: datetime, exc: DeliveryError) -> AttemptResult:
        log.warning("notification %s to %s: failed %s", row.id, mask_phone(row.recipient), exc)
        return self._result(row, Outcome.PERMANENT, started, error_code=exc.code, error_message=exc.reason)


_Handler = Callable[[Dispatcher, Claimed, str, datetime, DeliveryError], AttemptResult]

#: Delivery error kind -> what the attempt becomes (first match wins).
_FAILURES: tuple[tuple[type[DeliveryError], _Handler], ...] = (
    (AccountError, Dispatcher._account_refused),
    (TransientError, Dispatcher._transient),
    (InDoubtError, Dispatcher._in_doubt),
    (PermanentError, Dispatcher._permanent),
)

__all__ = [
    "DEFAULT_LOOKUPS",
    "DEFAULT_POLICY",
    "DEFER_EARLY",
    "IN_DOUBT_DELAY",
    "IN_DOUBT_MAX_DELAY",
    "LEASE_SHARE",
    "MAX_PACING_WAIT",
    "PUSH_BACK_CHECK",
    "PUSH_BACK_CODES",
    "PUSH_BACK_LATE",
    "RECONCILE_MARGIN",
    "Dispatcher",
    "DispatcherSettings",
    "in_doubt_delay",
    "round_attempt",
]
