"""core.retry: full-jitter exponential backoff that returns decisions, with Retry-After as a floor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.core.flowspec import RetrySpec
from ml_connector.core.retry import DEFAULT_RETRY_AFTER_CAP, RetryDecision, RetryPolicy

S = timedelta(seconds=1)
POLICY = RetryPolicy(base_delay=5 * S, max_delay=60 * S, max_attempts=6)


def const(value: float) -> Callable[[], float]:
    return lambda: value


ALMOST_ONE = 0.999999


@pytest.mark.parametrize(
    ("attempt", "ceiling_seconds"),
    [(1, 5), (2, 10), (3, 20), (4, 40), (5, 60)],  # capped at max_delay from attempt 5
)
def test_exponential_ceiling(attempt: int, ceiling_seconds: int) -> None:
    top = POLICY.decide(attempt, None, const(ALMOST_ONE))
    assert top.retry
    assert top.delay == timedelta(seconds=ceiling_seconds * ALMOST_ONE)
    half = POLICY.decide(attempt, None, const(0.5))
    assert half.delay == timedelta(seconds=ceiling_seconds / 2)


def test_full_jitter_can_be_zero() -> None:
    assert POLICY.decide(3, None, const(0.0)) == RetryDecision(True, timedelta(0))


@pytest.mark.parametrize("attempt", [6, 7, 100])
def test_gives_up_at_max_attempts(attempt: int) -> None:
    assert POLICY.decide(attempt, None, const(0.5)) == RetryDecision(False, timedelta(0))


def test_gives_up_without_consuming_randomness() -> None:
    def explode() -> float:
        raise AssertionError("rand() must not be called when giving up")

    assert not POLICY.decide(6, 30.0, explode).retry


def test_single_attempt_policy_never_retries() -> None:
    assert not RetryPolicy(S, S, max_attempts=1).decide(1, None, const(0.5)).retry


@pytest.mark.parametrize(
    ("retry_after", "rand", "expected_seconds"),
    [
        (30.0, 0.1, 30.0),                   # Retry-After longer than the jittered delay wins
        (1.0, 0.5, 5.0),                     # jittered delay longer than Retry-After wins (attempt 2: 0.5*10)
        (10_000_000.0, 0.5, DEFAULT_RETRY_AFTER_CAP.total_seconds()),  # capped
        (0.0, 0.5, 5.0),                     # a zero hint is no hint
        (-5.0, 0.5, 5.0),                    # a nonsense hint is ignored
        (float("nan"), 0.5, 5.0),
        (float("inf"), 0.5, 5.0),
    ],
)
def test_retry_after_is_a_capped_lower_bound(
    retry_after: float, rand: float, expected_seconds: float
) -> None:
    decision = POLICY.decide(2, retry_after, const(rand))
    assert decision == RetryDecision(True, timedelta(seconds=expected_seconds))


def test_retry_after_cap_is_configurable() -> None:
    policy = RetryPolicy(S, 60 * S, 5, retry_after_cap=120 * S)
    assert policy.decide(1, 3600.0, const(0.0)).delay == 120 * S


def test_immediate_turns_every_delay_off() -> None:
    policy = RetryPolicy.immediate(max_attempts=3)
    assert policy.decide(1, 3600.0, const(ALMOST_ONE)) == RetryDecision(True, timedelta(0))
    assert policy.decide(2, None, const(ALMOST_ONE)) == RetryDecision(True, timedelta(0))
    assert not policy.decide(3, None, const(0.5)).retry


def test_from_spec() -> None:
    spec = RetrySpec(max_attempts=4, base_delay=timedelta(seconds=2), max_delay=timedelta(seconds=9))
    assert RetryPolicy.from_spec(spec) == RetryPolicy(2 * S, 9 * S, 4)


def test_huge_attempt_numbers_do_not_overflow() -> None:
    policy = RetryPolicy(S, 60 * S, max_attempts=10**6)
    assert policy.decide(10**5, None, const(0.5)).delay == 30 * S


@pytest.mark.parametrize("bad_rand", [1.0, -0.1, 2.0])
def test_rand_out_of_range_is_rejected(bad_rand: float) -> None:
    with pytest.raises(ValueError, match="rand"):
        POLICY.decide(1, None, const(bad_rand))


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="attempt_no"):
        POLICY.decide(0, None, const(0.5))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_delay": -S, "max_delay": S, "max_attempts": 3},
        {"base_delay": S, "max_delay": S, "max_attempts": 0},
        {"base_delay": S, "max_delay": S, "max_attempts": 3, "retry_after_cap": -S},
    ],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@given(
    attempt=st.integers(min_value=1, max_value=200),
    rand=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    retry_after=st.none() | st.floats(min_value=0.0, max_value=1e9),
)
def test_delay_is_bounded(attempt: int, rand: float, retry_after: float | None) -> None:
    policy = RetryPolicy(S, 300 * S, max_attempts=50)
    decision = policy.decide(attempt, retry_after, const(rand))
    assert decision.retry is (attempt < 50)
    if decision.retry:
        floor = min(retry_after or 0.0, DEFAULT_RETRY_AFTER_CAP.total_seconds())
        assert floor - 1e-6 <= decision.delay.total_seconds() <= max(300.0, floor) + 1e-6
