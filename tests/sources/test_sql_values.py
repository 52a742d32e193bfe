"""sources.sql: the per-row fast paths (time reading, value conversion) agree with the definitions."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_connector.sources.sql import SqlSourceConfig, build, fixed_offset, to_utc, utc_reader, wall_to_utc

ZONES = ["UTC", "Etc/GMT+5", "Etc/GMT-14", "GMT", "America/Chicago", "Europe/London", "Australia/Lord_Howe",
         "America/Santiago", "Asia/Kolkata"]
WALLS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31))


@st.composite
def time_values(draw: st.DrawFn) -> Any:
    wall = draw(WALLS)
    return draw(st.sampled_from([
        wall,
        wall.replace(fold=1),
        wall.date(),
        wall.replace(tzinfo=UTC),
        wall.replace(tzinfo=timezone(timedelta(hours=-7))),
        wall.isoformat(sep=" "),
        f"  {wall.isoformat()}  ",
        wall.isoformat() + "+02:00",
        "not a time",
        42,
        None,
    ]))


@settings(max_examples=1500, deadline=None)
@given(zone=st.sampled_from(ZONES), value=time_values())
def test_utc_reader_agrees_with_to_utc(zone: str, value: Any) -> None:
    tz = ZoneInfo(zone)
    assert utc_reader(tz)(value) == to_utc(value, tz)
    converted = utc_reader(tz)(value)
    assert converted is None or converted.tzinfo is UTC


def _slow_wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The rule spelled out: the later instant when ambiguous, the jump when skipped."""
    later = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if later.astimezone(tz).replace(tzinfo=None) == wall.replace(fold=0):
        return later
    earlier = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    lo, hi = later, earlier  # in a gap: fold=1 reads before the jump, fold=0 after it
    while hi - lo > timedelta(microseconds=1):
        mid = lo + (hi - lo) // 2
        if mid.astimezone(tz).replace(tzinfo=None) > wall:
            hi = mid
        else:
            lo = mid
    return hi


@st.composite
def near_transitions(draw: st.DrawFn) -> tuple[str, datetime]:
    zone = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(zone)
    base = draw(st.sampled_from([datetime(2024, m, d) for m in (3, 4, 9, 10, 11) for d in (1, 7, 10, 31)
                                 if not (m in (4, 9, 11) and d == 31)]))
    wall = base + timedelta(seconds=draw(st.integers(0, 86400)))
    # Snap onto the nearest offset change within a day, when the zone has one there.
    for hour in range(24):
        a, b = base + timedelta(hours=hour), base + timedelta(hours=hour + 1)
        if tz.utcoffset(a) != tz.utcoffset(b):
            wall = a + timedelta(seconds=draw(st.integers(0, 7200)))
            break
    return zone, wall


@settings(max_examples=1500, deadline=None)
@given(case=near_transitions())
def test_wall_to_utc_fast_path_keeps_the_rule_across_dst(case: tuple[str, datetime]) -> None:
    zone, wall = case
    assert wall_to_utc(wall, ZoneInfo(zone)) == _slow_wall_to_utc(wall, ZoneInfo(zone))


def test_fixed_offset_only_for_zones_without_transitions() -> None:
    assert fixed_offset(ZoneInfo("UTC")) == timedelta(0)
    assert fixed_offset(ZoneInfo("Etc/GMT+5")) == timedelta(hours=-5)  # POSIX sign: west of Greenwich
    assert fixed_offset(ZoneInfo("America/Chicago")) is None
    assert fixed_offset(ZoneInfo("Europe/London")) is None  # GMT in winter only
    for name in available_timezones():
        tz = ZoneInfo(name)
        offset = fixed_offset(tz)
        if offset is not None:
            samples = {tz.utcoffset(datetime(year, month, 1)) for year in (1970, 2000, 2024) for month in (1, 7)}
            assert samples == {offset}


async def test_rows_of_mixed_sqlite_types_convert_value_by_value(tmp_path: Path) -> None:
    """SQLite keeps any type in any column: each value is converted on its own."""
    path = tmp_path / "erp.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (id, changed, v)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [
            (1, "2024-05-01 10:00:00", "text"),
            (2, "2024-05-01 10:00:01", b"\x01\xff"),
            (3, "2024-05-01 10:00:02", 1.5),
            (" 4 ", "2024-05-01 10:00:03", None),
            (5, "2024-05-01 10:00:04", 7),
        ])
        conn.commit()
    config = SqlSourceConfig.model_validate({
        "type": "sql", "url": f"sqlite:///{path}", "timezone": "America/Chicago",
        "entities": {"t": {"table": "t", "key": "id", "changed_at": "changed"}},
    })
    source = build(config, {})
    try:
        since = datetime(2024, 5, 1, tzinfo=UTC)
        records = [r async for r in source.fetch("t", since, since + timedelta(days=1))]
    finally:
        await source.aclose()
    by_key = {r.key: r for r in records}
    assert [by_key[k].data["v"] for k in ("1", "2", "3", "4", "5")] == ["text", "01ff", 1.5, None, 7]
    assert by_key["1"].changed_at == datetime(2024, 5, 1, 15, 0, tzinfo=UTC)  # CDT wall time
    assert by_key["4"].data["id"] == " 4 " and by_key["4"].key == "4"
    assert all(r.data["changed"] == r.changed_at for r in records)
    assert by_key["1"].data["id"] == 1 and by_key["1"].data["changed"].tzinfo is UTC


@pytest.mark.parametrize("zone", ["UTC", "America/Chicago"])
def test_naive_values_read_in_the_source_zone(zone: str) -> None:
    read = utc_reader(ZoneInfo(zone))
    expected = wall_to_utc(datetime(2024, 11, 3, 1, 30), ZoneInfo(zone))
    assert read("2024-11-03 01:30:00") == expected == read(datetime(2024, 11, 3, 1, 30))
