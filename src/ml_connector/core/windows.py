"""Business hours in a recipient's time zone: is a moment inside them, and when do they open next. Pure.

A window is a set of weekdays and local start and end times (`mon-fri 08:00-20:00`); an end at or
before the start crosses midnight and belongs to the start's day (`fri 22:00-02:00` is Friday
night). Each window, on each day, is one interval of real time between two instants:

- a local time that does not exist that day (inside a spring-forward gap) means the first instant
  after the gap: a window that opens at 02:30 on the night the clocks jump from 02:00 to 03:00
  opens at 03:00;
- a local time that exists twice (inside a fall-back fold) means its first occurrence.

So a window across a change neither loses nor repeats an hour of its meaning: `08:00-20:00` on
the day of the change is 08:00 to 20:00 on the wall clock, whatever the offset did at 02:00, and
a notification deferred at 23:00 the night before is due at 08:00 local, not at 07:00 or 09:00.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ml_connector.core.models import require_aware

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
#: How far ahead `next_open` looks: a week of windows always holds the next opening, if any.
_HORIZON_DAYS = 8


def parse_days(text: str) -> frozenset[int]:
    """`mon-fri`, `sat,sun`, `mon-wed,fri`, `daily` -> weekday numbers (Monday 0)."""
    spec = text.strip().lower()
    if spec in ("daily", "all", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        try:
            start = DAY_NAMES.index(first.strip()[:3])
            end = DAY_NAMES.index(last.strip()[:3]) if last else start
        except ValueError:
            raise ValueError(f"unknown day in {text!r}: use mon..sun, ranges like mon-fri, or daily") from None
        span = range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)]
        days.update(span)
    return frozenset(days)


def parse_time(text: str) -> time:
    match = _TIME.match(text.strip())
    if not match:
        raise ValueError(f"not a local time HH:MM: {text!r}")
    return time(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class Window:
    """Local weekdays and times; `end <= start` crosses midnight into the next day."""

    days: frozenset[int]
    start: time
    end: time

    @classmethod
    def of(cls, days: str, start: str, end: str) -> Window:
        return cls(parse_days(days), parse_time(start), parse_time(end))

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


def resolve(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The instant (UTC) of a local wall time: first occurrence in a fold, gap end in a gap."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return first.astimezone(UTC)
    # In a gap: fold=1 reads the time with the offset before the jump (an earlier instant whose
    # wall time is before the gap), fold=0 with the offset after it (a later one). The gap ends
    # at the first instant between them whose wall time is at or after `naive`.
    low, high = sorted(int(naive.replace(tzinfo=zone, fold=f).timestamp()) for f in (0, 1))
    while high - low > 1:  # offsets change on whole seconds: search those
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


@dataclass(frozen=True)
class BusinessHours:
    """The windows in which a flow may send (empty: always)."""

    windows: tuple[Window, ...]

    @classmethod
    def of(cls, windows: Iterable[Window]) -> BusinessHours:
        return cls(tuple(windows))

    def intervals(self, around: datetime, zone: ZoneInfo,
                  days: int = _HORIZON_DAYS) -> Iterator[tuple[datetime, datetime]]:
        """Each window's interval [opens, closes) in UTC, for local days from the day before
        `around` to `days` after it, in order of opening."""
        start_day = require_aware(around, "around").astimezone(zone).date() - timedelta(days=1)
        found: list[tuple[datetime, datetime]] = []
        for offset in range(days + 2):
            day = start_day + timedelta(days=offset)
            for window in self.windows:
                if day.weekday() not in window.days:
                    continue
                end_day = day + timedelta(days=1) if window.crosses_midnight else day
                opens, closes = resolve(day, window.start, zone), resolve(end_day, window.end, zone)
                if closes > opens:
                    found.append((opens, closes))
        yield from sorted(found)

    def is_open(self, at: datetime, zone: ZoneInfo) -> bool:
        if not self.windows:
            return True
        at = require_aware(at, "at").astimezone(UTC)
        return any(opens <= at < closes for opens, closes in self.intervals(at, zone, days=1))

    def next_open(self, at: datetime, zone: ZoneInfo) -> datetime | None:
        """`at` itself when inside a window, else the next instant a window opens (UTC); None
        when no window ever opens (no weekday chosen)."""
        at = require_aware(at, "at").astimezone(UTC)
        if not self.windows:
            return at
        for opens, closes in self.intervals(at, zone):
            if closes <= at:
                continue
            return max(opens, at)
        return None
