"""Whether a notification may go out now, or waits for the recipient's business hours. Pure.

The zone is the recipient's: the record field the flow names (an EBS location's zone, a
PeopleSoft employee's TIMEZONE), else the flow's own zone. A field that holds no IANA zone name
falls back to the flow's zone, and the reason says so (a typo in the ERP must not mean a text at
3 in the morning, nor a notification that never goes out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ml_connector.core.flowspec import BusinessHoursSpec
from ml_connector.core.models import Status


@dataclass(frozen=True)
class Hold:
    until: datetime
    reason: str


def recipient_zone(spec: BusinessHoursSpec, data: Mapping[str, Any], default: str) -> tuple[ZoneInfo, str | None]:
    """The zone to judge in, and a note when the record's own zone could not be used."""
    if spec.timezone_field:
        value = data.get(spec.timezone_field)
        name = str(value).strip() if value is not None else ""
        if name:
            try:
                return ZoneInfo(name), None
            except (ZoneInfoNotFoundError, ValueError):
                return ZoneInfo(default), f"{spec.timezone_field} {name!r} is not a time zone; used {default}"
        return ZoneInfo(default), f"no {spec.timezone_field} on the record; used {default}"
    return ZoneInfo(default), None


def hold(spec: BusinessHoursSpec | None, *, critical: bool, data: Mapping[str, Any], default_zone: str,
         now: datetime) -> Hold | None:
    """None: send now. Else until when the notification waits, and why (shown in its journey)."""
    if spec is None or critical:
        return None
    zone, note = recipient_zone(spec, data, default_zone)
    opens = spec.hours().next_open(now, zone)
    if opens is None:
        raise ValueError("business_hours: no window has a day")  # the config validator refuses this first
    if opens <= now:
        return None
    local = opens.astimezone(zone)
    reason = f"quiet hours: held until {local:%Y-%m-%d %H:%M} {local.tzname()} ({zone.key})"
    return Hold(opens, f"{reason}; {note}" if note else reason)


def initial_state(*, usable: bool, failure: str | None, held: Hold | None,
                  now: datetime) -> tuple[Status, str | None, datetime]:
    """A new notification's status, reason and first due time: failed without a usable phone,
    deferred in quiet hours, else pending now."""
    if not usable:
        return Status.FAILED, failure, now
    if held is not None:
        return Status.DEFERRED, held.reason, held.until
    return Status.PENDING, failure, now
