"""Builders for dispatcher tests: notifications straight into the outbox, a dispatcher with
injected pacing clock and sleep, and a spy around the real SMS channel."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ml_connector.channels.base import Channel
from ml_connector.compliance.pacing import Pacer
from ml_connector.core.models import OutboundMessage, SendResult, Status, StatusEvent
from ml_connector.core.retry import LookupPolicy, RetryPolicy
from ml_connector.demo import DEMO_SENDER
from ml_connector.runtime.dispatcher import Dispatcher, DispatcherSettings
from ml_connector.store.port import NewNotification, NotificationView, PollCommit
from tests.support.pipeline import Pipeline

FLOW = "po_approved"  # in the demo config: max_attempts 4, base_delay 1 s, max_delay 5 s
PHONE = "+13125550142"
SENDER_KEY = f"main.{DEMO_SENDER}"
_keys = itertools.count(1)


def notification(now: datetime, **overrides: Any) -> NewNotification:
    """A pending SMS of the demo flow, due now; every call gets its own idempotency key."""
    i = next(_keys)
    base = NewNotification(
        idempotency_key=f"{FLOW}:purchase_order:{i}:v1:{PHONE}:sms",
        flow=FLOW, entity="purchase_order", record_key=str(i), event_version="v1", channel="sms",
        account="main", sender=DEMO_SENDER, recipient=PHONE, recipient_field="static",
        body=f"PO {i} approved.", status=Status.PENDING, reason=None, next_attempt_at=now,
        max_attempts=4, segments=1, record_changed_at=now - timedelta(minutes=1),
    )
    return replace(base, **overrides)


def enqueue(p: Pipeline, *notes: NewNotification) -> list[int]:
    commit = PollCommit(flow=FLOW, watermark_kind="main", watermark=None, states=[],
                        notifications=list(notes), polled_at=p.clock())
    return p.connector.store.commit_poll(commit)


def view(p: Pipeline, nid: int) -> NotificationView:
    found = p.connector.store.get_notification(nid)
    assert found is not None
    return found


class PaceClock:
    """The pacer's monotonic clock; moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sleeps:
    """An injected sleep: records each pacing wait and returns at once, or, for waits longer
    than `gate_over`, only once `gate` is set."""

    waits: list[float] = field(default_factory=list)
    gate: asyncio.Event | None = None
    gate_over: float = 0.0

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.gate is not None and seconds > self.gate_over:
            await self.gate.wait()
        await asyncio.sleep(0)


@dataclass
class Harness:
    dispatcher: Dispatcher
    pacer: Pacer
    pace_clock: PaceClock
    sleeps: Sleeps

    async def dispatch(self, p: Pipeline) -> None:
        await self.dispatcher.run_until_idle()
        await p.sim.drain()


def harness(
    p: Pipeline,
    *,
    mps: Mapping[str, float] | None = None,
    channels: Mapping[str, Channel] | None = None,
    rand: Callable[[], float] = lambda: 0.5,
    lease: timedelta = timedelta(seconds=60),
    concurrency: int = 20,
    policies: Mapping[str, RetryPolicy] | None = None,
    sleeps: Sleeps | None = None,
    lookups: LookupPolicy | None = None,
) -> Harness:
    """The connector's store and channels with a pacer on a fake clock and a recorded sleep."""
    pace_clock = PaceClock()
    pacer = Pacer(mps or {SENDER_KEY: 10.0}, clock=pace_clock)
    sleeps = sleeps or Sleeps()
    settings = DispatcherSettings(
        worker="test-worker", concurrency=concurrency, lease=lease,
        status_callback_url=p.connector.config.webhooks.status_callback_url,
    )
    default_policies = {n: RetryPolicy.from_spec(s.retry) for n, s in p.connector.config.flows.items()}
    dispatcher = Dispatcher(
        p.connector.store, channels or p.connector.channels, pacer, policies or default_policies, settings,
        clock=p.clock, rand=rand, sleep=sleeps, **({"lookups": lookups} if lookups else {}),
    )
    return Harness(dispatcher, pacer, pace_clock, sleeps)


class SpyChannel:
    """Delegates to a real channel, counting calls; `before_send` may hold or fail a send."""

    def __init__(self, inner: Channel) -> None:
        self.inner = inner
        self.sends = 0
        self.finds = 0
        self.sending = 0
        self.most_sending = 0
        self.gate: asyncio.Event | None = None
        self.find_error: Exception | None = None

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sends += 1
        self.sending += 1
        self.most_sending = max(self.most_sending, self.sending)
        try:
            if self.gate is not None:
                await self.gate.wait()
            return await self.inner.send(message)
        finally:
            self.sending -= 1

    async def find_sent(self, message: OutboundMessage, not_before: datetime) -> SendResult | None:
        self.finds += 1
        if self.find_error is not None:
            raise self.find_error
        return await self.inner.find_sent(message, not_before)

    async def fetch_status(self, provider_id: str) -> StatusEvent:
        return await self.inner.fetch_status(provider_id)


def outcomes(v: NotificationView) -> list[str | None]:
    return [t.outcome for t in v.attempts]


def codes(v: NotificationView) -> list[int | None]:
    return [t.error_code for t in v.attempts]


def pairwise_gaps(times: list[datetime]) -> Iterator[timedelta]:
    return (b - a for a, b in itertools.pairwise(times))
