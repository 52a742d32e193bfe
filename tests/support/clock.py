"""A clock that moves only when a test tells it to, for simulators, sources and pollers."""

from __future__ import annotations

from datetime import datetime, timedelta


class ManualClock:
    """Call it for the time; `advance(30)`, `advance(timedelta(...))` or `advance(minutes=5)` moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float | timedelta = 0, **units: float) -> datetime:
        step = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        self.now += step + timedelta(**units)
        return self.now
