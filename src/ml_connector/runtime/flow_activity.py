"""What this process saw of each flow's polls: when, how much was read and fired, the last error.

The store keeps only what a poll committed (watermarks, notifications, poll audit rows); a poll
that read nothing new or failed leaves no row. The dashboard's Flows page shows both: this for
the flows this process polls, the store's figures for all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

__all__ = ["FlowActivity", "FlowActivityLog"]


@dataclass(frozen=True, slots=True)
class FlowActivity:
    flow: str
    last_poll_at: datetime | None = None
    last_read: int = 0
    last_fired: int = 0
    polls: int = 0
    records_read: int = 0
    events_fired: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    next_run_at: datetime | None = None


class FlowActivityLog:
    """One FlowActivity per flow, replaced (never mutated) at each poll: readers need no lock."""

    def __init__(self) -> None:
        self._by_flow: dict[str, FlowActivity] = {}

    def get(self, flow: str) -> FlowActivity | None:
        return self._by_flow.get(flow)

    def polled(self, flow: str, at: datetime, read: int, fired: int, every: timedelta) -> None:
        was = self._by_flow.get(flow, FlowActivity(flow))
        self._by_flow[flow] = replace(
            was, last_poll_at=at, last_read=read, last_fired=fired, polls=was.polls + 1,
            records_read=was.records_read + read, events_fired=was.events_fired + fired, next_run_at=at + every,
        )

    def failed(self, flow: str, at: datetime, error: str, every: timedelta) -> None:
        was = self._by_flow.get(flow, FlowActivity(flow))
        self._by_flow[flow] = replace(was, last_poll_at=at, errors=was.errors + 1, last_error=error,
                                      last_error_at=at, next_run_at=at + every)
