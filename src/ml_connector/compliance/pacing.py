"""Per-sender pacing at the sender's MPS, slowing down when Twilio pushes back.

Twilio queues each sender's messages at its MPS (long code 1/s, toll-free 3/s, short code 100/s)
and overflows into errors 21611/30001 after ten hours of backlog; the REST API answers 429 when
we are too eager. Pacing here keeps each sender at its rate measured in *segments*, as Twilio
counts them. Hand-written because no maintained library offers an async, injectable-clock,
adaptive virtual-scheduling limiter (GCRA) with "how long would I wait" peeking.

One process paces its own sends; several dispatcher processes divide a sender's rate between
them (see README, "Running several processes").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

#: After a slow-down the rate halves, never below this share of the configured MPS.
MIN_FACTOR = 0.1
#: Share of the configured MPS regained per second after a slow-down.
RECOVERY_PER_SECOND = 0.02
#: Seconds after a slow-down during which further push-back is the same episode: the requests
#: already in flight when Twilio first pushed back must not halve the rate once each.
SLOW_DOWN_HOLD = 1.0


@dataclass
class SenderPace:
    """Virtual scheduling for one sender: `next_free` is when the next segment may leave."""

    mps: float
    factor: float = 1.0
    next_free: float = 0.0
    last_update: float = field(default=0.0)
    slowed_at: float | None = None
    deferred_until: float = 0.0

    def __post_init__(self) -> None:
        if not self.mps > 0:
            raise ValueError("mps must be positive")

    def recover(self, now: float) -> None:
        if self.factor < 1.0:
            self.factor = min(1.0, self.factor + (now - self.last_update) * RECOVERY_PER_SECOND)
        self.last_update = now

    @property
    def rate(self) -> float:
        return self.mps * self.factor

    def wait_for(self, now: float) -> float:
        """Seconds until a send could start, without reserving anything."""
        return max(0.0, self.next_free - now)

    def reserve(self, now: float, segments: int) -> float:
        """Reserve the slot for `segments` and return how long to wait before sending."""
        self.recover(now)
        start = max(now, self.next_free)
        self.next_free = start + max(1, segments) / self.rate
        return start - now

    def defer(self, now: float, segments: int) -> float:
        """Book a later slot for a send that will not wait in memory; seconds until it.

        Deferred sends line up after everything reserved or deferred before, one slot each, so
        a backlog handed back to the store returns at the sender's rate rather than all at once.
        The slot is only a hint: the returning send reserves for real.
        """
        self.recover(now)
        start = max(now, self.next_free, self.deferred_until)
        self.deferred_until = start + max(1, segments) / self.rate
        return start - now

    def slow_down(self, now: float) -> None:
        """Halve the rate (not below MIN_FACTOR), once per SLOW_DOWN_HOLD; it then recovers linearly."""
        self.recover(now)
        if self.slowed_at is not None and now - self.slowed_at < SLOW_DOWN_HOLD:
            return
        self.slowed_at = now
        self.factor = max(MIN_FACTOR, self.factor / 2)


class Pacer:
    """Pacing for every sender of one process, keyed by "<account>.<sender>"."""

    def __init__(self, mps: Mapping[str, float], clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._senders = {key: SenderPace(rate, last_update=clock()) for key, rate in mps.items()}

    def _pace(self, key: str) -> SenderPace:
        try:
            return self._senders[key]
        except KeyError:
            raise KeyError(f"no pacing configured for sender {key!r}") from None

    def wait_for(self, key: str) -> float:
        return self._pace(key).wait_for(self._clock())

    def reserve(self, key: str, segments: int = 1) -> float:
        return self._pace(key).reserve(self._clock(), segments)

    def defer(self, key: str, segments: int = 1) -> float:
        return self._pace(key).defer(self._clock(), segments)

    def slow_down(self, key: str) -> None:
        self._pace(key).slow_down(self._clock())

    def rate(self, key: str) -> float:
        """The sender's current rate in segments per second (recovery included)."""
        pace = self._pace(key)
        pace.recover(self._clock())
        return pace.rate
