"""Pacing per sender (GCRA, zero burst tolerance, adaptive slow-down) on an injected clock."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.compliance.pacing import MIN_FACTOR, RECOVERY_PER_SECOND, SLOW_DOWN_HOLD, Pacer
from ml_connector.config import Sender


class Clock:
    def __init__(self, now: float = 5000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def greedy_minute(pacer: Pacer, clock: Clock, key: str, segments: int = 1, seconds: float = 60.0) -> int:
    """Segments a sender with an endless backlog gets out in `seconds` (each send waits its slot)."""
    end = clock.now + seconds
    sent = 0
    while True:
        clock.now += pacer.reserve(key, segments)
        if clock.now >= end:
            return sent
        sent += segments


POOL = Sender.model_validate({"messaging_service_sid": "MG" + "0" * 32, "pool_mps": [1, 1, 3, 10]})


@pytest.mark.parametrize("mps", [1.0, 3.0, 100.0, POOL.effective_mps])
def test_a_busy_sender_gets_its_mps_over_a_minute(mps: float) -> None:
    clock = Clock()
    pacer = Pacer({"main.s": mps}, clock=clock)
    rate = greedy_minute(pacer, clock, "main.s") / 60.0
    assert rate == pytest.approx(mps, rel=0.01)


def test_the_pool_rate_is_the_sum_of_its_numbers() -> None:
    assert POOL.effective_mps == 15.0


def test_a_batch_claimed_at_once_is_spread_at_the_rate() -> None:
    clock = Clock()
    pacer = Pacer({"main.s": 4.0}, clock=clock)
    waits = [pacer.reserve("main.s") for _ in range(9)]
    assert waits == pytest.approx([i / 4.0 for i in range(9)])


@pytest.mark.parametrize("segments", [2, 3, 7])
def test_segments_are_what_is_counted(segments: int) -> None:
    clock = Clock()
    pacer = Pacer({"main.s": 3.0}, clock=clock)
    sent = greedy_minute(pacer, clock, "main.s", segments=segments)
    assert sent / 60.0 == pytest.approx(3.0, rel=0.05)  # whole messages: at most one short
    assert pacer.reserve("main.s", segments) == pytest.approx(segments / 3.0)


def test_no_burst_after_being_idle() -> None:
    clock = Clock()
    pacer = Pacer({"main.s": 2.0}, clock=clock)
    pacer.reserve("main.s")
    clock.now += 3600  # an hour of silence earns no credit
    assert pacer.reserve("main.s") == 0.0
    assert pacer.reserve("main.s") == pytest.approx(0.5)
    assert pacer.reserve("main.s") == pytest.approx(1.0)


@given(
    mps=st.sampled_from([1.0, 3.0, 10.0, 100.0]),
    arrivals=st.lists(st.tuples(st.floats(0, 5), st.integers(1, 4)), min_size=2, max_size=40),
)
def test_sends_are_never_closer_than_their_segments_allow(mps: float, arrivals: list[tuple[float, int]]) -> None:
    """GCRA with zero tolerance: between two sends, at least the earlier one's segments / MPS."""
    clock = Clock()
    pacer = Pacer({"k": mps}, clock=clock)
    sends: list[tuple[float, int]] = []
    for gap, segments in arrivals:
        clock.now += gap
        sends.append((clock.now + pacer.reserve("k", segments), segments))
    for (t1, n1), (t2, _) in itertools.pairwise(sends):
        assert t2 - t1 >= n1 / mps - 1e-9


def test_wait_for_peeks_without_reserving() -> None:
    clock = Clock()
    pacer = Pacer({"k": 1.0}, clock=clock)
    pacer.reserve("k", 3)
    assert pacer.wait_for("k") == pytest.approx(3.0)
    assert pacer.wait_for("k") == pytest.approx(3.0)
    clock.now += 2
    assert pacer.wait_for("k") == pytest.approx(1.0)
    clock.now += 5
    assert pacer.wait_for("k") == 0.0


def test_slow_down_halves_and_recovers_linearly() -> None:
    clock = Clock()
    pacer = Pacer({"k": 10.0}, clock=clock)
    pacer.slow_down("k")
    assert pacer.rate("k") == pytest.approx(5.0)
    clock.now += 10
    assert pacer.rate("k") == pytest.approx(10.0 * (0.5 + 10 * RECOVERY_PER_SECOND))
    clock.now += 0.5 / RECOVERY_PER_SECOND
    assert pacer.rate("k") == pytest.approx(10.0), "fully recovered, and no further"


def test_the_slowed_rate_is_what_the_sender_gets() -> None:
    clock = Clock()
    pacer = Pacer({"k": 10.0}, clock=clock)
    pacer.slow_down("k")
    sent = greedy_minute(pacer, clock, "k", seconds=10.0)
    # the factor climbs from 0.5 to 0.7 over ten seconds: about 10 * 0.6 * 10 = 60 segments
    assert sent == pytest.approx(60, rel=0.03)


def test_one_burst_of_push_back_is_one_slow_down() -> None:
    clock = Clock()
    pacer = Pacer({"k": 8.0}, clock=clock)
    for _ in range(20):  # every request in flight came back 429
        pacer.slow_down("k")
    assert pacer.rate("k") == pytest.approx(4.0)
    clock.now += SLOW_DOWN_HOLD
    pacer.slow_down("k")
    assert pacer.rate("k") == pytest.approx(8.0 * (0.5 + SLOW_DOWN_HOLD * RECOVERY_PER_SECOND) / 2)


def test_slow_down_stops_at_the_floor() -> None:
    clock = Clock()
    pacer = Pacer({"k": 10.0}, clock=clock)
    for _ in range(10):
        pacer.slow_down("k")
        clock.now += SLOW_DOWN_HOLD
        pacer.rate("k")
    clock.now -= SLOW_DOWN_HOLD
    pacer.slow_down("k")  # within the hold: ignored
    assert pacer.rate("k") >= 10.0 * MIN_FACTOR
    assert pacer.rate("k") < 10.0 * MIN_FACTOR * 1.5


def test_senders_are_paced_apart() -> None:
    clock = Clock()
    pacer = Pacer({"a.1": 1.0, "a.2": 1.0}, clock=clock)
    assert pacer.reserve("a.1") == 0.0
    assert pacer.reserve("a.2") == 0.0
    pacer.slow_down("a.1")
    assert pacer.rate("a.2") == 1.0


def test_unknown_sender_is_named() -> None:
    with pytest.raises(KeyError, match="no pacing configured for sender 'x.y'"):
        Pacer({}).reserve("x.y")


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="mps must be positive"):
        Pacer({"k": 0.0})
