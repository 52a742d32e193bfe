"""EBS's clock: DATE values are the database server's local wall time with no zone.

Converting both ways must neither lose nor repeat an hour at daylight-saving changes. Reading a
value: an ambiguous wall time (the repeated hour in autumn) is taken at its first occurrence,
and a wall time inside the spring gap is shifted forward, as the database itself cannot store
it. Asking for "changed since": the request starts early enough to cover both occurrences of a
repeated hour, and records are filtered precisely in UTC afterwards.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_ORACLE = "%d-%b-%y"  # 02-JAN-24, the NLS default


def local_to_utc(naive: datetime, zone: ZoneInfo) -> datetime:
    """A server-local wall time as an aware UTC instant, monotonic in the wall time.

    A repeated wall time (the autumn hour) is taken at its later occurrence and a wall time in
    the spring gap at the moment the clock jumped: a row can then only look later than it was
    written, never earlier, so it lands in a window not yet polled instead of one already past.
    """
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return first
    if utc_to_local(first, zone) == naive:  # repeated hour: both instants show this wall time
        return max(first, second)
    # Spring gap: the first instant whose wall time is at or after `naive` (to the second).
    low, high = min(first, second), max(first, second)
    while (high - low) > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if utc_to_local(middle, zone) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def utc_to_local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def since_for_request(since: datetime, zone: ZoneInfo) -> datetime:
    """The local wall time to ask "changed since" with, early enough for a repeated hour.

    Wall time only runs backwards at an autumn change, by at most an hour; an instant after
    `since` can show an earlier wall time only if such a change falls within the hour after it.
    """
    hour = timedelta(hours=1)
    return min(utc_to_local(since, zone), utc_to_local(since + hour, zone) - hour)


def parse_ebs_date(value: object, zone: ZoneInfo, *, z_is_local: bool = False) -> datetime | None:
    """Parse an EBS date as served by ISG or ORDS into aware UTC; None for empty values.

    ORDS renders DATE columns with a `Z` although they hold local time; with `z_is_local` the
    `Z` is ignored and the value is read in the server's zone.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else local_to_utc(value, zone)
    if isinstance(value, date):
        return local_to_utc(datetime(value.year, value.month, value.day), zone)
    text = str(value).strip()
    if _ISO.match(text):
        if text.endswith("Z"):
            parsed = datetime.fromisoformat(text[:-1])
            return local_to_utc(parsed, zone) if z_is_local else parsed.replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
        return parsed.astimezone(UTC) if parsed.tzinfo else local_to_utc(parsed, zone)
    try:
        return local_to_utc(datetime.strptime(text.title(), _ORACLE), zone)
    except ValueError:
        raise ValueError(f"unrecognised EBS date {text!r}") from None


def format_for_ebs(instant: datetime, zone: ZoneInfo) -> str:
    """A UTC instant as the server-local `YYYY-MM-DDTHH:MM:SS` a PL/SQL DATE parameter expects."""
    return utc_to_local(instant, zone).strftime("%Y-%m-%dT%H:%M:%S")
