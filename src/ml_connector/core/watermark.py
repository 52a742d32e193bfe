"""Watermark arithmetic for polling ERPs: which time window to read, and where to resume. Pure.

The saved watermark W means "every change up to W has been read". Each poll reads
[W - overlap, until], where until is the poll's own start minus the allowed clock skew (an ERP
clock running ahead, or a transaction committing a little late, must not be skipped) and at most
`max_window` past W (a first run or a long outage catches up in bounded steps). Re-reading the
overlap is safe: notifications are idempotent, so a record read twice inserts nothing new.

The watermark only moves forward and never past what was read. Windows are inclusive at both
ends; sources that treat `until` as exclusive still lose nothing because the next window starts
`overlap` earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ml_connector.core.models import require_aware

_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Window:
    """The change-time range one poll reads: since <= changed_at <= until (aware datetimes).

    `base` is the watermark the window was computed from (None for lookback windows); `advance`
    never returns less than it, even on a first poll with no saved watermark.
    """

    since: datetime
    until: datetime
    base: datetime | None = None

    def __post_init__(self) -> None:
        require_aware(self.since, "Window.since")
        require_aware(self.until, "Window.until")
        if self.base is not None:
            require_aware(self.base, "Window.base")
        if self.until < self.since:
            raise ValueError("Window.until must not be before Window.since")

    def __contains__(self, instant: object) -> bool:
        return isinstance(instant, datetime) and self.since <= instant <= self.until


def _non_negative(what: str, value: timedelta) -> timedelta:
    if value < _ZERO:
        raise ValueError(f"{what} must not be negative, got {value}")
    return value


def poll_window(
    saved: datetime | None,
    flow_started: datetime,
    now: datetime,
    overlap: timedelta,
    clock_skew: timedelta,
    max_window: timedelta,
    initial_lookback: timedelta,
) -> Window:
    """The window for the next poll.

    Without a saved watermark the flow starts `initial_lookback` before it was first started.
    since = base - overlap; until = min(now - clock_skew, base + max_window), never before since.
    """
    _non_negative("overlap", overlap)
    _non_negative("clock_skew", clock_skew)
    _non_negative("initial_lookback", initial_lookback)
    if max_window <= _ZERO:
        raise ValueError(f"max_window must be positive, got {max_window}")
    require_aware(flow_started, "flow_started")
    require_aware(now, "now")
    base = require_aware(saved, "saved watermark") if saved is not None else flow_started - initial_lookback
    since = base - overlap
    until = max(since, min(now - clock_skew, base + max_window))
    return Window(since, until, base)


def advance(
    saved: datetime | None,
    window: Window,
    newest_seen: datetime | None,
    *,
    complete: bool = True,
) -> datetime:
    """The watermark to save after reading `window`.

    A fully read window (the normal case) moves the watermark to `window.until`, whatever the
    newest record was: an empty window still proves nothing changed up to `until`, and a record
    a source returned from beyond `until` does not let the watermark jump past what was asked.

    With `complete=False` (reading stopped early, e.g. a page cap), the watermark moves only to
    the newest change time read, which is safe for sources that return records in change-time
    order; ties at that instant are read again because the next window starts `overlap` earlier.
    The result never moves backwards from `saved` (or, without one, from `window.base`).
    """
    if saved is not None:
        require_aware(saved, "saved watermark")
    if newest_seen is not None:
        require_aware(newest_seen, "newest_seen")
    floor = saved if saved is not None else window.base
    if complete:
        reached = window.until
    elif newest_seen is not None:
        reached = min(max(newest_seen, window.since), window.until)
    else:
        reached = floor if floor is not None else window.since
    return reached if floor is None else max(floor, reached)


def lookback_window(now: datetime, window: timedelta, clock_skew: timedelta) -> Window:
    """The slow lookback poll's window: the last `window` up to now - clock_skew.

    It ignores the watermark on purpose: it exists to catch changes committed long after their
    change time (EBS concurrent programs), which the regular overlap is too short to see.
    """
    require_aware(now, "now")
    _non_negative("window", window)
    _non_negative("clock_skew", clock_skew)
    until = now - clock_skew
    return Window(until - window, until)
