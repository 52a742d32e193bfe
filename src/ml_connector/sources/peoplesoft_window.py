"""Reading a time window through a query whose only paging knob is `maxrows`, which truncates silently.

A window answered with `numrows == maxrows` may have lost rows, so it is split in two at a whole
second (PeopleSoft datetimes have no fraction) and each half asked again, until every part comes
back below the limit. Parts are half-open and disjoint, and rows are assigned to a part by their
change time, so nothing is lost and nothing is read into two parts. A part one second wide cannot
be split: it is asked again with a larger `maxrows`, up to `ceiling`, and beyond that the read
fails saying what to change. Parts are read oldest first, so records stream in order and memory
holds one part (fewer than `maxrows` rows) at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ml_connector.core.models import Record
from ml_connector.errors import SourceError

SECOND = timedelta(seconds=1)

#: read(since, until, maxrows) -> (numrows the server reported, the records of the answer)
Reader = Callable[[datetime, datetime, int], Awaitable[tuple[int, list[Record]]]]


def floor_second(instant: datetime) -> datetime:
    return instant.replace(microsecond=0)


def ceil_second(instant: datetime) -> datetime:
    floored = floor_second(instant)
    return floored if floored == instant else floored + SECOND


def split_point(since: datetime, until: datetime) -> datetime | None:
    """A whole second strictly inside (since, until), halving the seconds spanned; None if none."""
    low, high = floor_second(since), ceil_second(until)
    seconds = int((high - low).total_seconds())
    if seconds < 2:
        return None
    middle = low + SECOND * (seconds // 2)
    return middle if since < middle < until else None


@dataclass(slots=True)
class SplitStats:
    """What a windowed read cost: calls made, splits done, maxrows raises for one-second parts."""

    calls: int = 0
    splits: int = 0
    raised: int = 0


async def read_window(read: Reader, since: datetime, until: datetime, *, maxrows: int, ceiling: int,
                      what: str, source: str, stats: SplitStats | None = None) -> AsyncIterator[Record]:
    """Every record with since <= changed_at < until, each once, ordered by (changed_at, key)."""
    stats = stats or SplitStats()
    pending = [(since, until)]  # a stack: the earliest part on top
    while pending:
        low, high = pending.pop()
        limit = maxrows
        while True:
            stats.calls += 1
            numrows, records = await read(low, high, limit)
            if numrows < limit:
                break
            middle = split_point(low, high)
            if middle is not None:
                stats.splits += 1
                pending.extend([(middle, high), (low, middle)])
                records = []
                break
            if limit >= ceiling:
                raise SourceError(
                    f"{what}: {numrows} rows changed within one second ({low.isoformat()}) and maxrows "
                    f"{limit} may have cut some off; raise `maxrows_ceiling` for this entity above {limit}, "
                    "or narrow the query", source=source)
            stats.raised += 1
            limit = min(ceiling, limit * 4)
        inside = sorted((r for r in records if low <= r.changed_at < high), key=lambda r: (r.changed_at, r.key))
        for record in inside:
            yield record
