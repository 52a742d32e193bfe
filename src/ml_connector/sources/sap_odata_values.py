"""SAP Gateway OData v2 values and literals, both ways. Pure functions.

* `Edm.DateTime` travels as ``"/Date(1704067200000)/"`` or ``"/Date(981173106000+0060)/"``
  (milliseconds since the epoch; an offset in minutes when the service knows one). ABAP DATS
  and TIMS fields carry no time zone: Gateway puts the SAP system's *wall time* into the
  milliseconds as if it were UTC. So a value without offset is wall time in the configured
  SAP time zone; a value with an offset is a real instant.
* `Edm.Time` (TIMS) is an ISO duration ``"PT13H45M00S"``; with a DATS field it names the wall
  time of that day.
* `Edm.Decimal` and `Edm.Int64` are JSON strings: read as Decimal and int, exactly (money).
* ALPHA-converted numbers (LIFNR, EBELN, BELNR) are stored zero-padded (``0000100000``): filter
  literals must be padded the same way; templates show them without zeros (`alpha` filter).
* Empty CHAR fields are ``""``, not null.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

_DATE = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{1,4}))?\)/$")
_TIME = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d+))?S)?$")
_EPOCH = datetime(1970, 1, 1)


def parse_date(value: str) -> tuple[datetime, int | None]:
    """``/Date(ms)/`` -> (naive datetime the milliseconds name, offset minutes or None)."""
    m = _DATE.match(value.strip())
    if not m:
        raise ValueError(f"not an OData v2 date: {value[:40]!r}")
    naive = _EPOCH + timedelta(milliseconds=int(m.group(1)))
    if m.group(2) is None:
        return naive, None
    minutes = int(m.group(3))
    return naive, -minutes if m.group(2) == "-" else minutes


def parse_time(value: str) -> time:
    """``PT13H45M00S`` (Edm.Time) -> time of day."""
    m = _TIME.match(value.strip())
    if not m or value.strip() == "PT":
        raise ValueError(f"not an OData v2 time: {value[:40]!r}")
    hours, minutes, seconds = (int(g) if g else 0 for g in m.groups()[:3])
    micro = int((m.group(4) or "0")[:6].ljust(6, "0"))
    if hours > 23 or minutes > 59 or seconds > 59:
        if (hours, minutes, seconds) == (24, 0, 0):
            return time(23, 59, 59, 999999)
        raise ValueError(f"time of day out of range: {value[:40]!r}")
    return time(hours, minutes, seconds, micro)


def wall_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """SAP wall time in `zone` -> aware UTC. An hour that DST skips is read after the jump; an
    hour it repeats as its first pass (SAP itself cannot tell them apart either)."""
    local = datetime.combine(day, at).replace(tzinfo=zone, fold=0)
    back = local.astimezone(UTC).astimezone(zone)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):  # nonexistent: move past the gap
        local = local + (back.utcoffset() or timedelta()) - (local.utcoffset() or timedelta())
    return local.astimezone(UTC)


def instant(value: str, zone: ZoneInfo) -> datetime:
    """An Edm.DateTime/DateTimeOffset value as aware UTC (wall time in `zone` without offset)."""
    naive, offset = parse_date(value)
    if offset is not None:
        return naive.replace(tzinfo=UTC)
    return wall_to_utc(naive.date(), naive.time(), zone)


def changed_at(day_value: Any, time_value: Any, zone: ZoneInfo) -> datetime | None:
    """A DATS + TIMS pair (either as served) as aware UTC; None when the date is empty."""
    if day_value in (None, "", "00000000"):
        return None
    if isinstance(day_value, datetime):
        day, at = day_value.date(), day_value.time()
    elif isinstance(day_value, date):
        day, at = day_value, time()
    else:
        naive, offset = parse_date(str(day_value))
        if offset is not None and time_value in (None, ""):
            return naive.replace(tzinfo=UTC)
        day, at = naive.date(), naive.time()
    if time_value not in (None, ""):
        at = time_value if isinstance(time_value, time) else parse_time(str(time_value))
    return wall_to_utc(day, at, zone)


def alpha_pad(value: str, width: int) -> str:
    """ALPHA conversion (input): digits only are right-aligned with zeros; other text stays."""
    text = value.strip()
    return text.zfill(width) if text.isdigit() and len(text) <= width else text


def alpha_strip(value: Any) -> str:
    """ALPHA conversion (output): ``0000100000`` -> ``100000``; text and None unchanged."""
    if value is None:
        return ""
    text = str(value).strip()
    return (text.lstrip("0") or "0") if text.isdigit() else text


def quote(value: str) -> str:
    """An Edm.String literal: single quotes, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def datetime_literal(value: datetime) -> str:
    """``datetime'2024-03-05T00:00:00'``: the wall time, no zone (Gateway's DATS filter form)."""
    return "datetime'" + value.replace(tzinfo=None, microsecond=0).isoformat() + "'"


def time_literal(value: time) -> str:
    return f"time'PT{value.hour:02d}H{value.minute:02d}M{value.second:02d}S'"


def convert(value: Any, edm: str | None, zone: ZoneInfo, *, date_only: bool = False) -> Any:
    """A served value as Python: Decimal for Edm.Decimal, int for Edm.Int64, aware datetime for
    Edm.DateTime (a `date` for `sap:display-format="Date"` fields), time for Edm.Time. Values
    of other types, nulls and empty strings are returned as served."""
    if value is None or value == "" or edm is None:
        return value
    try:
        if edm in ("Edm.Decimal", "Edm.Double", "Edm.Single") and isinstance(value, str | int | float):
            return Decimal(str(value))
        if edm == "Edm.Int64" and isinstance(value, str):
            return int(value)
        if edm in ("Edm.DateTime", "Edm.DateTimeOffset") and isinstance(value, str):
            naive, offset = parse_date(value)
            if date_only:
                return naive.date()
            return naive.replace(tzinfo=UTC) if offset is not None else wall_to_utc(naive.date(), naive.time(), zone)
        if edm == "Edm.Time" and isinstance(value, str):
            return parse_time(value)
    except (ValueError, InvalidOperation) as exc:
        raise ValueError(f"{edm} value {str(value)[:40]!r}: {exc}") from None
    return value


def row_values(row: Mapping[str, Any], types: Mapping[str, tuple[str, bool]], zone: ZoneInfo) -> dict[str, Any]:
    """A JSON row's fields converted by their $metadata types; `__metadata` and deferred
    navigation links (``{"__deferred": ...}``) dropped."""
    data: dict[str, Any] = {}
    for name, value in row.items():
        if name == "__metadata" or (isinstance(value, dict) and "__deferred" in value):
            continue
        edm, date_only = types.get(name, (None, False))
        data[name] = convert(value, edm, zone, date_only=date_only)
    return data
