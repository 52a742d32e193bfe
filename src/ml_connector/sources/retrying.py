"""The one retry policy of every ERP source: full-jitter exponential backoff, built on tenacity.

Each attempt decides for itself what is worth another try and says so by raising `TryAgain`
around the error the caller should see if no attempt is left; anything else ends the call at
once. So a 503 from a web tier restarting is retried, a refused password never is, and no
source writes its own loop.

Waits are "full jitter": before try n+1 the policy sleeps a random time in
[0, min(max_delay, delay * 2**(n-1))], so many connectors that lost the same ERP at the same
moment do not come back in step. `delay` is the source's `retry_delay` setting; 0 turns waiting
off, and tests can hand in their own `sleep`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from ml_connector.errors import SourceError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The longest wait between two tries, whatever the number of retries (seconds).
MAX_DELAY = 60.0


class TryAgain(Exception):  # noqa: N818 - a request, not a failure
    """Raised by an attempt that may succeed if tried again; `error` is what the caller gets when
    no attempt is left (its message says what failed and how often)."""

    def __init__(self, error: SourceError) -> None:
        self.error = error
        super().__init__(str(error))


Sleep = Callable[[float], Awaitable[None]]


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`retries` more tries after the first one, waiting as the module docstring says."""

    retries: int
    delay: float
    max_delay: float = MAX_DELAY
    #: None: asyncio.sleep, looked up when waiting (so one patch turns waiting off in tests).
    sleep: Sleep | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.delay < 0 or self.max_delay < 0:
            raise ValueError("retries, delay and max_delay must not be negative")

    @property
    def attempts(self) -> int:
        return self.retries + 1

    async def run(self, attempt: Callable[[int], Awaitable[T]], *, source: str, what: str) -> T:
        """Call `attempt(n)` for n = 1, 2, ... until it returns, raises something other than
        TryAgain, or the tries are used up (then the last TryAgain's error is raised)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=self.delay, max=self.max_delay),
            retry=retry_if_exception_type(TryAgain),
            sleep=self.sleep or _sleep,
            before_sleep=self._logger(source, what),
            reraise=True,
        )
        last: TryAgain | None = None
        try:
            async for trying in retrying:
                with trying:
                    return await attempt(trying.retry_state.attempt_number)
        except TryAgain as exc:
            last = exc
        if last is None:
            raise AssertionError("unreachable: tenacity either returns, raises or tries again")
        # raised outside the handler: no exception chain, so nothing that carried a URL (httpx
        # errors do, and e.net's URLs carry passwords) travels with the error
        raise last.error

    def _logger(self, source: str, what: str) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            failure = outcome.exception() if outcome is not None else None
            reason = failure.error if isinstance(failure, TryAgain) else failure
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            log.info("%s: %s: %s; retrying in %.2f s (attempt %d of %d)", source, what, reason, wait,
                     state.attempt_number + 1, self.attempts)

        return before_sleep
