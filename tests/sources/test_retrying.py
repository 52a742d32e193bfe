"""The shared retry policy of every ERP source: what is retried, how often, how long it waits."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import pytest

from ml_connector.errors import SourceAuthError, SourceUnavailable
from ml_connector.sources.retrying import RetryPolicy, TryAgain


class Sleeps:
    """A sleep that records each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def failing(times: int, result: str = "ok") -> tuple[list[int], Callable[[int], Awaitable[str]]]:
    calls: list[int] = []

    async def attempt(number: int) -> str:
        calls.append(number)
        if len(calls) <= times:
            raise TryAgain(SourceUnavailable(f"HTTP 503 ({number} attempts)", source="erp"))
        return result

    return calls, attempt


async def test_retries_until_success_and_numbers_each_attempt() -> None:
    sleeps = Sleeps()
    calls, attempt = failing(2)
    assert await RetryPolicy(3, 1.0, sleep=sleeps).run(attempt, source="erp", what="GET x") == "ok"
    assert calls == [1, 2, 3]
    assert len(sleeps.waits) == 2


async def test_gives_up_with_the_last_error_after_retries_plus_one_attempts() -> None:
    sleeps = Sleeps()
    calls, attempt = failing(10)
    with pytest.raises(SourceUnavailable, match=r"erp: HTTP 503 \(3 attempts\)") as caught:
        await RetryPolicy(2, 0.5, sleep=sleeps).run(attempt, source="erp", what="GET x")
    assert calls == [1, 2, 3]
    assert not isinstance(caught.value, TryAgain)
    assert caught.value.__cause__ is None and caught.value.__context__ is None


async def test_other_errors_are_never_retried() -> None:
    sleeps = Sleeps()
    calls: list[int] = []

    async def attempt(number: int) -> str:
        calls.append(number)
        raise SourceAuthError("password refused", source="erp")

    with pytest.raises(SourceAuthError):
        await RetryPolicy(5, 1.0, sleep=sleeps).run(attempt, source="erp", what="login")
    assert calls == [1] and sleeps.waits == []


async def test_zero_retries_means_one_attempt() -> None:
    calls, attempt = failing(1)
    with pytest.raises(SourceUnavailable):
        await RetryPolicy(0, 1.0, sleep=Sleeps()).run(attempt, source="erp", what="GET x")
    assert calls == [1]


async def test_full_jitter_waits_lie_within_a_doubling_window_capped_at_max_delay() -> None:
    random.seed(7)
    sleeps = Sleeps()
    _, attempt = failing(8)
    await RetryPolicy(8, 0.5, max_delay=3.0, sleep=sleeps).run(attempt, source="erp", what="GET x")
    ceilings = [min(3.0, 0.5 * 2**n) for n in range(8)]
    assert len(sleeps.waits) == 8
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(sleeps.waits, ceilings, strict=True))
    # jitter: not the plain exponential sequence, and not one constant
    assert sleeps.waits != ceilings
    assert len(set(sleeps.waits)) == len(sleeps.waits)


async def test_jitter_spreads_waits_over_the_whole_window() -> None:
    random.seed(11)
    firsts: list[float] = []
    for _ in range(200):
        sleeps = Sleeps()
        _, attempt = failing(1)
        await RetryPolicy(1, 2.0, sleep=sleeps).run(attempt, source="erp", what="GET x")
        firsts.extend(sleeps.waits)
    assert min(firsts) < 0.2 and max(firsts) > 1.8  # full jitter: from 0 up to the ceiling


async def test_zero_delay_never_waits() -> None:
    sleeps = Sleeps()
    _, attempt = failing(3)
    await RetryPolicy(3, 0.0, sleep=sleeps).run(attempt, source="erp", what="GET x")
    assert sleeps.waits == [0.0, 0.0, 0.0]


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(-1, 1.0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(1, -0.1)


def test_no_source_keeps_its_own_backoff_loop() -> None:
    """Every source retries through RetryPolicy: no sleep calls in sources/ outside retrying.py."""
    from pathlib import Path

    import ml_connector.sources as pkg

    folder = Path(pkg.__file__).parent
    offenders = [p.name for p in folder.glob("*.py")
                 if p.name != "retrying.py" and "asyncio.sleep(" in p.read_text(encoding="utf-8")]
    assert offenders == []
