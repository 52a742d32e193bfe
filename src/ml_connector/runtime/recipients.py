"""Turn a flow's recipient specs into phone numbers for one record.

Static numbers, a field of the record, or a lookup through the source (buyer id -> person ->
phones), each with candidate fields in order of preference. A spec that yields no usable number
becomes one failed recipient with the reason, so that one notification fails, not the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ml_connector.compliance.phones import normalise
from ml_connector.core.flowspec import FieldRecipient, LookupRecipient, RecipientSpec, StaticRecipients
from ml_connector.core.members import MembersRecipient
from ml_connector.core.models import Record
from ml_connector.errors import RecipientError
from ml_connector.sources.base import Source


@dataclass(frozen=True, slots=True)
class Recipient:
    """A resolved recipient: `phone` is E.164, or None with `reason` when unusable."""

    field: str
    phone: str | None
    raw: str
    reason: str | None = None


#: raw text -> its E.164 form, or the RecipientError saying why not (one poll's worth).
Normalised = dict[str, str | RecipientError]
#: raw text, default region, field label -> the usable address, or RecipientError. None means
#: phones (compliance.phones.normalise); email flows use compliance.emails.normalise_email.
Normalise = Callable[[str, str, str], str]


def _normalised(raw: str, region: str, label: str, seen: Normalised, address: Normalise | None = None) -> str:
    """`normalise`, once per distinct text within a poll: static recipients and the approvers
    most records share would otherwise be parsed again for every record."""
    found = seen.get(raw)
    if found is None:
        try:
            found = (address or normalise)(raw, region, label)
        except RecipientError as exc:
            found = exc
        seen[raw] = found
    if isinstance(found, RecipientError):
        raise RecipientError(label, found.reason)
    return found


def _first_usable(
    data: Mapping[str, Any], fields: Sequence[str], prefix: str, region: str, seen: Normalised,
    address: Normalise | None = None,
) -> Recipient:
    """The first candidate field holding a valid number; otherwise every field's reason."""
    reasons: list[str] = []
    raw_first = ""
    for name in fields:
        raw = data.get(name)
        label = f"{prefix}{name}"
        if raw is None or not str(raw).strip():
            reasons.append(f"{label}: empty")
            continue
        raw_first = raw_first or str(raw)
        try:
            return Recipient(field=label, phone=_normalised(str(raw), region, label, seen, address),
                             raw=str(raw))
        except RecipientError as exc:
            reasons.append(f"{label}: {exc.reason}")
    label = prefix + "|".join(fields)
    what = "phone number" if address is None else "email address"
    reason = f"no usable {what} (" + "; ".join(reasons) + ")"
    return Recipient(field=label, phone=None, raw=raw_first, reason=reason)


#: For fan-out (runtime.fanout): the same choice among a member's phone fields.
first_usable = _first_usable


class RecipientResolver:
    """Resolves recipients for the records of one poll; caches look-ups and parsed numbers within
    that poll (and no longer: nothing personal outlives it)."""

    def __init__(self, source: Source, default_region: str, address: Normalise | None = None) -> None:
        self._source = source
        self._region = default_region
        self._address = address
        self._cache: dict[tuple[str, str], Record | None] = {}
        self._numbers: Normalised = {}

    @property
    def numbers(self) -> Normalised:
        """Numbers parsed during this poll (shared with fan-out)."""
        return self._numbers

    async def _lookup(self, entity: str, key: str) -> Record | None:
        if (entity, key) not in self._cache:
            self._cache[(entity, key)] = await self._source.lookup(entity, key)
        return self._cache[(entity, key)]

    async def resolve(self, specs: Sequence[RecipientSpec], record: Record) -> list[Recipient]:
        found: list[Recipient] = []
        for spec in specs:
            if isinstance(spec, StaticRecipients):
                for raw in spec.static:
                    found.append(_first_usable({"static": raw}, ["static"], "", self._region, self._numbers,
                                              self._address))
            elif isinstance(spec, FieldRecipient):
                fields = [spec.field] if isinstance(spec.field, str) else list(spec.field)
                found.append(_first_usable(record.data, fields, "", self._region, self._numbers, self._address))
            elif isinstance(spec, LookupRecipient):
                found.append(await self._via_lookup(spec, record))
            elif isinstance(spec, MembersRecipient):
                continue  # fanned out page by page by the poller (runtime.fanout)
        return _dedupe(found)

    async def _via_lookup(self, spec: LookupRecipient, record: Record) -> Recipient:
        look = spec.lookup
        prefix = f"{look.entity}."
        key = record.data.get(look.key_field)
        if key is None or not str(key).strip():
            return Recipient(field=look.key_field, phone=None, raw="", reason=f"{look.key_field} is empty")
        target = await self._lookup(look.entity, str(key).strip())
        if target is None:
            return Recipient(
                field=f"{prefix}{look.key_field}", phone=None, raw="",
                reason=f"{look.entity} {str(key).strip()!r} not found",
            )
        return _first_usable(target.data, look.fields, prefix, self._region, self._numbers, self._address)


def _dedupe(recipients: list[Recipient]) -> list[Recipient]:
    """One notification per phone number even if two specs point at the same person."""
    seen: set[str] = set()
    unique: list[Recipient] = []
    for r in recipients:
        ident = r.phone or f"{r.field}:{r.reason}"
        if ident not in seen:
            seen.add(ident)
            unique.append(r)
    return unique
