"""The records a `due` flow fires for in one poll window (see core.due).

A source that can select records by date range (`DueSource.fetch_due`, e.g. a PeopleSoft query
with two date prompts) is asked for the due dates the window can reach; any other source is
read over its changes of the last `due.scan`, and the dates filtered here. Records come out
stamped with their fire instant, in (instant, key) order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from ml_connector.core.due import DueSpec, dates_for, due_now
from ml_connector.core.models import Record
from ml_connector.sources.base import Source


@runtime_checkable
class DueSource(Protocol):
    """Optional: records whose due date lies in [first, last]."""

    def fetch_due(self, entity: str, first: date, last: date) -> AsyncIterator[Record]: ...


async def due_records(source: Source, entity: str, spec: DueSpec, timezone: str, since: datetime,
                      until: datetime) -> AsyncIterator[Record]:
    zone = ZoneInfo(timezone)
    if isinstance(source, DueSource):
        first, last = dates_for(since, until, spec, zone)
        candidates = source.fetch_due(entity, first, last)
    else:
        candidates = source.fetch(entity, until - spec.scan, until)
    fired: list[Record] = []
    async for record in candidates:
        stamped = due_now(record, spec, zone, since, until)
        if stamped is not None:
            fired.append(stamped)
    for record in sorted(fired, key=lambda r: (r.changed_at, r.key)):
        yield record
