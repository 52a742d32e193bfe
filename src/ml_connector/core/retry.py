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
