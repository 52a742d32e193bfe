"""Digest windows: which batch an item joins, when that batch is sent, and what the message lists. Pure.

A flow that batches sends one message per recipient per window instead of one per event. A window
is named by a key the store keeps unique per flow + recipient + digest (so two processes adding
items race to the same row), and closes:

- `every: 1h`: at fixed steps of UTC time (00:00, 01:00, ...; a step that divides a day lines up
  with midnight UTC), which no clock change can shift;
- `at: ["08:00", "17:00"]`: at the next of these local times in the recipient's zone (through the
  same DST rules as business hours: a time in a spring gap is the end of the gap);
- `max_items: 20`: also as soon as it holds that many items, whichever comes first.

An item belongs to the window open at the moment it arrived: one that arrives at or after a
window's close goes to the next window, never into a batch already being sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ml_connector.core.models import require_aware
from ml_connector.core.windows import resolve

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DigestSpec:
    every: timedelta | None = None
    at: tuple[time, ...] = ()
    max_items: int | None = None
    top: int = 5

    def __post_init__(self) -> None:
        if (self.every is None) == (not self.at):
            raise ValueError("a digest closes either `every` some time or `at` local times (one of the two)")
        if self.every is not None and self.every < timedelta(minutes=1):
            raise ValueError("a digest window is at least one minute")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError("max_items must be at least 1")
        if self.top < 1:
            raise ValueError("top must be at least 1")


@dataclass(frozen=True)
class DigestWindow:
    key: str  # unique per flow + recipient + digest; the store's constraint makes the upsert race-free
    closes_at: datetime


def window_for(arrived_at: datetime, spec: DigestSpec, zone: ZoneInfo) -> DigestWindow:
    """The window an item arriving at `arrived_at` joins (the time part; `is_full` adds the count)."""
    at = require_aware(arrived_at, "arrived_at").astimezone(UTC)
    if spec.every is not None:
        steps = (at - EPOCH) // spec.every
        closes = EPOCH + spec.every * (steps + 1)
    else:
        closes = _next_local(at, spec.at, zone)
    return DigestWindow(key=closes.strftime("%Y-%m-%dT%H:%M:%SZ"), closes_at=closes)


def _next_local(at: datetime, times: Sequence[time], zone: ZoneInfo) -> datetime:
    day = at.astimezone(zone).date() - timedelta(days=1)
    for offset in range(4):  # the next of daily times is at most a day and an hour away
        candidates = sorted(resolve(day + timedelta(days=offset), t, zone) for t in times)
        for candidate in candidates:
            if candidate > at:
                return candidate
    raise AssertionError("unreachable: a daily time recurs within two days")


def is_full(items: int, spec: DigestSpec) -> bool:
    return spec.max_items is not None and items >= spec.max_items


@dataclass(frozen=True)
class Summary:
    count: int
    shown: tuple[str, ...]
    more: int

    def text(self, headline: str) -> str:
        """`headline` with the top items and how many more: "5 invoices await ...: A, B, C and 2 more"."""
        listed = ", ".join(self.shown)
        tail = f" and {self.more} more" if self.more else ""
        return f"{headline}: {listed}{tail}" if listed else headline


def summarise(items: Sequence[str], spec: DigestSpec) -> Summary:
    """The count and the first `top` items, in arrival order (templates render them as they like)."""
    shown = tuple(items[: spec.top])
    return Summary(count=len(items), shown=shown, more=len(items) - len(shown))
