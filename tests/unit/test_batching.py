"""core.batching: digest windows by time or local times, items after a close go to the next window."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.core.batching import DigestSpec, is_full, summarise, window_for

CHICAGO = ZoneInfo("America/Chicago")
HOURLY = DigestSpec(every=timedelta(hours=1))
MORNING = DigestSpec(at=(time(8, 0),))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_hourly_windows_close_on_the_hour() -> None:
    first = window_for(utc(2026, 12, 7, 15, 0, 0), HOURLY, CHICAGO)
    assert first.closes_at == utc(2026, 12, 7, 16, 0)
    assert window_for(utc(2026, 12, 7, 15, 59, 59), HOURLY, CHICAGO) == first
    following = window_for(utc(2026, 12, 7, 16, 0, 0), HOURLY, CHICAGO)  # at the close: the next one
    assert following.closes_at == utc(2026, 12, 7, 17, 0) and following.key != first.key


def test_a_morning_digest_closes_at_08_00_local() -> None:
    evening = window_for(datetime(2026, 12, 7, 18, 0, tzinfo=CHICAGO), MORNING, CHICAGO)
    assert evening.closes_at == datetime(2026, 12, 8, 8, 0, tzinfo=CHICAGO)
    early = window_for(datetime(2026, 12, 8, 7, 59, tzinfo=CHICAGO), MORNING, CHICAGO)
    assert early == evening
    after = window_for(datetime(2026, 12, 8, 8, 0, tzinfo=CHICAGO), MORNING, CHICAGO)
    assert after.closes_at == datetime(2026, 12, 9, 8, 0, tzinfo=CHICAGO)


def test_a_morning_digest_keeps_08_00_across_the_clock_changes() -> None:
    spring = window_for(datetime(2026, 3, 7, 20, 0, tzinfo=CHICAGO), MORNING, CHICAGO)
    assert spring.closes_at == utc(2026, 3, 8, 13, 0)  # 08:00 CDT
    autumn = window_for(datetime(2026, 10, 31, 20, 0, tzinfo=CHICAGO), MORNING, CHICAGO)
    assert autumn.closes_at == utc(2026, 11, 1, 14, 0)  # 08:00 CST


def test_twice_a_day() -> None:
    spec = DigestSpec(at=(time(17, 0), time(8, 0)))
    assert window_for(datetime(2026, 12, 7, 9, 0, tzinfo=CHICAGO), spec, CHICAGO).closes_at == \
        datetime(2026, 12, 7, 17, 0, tzinfo=CHICAGO)
    assert window_for(datetime(2026, 12, 7, 17, 0, tzinfo=CHICAGO), spec, CHICAGO).closes_at == \
        datetime(2026, 12, 8, 8, 0, tzinfo=CHICAGO)


def test_a_count_closes_the_window_early() -> None:
    spec = DigestSpec(every=timedelta(hours=1), max_items=3)
    assert [is_full(n, spec) for n in range(5)] == [False, False, False, True, True]
    assert not is_full(10_000, HOURLY)


def test_the_summary_lists_the_top_items_and_counts_the_rest() -> None:
    items = ["INV-1001 $1,200.00", "INV-1002 $80.00", "INV-1003 $5.00", "INV-1004 $9.99", "INV-1005 $1.00"]
    summary = summarise(items, DigestSpec(every=timedelta(hours=1), top=3))
    assert (summary.count, summary.more) == (5, 2)
    assert summary.text("5 invoices await your approval") == (
        "5 invoices await your approval: INV-1001 $1,200.00, INV-1002 $80.00, INV-1003 $5.00 and 2 more")
    assert summarise(items[:2], HOURLY).text("2 invoices") == "2 invoices: INV-1001 $1,200.00, INV-1002 $80.00"


@pytest.mark.parametrize("kwargs", [{}, {"every": timedelta(hours=1), "at": (time(8),)},
                                    {"every": timedelta(seconds=5)}, {"every": timedelta(hours=1), "max_items": 0},
                                    {"every": timedelta(hours=1), "top": 0}])
def test_bad_specs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DigestSpec(**kwargs)  # type: ignore[arg-type]


specs = st.one_of(
    st.builds(lambda m: DigestSpec(every=timedelta(minutes=m)), st.integers(1, 24 * 60)),
    st.builds(lambda ts: DigestSpec(at=tuple(ts)),
              st.lists(st.builds(time, st.integers(0, 23), st.sampled_from([0, 30])), min_size=1, max_size=3)),
)
moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda naive: naive.replace(tzinfo=UTC))


@given(specs, moments, st.sampled_from([CHICAGO, ZoneInfo("Europe/Berlin"), ZoneInfo("Australia/Lord_Howe")]))
def test_every_item_joins_the_window_open_when_it_arrived(spec: DigestSpec, at: datetime, zone: ZoneInfo) -> None:
    window = window_for(at, spec, zone)
    assert window.closes_at > at
    assert window.closes_at - at <= (spec.every or timedelta(hours=26))
    just_before = window_for(window.closes_at - timedelta(microseconds=1), spec, zone)
    assert just_before == window  # the whole stretch up to the close is one window
    assert window_for(window.closes_at, spec, zone).closes_at > window.closes_at  # the close opens the next
