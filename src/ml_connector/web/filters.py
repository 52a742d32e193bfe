"""Reading the notification filter from a query string or form, the same way for pages and API.

Each bad parameter is reported by name (a page shows the list, the API answers 422 with one
entry per field). A phone number typed by an operator is turned into its keyed hash here, so
only the hash ever reaches a URL, a log line or the database query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ml_connector.compliance.phones import normalise
from ml_connector.core.models import Status
from ml_connector.errors import MlcError
from ml_connector.store.insights import PageQuery

__all__ = ["Filters", "parse_filters", "parse_when"]

_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_HASH_CHARS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Filters:
    query: PageQuery
    errors: list[tuple[str, str]] = field(default_factory=list)  # (parameter, what is wrong)
    shown: dict[str, str] = field(default_factory=dict)  # the filter as the page shows it back


def parse_when(value: str, now: datetime) -> datetime:
    """ISO 8601 (UTC unless it says) or '30m' / '24h' / '7d' ago."""
    text = value.strip()
    if 2 <= len(text) <= 5 and text[:-1].isdigit() and text[-1] in _UNITS:
        return now - timedelta(**{_UNITS[text[-1]]: int(text[:-1])})
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_filters(params: Mapping[str, str], statuses: Sequence[str], now: datetime, *,
                  hash_phone: Callable[[str], str], region: str, default_limit: int = 50,
                  max_limit: int = 500) -> Filters:
    """The filter in `params` (flow, status (repeated), channel, since, until, recipient or
    recipient_hash, cursor, limit)."""
    errors: list[tuple[str, str]] = []
    shown: dict[str, str] = {}
    chosen: list[Status] = []
    for raw in statuses:
        if not raw:
            continue
        try:
            chosen.append(Status(raw.strip().lower()))
        except ValueError:
            errors.append(("status", f"unknown status {raw!r}; one of {', '.join(s.value for s in Status)}"))
    times: dict[str, datetime | None] = {"since": None, "until": None}
    for name in times:
        raw = params.get(name, "").strip()
        if raw:
            shown[name] = raw
            try:
                times[name] = parse_when(raw, now)
            except (ValueError, OverflowError):
                errors.append((name, "expected an ISO 8601 date/time, or 30m, 24h, 7d (at most 4 digits)"))
    recipient_hash = params.get("recipient_hash", "").strip().lower() or None
    if recipient_hash is not None and (len(recipient_hash) != 64 or not set(recipient_hash) <= _HASH_CHARS):
        errors.append(("recipient_hash", "expected 64 hexadecimal characters"))
        recipient_hash = None
    phone = params.get("recipient", "").strip()
    if phone:
        try:
            recipient_hash = hash_phone(normalise(phone, region, "recipient"))
        except MlcError as exc:
            errors.append(("recipient", str(exc)))
    if recipient_hash:
        shown["recipient_hash"] = recipient_hash
    ints: dict[str, int | None] = {"cursor": None, "limit": default_limit}
    for name, low, high in (("cursor", 1, 2**63 - 1), ("limit", 1, max_limit)):
        raw = params.get(name, "").strip()
        if not raw:
            continue
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            errors.append((name, f"expected a whole number from {low} to {high}"))
        else:
            ints[name] = int(raw)
    for name in ("flow", "channel"):
        if params.get(name, "").strip():
            shown[name] = params[name].strip()
    query = PageQuery(
        flow=shown.get("flow"), statuses=tuple(chosen), channel=shown.get("channel"), since=times["since"],
        until=times["until"], recipient_hash=recipient_hash, before=ints["cursor"],
        limit=ints["limit"] or default_limit,
    )
    return Filters(query=query, errors=errors, shown=shown)
