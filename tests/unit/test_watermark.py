"""core.watermark: window arithmetic by example, then its invariants by property."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.core.watermark import Window, advance, lookback_window, poll_window

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
DEFAULTS = {
    "overlap": 5 * MIN,
    "clock_skew": 1 * MIN,
    "max_window": timedelta(days=1),
    "initial_lookback": 60 * MIN,
}


def window(saved: datetime | None, now: datetime, **overrides: timedelta) -> Window:
    args = {**DEFAULTS, **overrides}
    return poll_window(saved, T0, now, **args)


# --------------------------------------------------------------------------- examples

def test_first_poll_starts_initial_lookback_before_flow_start() -> None:
    w = window(None, T0 + 10 * MIN)
    assert w == Window(T0 - 65 * MIN, T0 + 9 * MIN, base=T0 - 60 * MIN)


def test_saved_watermark_is_read_with_overlap() -> None:
    w = window(T0, T0 + 10 * MIN)
    assert w == Window(T0 - 5 * MIN, T0 + 9 * MIN, base=T0)


def test_max_window_cuts_a_long_catch_up_short() -> None:
    w = window(T0, T0 + timedelta(days=3))
    assert (w.since, w.until) == (T0 - 5 * MIN, T0 + timedelta(days=1))
    # The next poll continues from where this one stopped.
    saved = advance(T0, w, None)
    assert saved == T0 + timedelta(days=1)
    assert window(saved, T0 + timedelta(days=3)).since == T0 + timedelta(days=1) - 5 * MIN


def test_until_never_before_since_when_clock_is_behind() -> None:
    w = window(T0, T0 - 30 * MIN)
    assert w.since == w.until == T0 - 5 * MIN
    assert advance(T0, w, None) == T0


def test_first_poll_with_clock_behind_does_not_drift_backwards() -> None:
    w = window(None, T0 - 120 * MIN)
    assert w.since == w.until == T0 - 65 * MIN
    assert advance(None, w, None) == T0 - 60 * MIN  # the implicit start, not `since`


def test_advance_to_window_end_when_fully_read() -> None:
    w = Window(T0 - 5 * MIN, T0 + 9 * MIN)
    assert advance(T0, w, T0 + 1 * MIN) == T0 + 9 * MIN
    assert advance(T0, w, None) == T0 + 9 * MIN          # empty window still proves "nothing new"
    assert advance(T0, w, T0 + 60 * MIN) == T0 + 9 * MIN  # a record past `until` does not pull it on
    assert advance(None, w, None) == T0 + 9 * MIN


def test_advance_never_moves_backwards() -> None:
    w = Window(T0 - 5 * MIN, T0 + 9 * MIN)
    assert advance(T0 + 30 * MIN, w, None) == T0 + 30 * MIN


def test_advance_after_partial_read_stops_at_newest_seen() -> None:
    w = Window(T0 - 5 * MIN, T0 + 9 * MIN)
    assert advance(T0, w, T0 + 3 * MIN, complete=False) == T0 + 3 * MIN
    assert advance(T0, w, T0 - 2 * MIN, complete=False) == T0             # not backwards
    assert advance(T0, w, T0 + 60 * MIN, complete=False) == T0 + 9 * MIN  # not past until
    assert advance(T0, w, None, complete=False) == T0
    assert advance(None, w, None, complete=False) == w.since
    based = Window(T0 - 5 * MIN, T0 + 9 * MIN, base=T0)
    assert advance(None, based, None, complete=False) == T0
    assert advance(None, based, T0 - 3 * MIN, complete=False) == T0


def test_lookback_window() -> None:
    assert lookback_window(T0, timedelta(hours=6), MIN) == Window(T0 - MIN - timedelta(hours=6), T0 - MIN)


def test_window_contains_is_inclusive() -> None:
    w = Window(T0, T0 + MIN)
    assert T0 in w and T0 + MIN in w
    assert T0 - timedelta(microseconds=1) not in w and "T0" not in w


@pytest.mark.parametrize(
    "call",
    [
        lambda: poll_window(datetime(2024, 5, 1), T0, T0, **DEFAULTS),
        lambda: poll_window(None, datetime(2024, 5, 1), T0, **DEFAULTS),
        lambda: poll_window(None, T0, datetime(2024, 5, 1), **DEFAULTS),
        lambda: advance(datetime(2024, 5, 1), Window(T0, T0), None),
        lambda: advance(T0, Window(T0, T0), datetime(2024, 5, 1)),
        lambda: lookback_window(datetime(2024, 5, 1), MIN, MIN),
        lambda: Window(datetime(2024, 5, 1), T0),
        lambda: Window(T0, T0, base=datetime(2024, 5, 1)),
    ],
)
def test_naive_datetimes_are_rejected(call: object) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "value"),
    [("overlap", -MIN), ("clock_skew", -MIN), ("initial_lookback", -MIN), ("max_window", timedelta(0))],
)
def test_bad_durations_are_rejected(name: str, value: timedelta) -> None:
    with pytest.raises(ValueError, match=name):
        window(T0, T0, **{name: value})


def test_window_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValueError):
        Window(T0, T0 - MIN)


# --------------------------------------------------------------------------- properties

durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=6))
windows_max = st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=1))
steps = st.lists(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)), min_size=1, max_size=25)


def simulate(
    step_list: list[timedelta], overlap: timedelta, skew: timedelta, max_window: timedelta,
    lookback: timedelta,
) -> tuple[list[datetime | None], list[Window]]:
    """Poll repeatedly as the clock moves on; return the saved watermarks and the windows read."""
    saved: datetime | None = None
    now = T0
    history: list[datetime | None] = [saved]
    windows: list[Window] = []
    for step in step_list:
        now += step
        w = poll_window(saved, T0, now, overlap, skew, max_window, lookback)
        saved = advance(saved, w, None)
        windows.append(w)
        history.append(saved)
    return history, windows


@given(steps, durations, durations, windows_max, durations)
def test_watermark_never_decreases(step_list: list[timedelta], overlap: timedelta, skew: timedelta,
                                   max_window: timedelta, lookback: timedelta) -> None:
    history, windows = simulate(step_list, overlap, skew, max_window, lookback)
    saved = [T0 - lookback] + [h for h in history if h is not None]
    assert all(a <= b for a, b in zip(saved, saved[1:], strict=False))
    # Never past what was read, unless it already was further on (clock behind the watermark).
    for h, w in zip(history[1:], windows, strict=True):
        assert w.base is not None and h == max(w.base, w.until)


@given(steps, durations, durations, windows_max, durations)
def test_consecutive_windows_leave_no_gap(step_list: list[timedelta], overlap: timedelta, skew: timedelta,
                                          max_window: timedelta, lookback: timedelta) -> None:
    _, windows = simulate(step_list, overlap, skew, max_window, lookback)
    for before, after in zip(windows, windows[1:], strict=False):
        assert after.since <= before.until, "an instant between two polls was never read"
        assert after.until >= before.until


@given(
    saved_offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    overlap=durations,
    lateness=st.floats(min_value=0.0, max_value=1.0),
    elapsed=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)),
    skew=durations,
    max_window=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=1)),
)
def test_late_commit_within_overlap_is_read_next_time(
    saved_offset: timedelta, overlap: timedelta, lateness: float, elapsed: timedelta, skew: timedelta,
    max_window: timedelta,
) -> None:
    saved = T0 + saved_offset
    # A row whose change time is up to `overlap` before the watermark, committed after the last poll.
    changed_at = saved - overlap * lateness
    now = saved + skew + elapsed  # the clock has moved on at least as far as the watermark
    w = poll_window(saved, T0, now, overlap, skew, max_window, timedelta(0))
    assert changed_at in w


@given(
    saved_offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
    newest=st.timedeltas(min_value=-timedelta(days=1), max_value=timedelta(days=3)),
    complete=st.booleans(),
)
def test_advance_stays_between_saved_and_until(
    saved_offset: timedelta, newest: timedelta, complete: bool
) -> None:
    saved = T0 + saved_offset
    w = poll_window(saved, T0, T0 + timedelta(days=2), 5 * MIN, MIN, timedelta(days=1), timedelta(0))
    result = advance(saved, w, T0 + newest, complete=complete)
    assert saved <= result <= max(saved, w.until)
