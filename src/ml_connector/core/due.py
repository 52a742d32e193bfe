"""Date-driven triggers: "N days before the date in field X, at a local time". Pure.

    due: {field: DUE_DT, before: 3d, at: "09:00"}

A record fires when the instant `date(field) - before`, at `at` in the flow's time zone, falls
in the poll's window [since, until), whether or not the row changed: the poller asks the source
for the records whose date is near (see runtime.due). The event's version is that instant, so
a record fires once per date: overlapping windows, lookback polls and restarts find the same
version, and a moved date is a new event. The flow's `trigger` still applies as a filter (for
example `{field: STATUS, eq: O}`: only open steps).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, field_validator

from ml_connector.core.models import Record, require_aware

_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class DueSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str
    before: timedelta = timedelta()
    at: str = "09:00"
    #: For sources that cannot select records by date: how far back changes are re-read to find them.
    scan: timedelta = timedelta(days=90)

    @field_validator("before", "scan", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        from ml_connector.core.flowspec import _parse_duration

        return _parse_duration(value)

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        if not _AT.match(value):
            raise ValueError("must be a local time HH:MM, e.g. '09:00'")
        return value

    @property
    def local_time(self) -> time:
        hours, minutes = self.at.split(":")
        return time(int(hours), int(minutes))


def as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def fire_at(due: date, spec: DueSpec, zone: ZoneInfo) -> datetime:
    """When a record due on `due` fires: `before` ahead of `at` on that date, in `zone`."""
    local = datetime.combine(due, spec.local_time) - spec.before
    return local.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))


def dates_for(since: datetime, until: datetime, spec: DueSpec, zone: ZoneInfo) -> tuple[date, date]:
    """The due dates whose fire instant may lie in [since, until) (a day's margin each side)."""
    require_aware(since, "since")
    low = (since.astimezone(zone).replace(tzinfo=None) + spec.before).date() - timedelta(days=1)
    high = (until.astimezone(zone).replace(tzinfo=None) + spec.before).date() + timedelta(days=1)
    return low, high


def due_now(record: Record, spec: DueSpec, zone: ZoneInfo, since: datetime, until: datetime) -> Record | None:
    """The record stamped with its fire instant when that lies in [since, until); else None."""
    due = as_date(record.data.get(spec.field))
    if due is None:
        return None
    instant = fire_at(due, spec, zone)
    if not since <= instant < until:
        return None
    return replace(record, changed_at=instant)
