"""core.windows: business hours in the recipient's zone, across midnight and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_connector.core.windows import BusinessHours, Window, parse_days, parse_time, resolve

CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")
ZONES = [CHICAGO, BERLIN, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata"), ZoneInfo("UTC"),
         ZoneInfo("America/Sao_Paulo")]
OFFICE = BusinessHours.of([Window.of("mon-fri", "08:00", "20:00")])


def local(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


# -- parsing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "days"), [
    ("mon-fri", {0, 1, 2, 3, 4}), ("sat,sun", {5, 6}), ("daily", set(range(7))),
    ("fri-mon", {4, 5, 6, 0}), ("Monday", {0}), ("mon-wed, fri", {0, 1, 2, 4}),
])
def test_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("text", ["mon-xyz", "funday", ""])
def test_unknown_days_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unknown day"):
        parse_days(text)


@pytest.mark.parametrize("text", ["24:00", "8:00", "08:60", "noon"])
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_time(text)


# -- resolving local times -------------------------------------------------------------------------

def test_a_time_in_the_spring_gap_means_the_end_of_the_gap() -> None:
    assert resolve(date(2026, 3, 8), time(2, 30), CHICAGO) == datetime(2026, 3, 8, 8, 0, tzinfo=UTC)  # 03:00 CDT
    assert resolve(date(2026, 3, 29), time(2, 15), BERLIN) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST


def test_a_time_in_the_autumn_fold_means_its_first_occurrence() -> None:
    assert resolve(date(2026, 11, 1), time(1, 30), CHICAGO) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # CDT


# -- the promises ----------------------------------------------------------------------------------

def test_deferred_at_23_00_is_due_at_the_opening_next_morning() -> None:
    friday_night = local(CHICAGO, 2026, 12, 4, 23, 0)
    assert OFFICE.next_open(friday_night, CHICAGO) == local(CHICAGO, 2026, 12, 7, 8, 0)  # Monday
    tuesday_night = local(CHICAGO, 2026, 12, 8, 23, 0)
    assert OFFICE.next_open(tuesday_night, CHICAGO) == local(CHICAGO, 2026, 12, 9, 8, 0)


def test_inside_a_window_is_now() -> None:
    at = local(CHICAGO, 2026, 12, 7, 9, 15)
    assert OFFICE.is_open(at, CHICAGO)
    assert OFFICE.next_open(at, CHICAGO) == at
    assert not OFFICE.is_open(local(CHICAGO, 2026, 12, 7, 20, 0), CHICAGO)  # the end is exclusive


def test_a_window_across_the_spring_change_keeps_its_wall_times() -> None:
    daily = BusinessHours.of([Window.of("daily", "08:00", "20:00")])
    saturday_night = local(CHICAGO, 2026, 3, 7, 23, 0)
    opens = daily.next_open(saturday_night, CHICAGO)
    assert opens == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)  # 08:00 CDT: 8 real hours later, not 9
    assert opens - saturday_night.astimezone(UTC) == timedelta(hours=8)


def test_a_window_across_the_autumn_change_keeps_its_wall_times() -> None:
    daily = BusinessHours.of([Window.of("daily", "08:00", "20:00")])
    saturday_night = local(CHICAGO, 2026, 10, 31, 23, 0)
    opens = daily.next_open(saturday_night, CHICAGO)
    assert opens == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # 08:00 CST: 10 real hours later
    assert opens - saturday_night.astimezone(UTC) == timedelta(hours=10)


def test_a_night_window_across_the_autumn_change_does_not_repeat_its_hour() -> None:
    night = BusinessHours.of([Window.of("sat", "22:00", "02:00")])  # Saturday night into Sunday
    opens = local(CHICAGO, 2026, 10, 31, 22, 0).astimezone(UTC)
    assert night.is_open(opens, CHICAGO)
    closes = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)  # 02:00 CST, after the repeated 01:00-02:00
    assert night.is_open(closes - timedelta(seconds=1), CHICAGO)
    assert not night.is_open(closes, CHICAGO)
    assert night.next_open(closes, CHICAGO) == local(CHICAGO, 2026, 11, 7, 22, 0)


def test_a_window_opening_in_the_spring_gap_opens_when_the_gap_ends() -> None:
    early = BusinessHours.of([Window.of("sun", "02:30", "04:00")])
    assert early.next_open(local(CHICAGO, 2026, 3, 8, 1, 0), CHICAGO) == datetime(2026, 3, 8, 8, 0, tzinfo=UTC)


def test_a_window_across_midnight_belongs_to_its_first_day() -> None:
    late = BusinessHours.of([Window.of("fri", "22:00", "02:00")])
    assert late.is_open(local(BERLIN, 2026, 12, 5, 1, 0), BERLIN)  # Saturday 01:00: Friday's night
    assert not late.is_open(local(BERLIN, 2026, 12, 4, 1, 0), BERLIN)  # Friday 01:00: Thursday's night


def test_no_windows_means_always_and_no_days_means_never() -> None:
    at = local(CHICAGO, 2026, 12, 6, 3, 0)
    assert BusinessHours.of([]).next_open(at, CHICAGO) == at
    assert BusinessHours.of([Window(frozenset(), time(8), time(9))]).next_open(at, CHICAGO) is None


def test_naive_moments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.next_open(datetime(2026, 12, 7, 9, 0), CHICAGO)


# -- properties ------------------------------------------------------------------------------------

windows = st.builds(
    Window,
    st.frozensets(st.integers(0, 6), min_size=1),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
)
hours = st.lists(windows, min_size=1, max_size=3).map(BusinessHours.of)
moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda naive: naive.replace(tzinfo=UTC, microsecond=0))


def wall_clock_open(hours: BusinessHours, at: datetime, zone: ZoneInfo) -> bool:
    """The obvious reading: the wall clock says a weekday and time inside a window."""
    wall = at.astimezone(zone)
    day, now = wall.weekday(), wall.time().replace(tzinfo=None)
    for w in hours.windows:
        if not w.crosses_midnight:
            if day in w.days and w.start <= now < w.end:
                return True
        elif (day in w.days and now >= w.start) or ((day - 1) % 7 in w.days and now < w.end):
            return True
    return False


def far_from_a_change(at: datetime, zone: ZoneInfo) -> bool:
    before, after = (at - timedelta(hours=3)).astimezone(zone), (at + timedelta(hours=3)).astimezone(zone)
    return before.utcoffset() == after.utcoffset()


@settings(max_examples=300)
@given(hours, moments, st.sampled_from(ZONES))
def test_away_from_clock_changes_open_means_what_the_wall_clock_says(hours: BusinessHours, at: datetime,
                                                                    zone: ZoneInfo) -> None:
    if far_from_a_change(at, zone):
        assert hours.is_open(at, zone) == wall_clock_open(hours, at, zone)


@settings(max_examples=60, deadline=None)
@given(hours, moments, st.sampled_from(ZONES))
def test_next_open_is_the_first_open_moment(hours: BusinessHours, at: datetime, zone: ZoneInfo) -> None:
    opens = hours.next_open(at, zone)
    assert opens is not None  # every generated window has a day
    assert opens >= at
    assert hours.is_open(opens, zone)
    assert opens - at <= timedelta(days=7)
    probe = at
    while probe < opens:
        assert not hours.is_open(probe, zone)
        probe += timedelta(minutes=15)
    if opens > at:
        assert not hours.is_open(opens - timedelta(seconds=1), zone)
