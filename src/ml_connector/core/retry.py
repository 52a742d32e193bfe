"""The retry policy for transient delivery failures: it returns a decision, it never sleeps. Pure.

Backoff is exponential with full jitter (AWS architecture blog, "Exponential Backoff and Jitter"),
so many notifications failing together do not retry in lock-step. A provider's Retry-After is a
lower bound, capped so a bogus header cannot park a notification for days. Randomness is passed
in, which keeps the policy deterministic under test; `RetryPolicy.immediate()` switches every
delay off for tests in one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ml_connector.core.flowspec import RetrySpec

_ZERO = timedelta(0)
#: Longest Retry-After honoured by default.
DEFAULT_RETRY_AFTER_CAP = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Retry after `delay`, or give up (`retry` False, delay zero)."""

    retry: bool
    delay: timedelta


GIVE_UP = RetryDecision(False, _ZERO)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry. `max_attempts` counts every attempt, the first too."""

    base_delay: timedelta
    max_delay: timedelta
    max_attempts: int
    retry_after_cap: timedelta = DEFAULT_RETRY_AFTER_CAP

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.retry_after_cap) < _ZERO:
            raise ValueError("retry delays must not be negative")

    @classmethod
    def from_spec(cls, spec: RetrySpec) -> RetryPolicy:
        """The policy a flow's `retry:` section describes."""
        return cls(spec.base_delay, spec.max_delay, spec.max_attempts)

    @classmethod
    def immediate(cls, max_attempts: int = 3) -> RetryPolicy:
        """A policy with every delay off (Retry-After included): the one switch tests use."""
        return cls(_ZERO, _ZERO, max_attempts, retry_after_cap=_ZERO)

    def decide(
        self, attempt_no: int, retry_after: float | None, rand: Callable[[], float]
    ) -> RetryDecision:
        """What to do after attempt number `attempt_no` (1-based) failed transiently.

        delay = rand() * min(max_delay, base_delay * 2**(attempt_no - 1)), raised to the
        provider's Retry-After (seconds) when that is longer, itself capped at `retry_after_cap`.
        `rand` must return a float in [0, 1).
        """
        if attempt_no < 1:
            raise ValueError("attempt_no starts at 1")
        if attempt_no >= self.max_attempts:
            return GIVE_UP
        jitter = rand()
        if not 0.0 <= jitter < 1.0:
            raise ValueError("rand() must return a float in [0, 1)")
        ceiling = min(
            self.max_delay.total_seconds(),
            self.base_delay.total_seconds() * 2.0 ** min(attempt_no - 1, 1000),
        )
        seconds = jitter * ceiling
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            seconds = max(seconds, min(retry_after, self.retry_after_cap.total_seconds()))
        return RetryDecision(True, timedelta(seconds=seconds))


#: First wait before looking up a send whose outcome is unknown.
LOOKUP_FIRST_DELAY = timedelta(seconds=5)
#: Longest wait between two look-ups of a send that stays in doubt.
LOOKUP_MAX_DELAY = timedelta(minutes=10)
#: Longest a single look-up may take: a hanging message list must not hold the lease.
LOOKUP_TIMEOUT = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class LookupPolicy:
    """How patiently to look up an in-doubt send in the provider's message list. Pure.

    Look-ups are reads: they cannot send a message, so they never use the retry budget and
    never end a notification. A look-up that fails is tried again after half the time the send
    has been in doubt (between `first_delay` and `max_delay`), so look-ups space out while the
    provider cannot answer and need no counter; each is bounded by `timeout`. The notification
    meanwhile stays pending and in doubt, with the look-up's failure as its visible reason.
    """

    first_delay: timedelta = LOOKUP_FIRST_DELAY
    max_delay: timedelta = LOOKUP_MAX_DELAY
    timeout: timedelta = LOOKUP_TIMEOUT

    def __post_init__(self) -> None:
        if min(self.first_delay, self.max_delay, self.timeout) < _ZERO or self.first_delay > self.max_delay:
            raise ValueError("look-up delays must not be negative and first_delay <= max_delay")

    def delay(self, in_doubt_for: timedelta) -> timedelta:
        """Wait before the next look-up of a send in doubt for `in_doubt_for`."""
        return min(self.max_delay, max(self.first_delay, in_doubt_for / 2))
