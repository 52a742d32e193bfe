"""What the ERP simulators share: a clock tests can move, and one-shot faults armed for the next calls."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class OffsetClock:
    """The injected clock plus an offset set through the control API; naive clocks are rejected."""

    def __init__(self, clock: Callable[[], datetime] | None, owner: str) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._owner = owner
        self.offset = timedelta()

    def now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"{self._owner} clock must return timezone-aware datetimes")
        return (now + self.offset).astimezone(UTC)


class ArmedFaults:
    """Web-tier failures and truncated bodies armed for the next calls, consumed one per call."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.malformed = 0

    def fail_next(self, count: int, status: int) -> None:
        self.statuses.extend([status] * count)

    def take_status(self) -> int | None:
        return self.statuses.pop(0) if self.statuses else None

    def malform_next(self, count: int) -> None:
        self.malformed += count

    def take_malformed(self) -> bool:
        if self.malformed:
            self.malformed -= 1
            return True
        return False
