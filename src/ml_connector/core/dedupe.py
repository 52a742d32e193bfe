"""Business de-duplication: the idempotency key of a flow with `dedupe_on` fields. Pure.

Normally a notification's key names the record (its key) and the record's version (change time
and watched values), so each new version of each record may notify. Some documents are entered
twice as two records: an SAP supplier invoice keyed in twice, or reversed and re-entered, is a
new RBKP document (new BELNR) with the same supplier, reference (XBLNR, the supplier's own
invoice number) and company code. With ``dedupe_on: [Lifnr, Xblnr, Bukrs]`` the key names those
values instead of the record, and the version is the trigger's watched values without the
change time: the same event of the same business document notifies once, whichever record
carries it. Two suppliers using the same reference differ in the supplier, so both notify.

A record with any `dedupe_on` field empty (no reference given) has no business identity: it is
keyed by its record key and version as usual, so it is never merged with an unrelated record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

PREFIX = "dedupe:"


def _text(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value).strip()


def identity(fields: Sequence[str], data: Mapping[str, Any]) -> str | None:
    """The business identity of a record (`dedupe:` + the fields' values), or None when one is empty."""
    values = []
    for name in fields:
        value = data.get(name)
        text = "" if value is None else _text(value)
        if not text:
            return None
        values.append([name, text])
    return PREFIX + json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def version(snapshot: Mapping[str, Any]) -> str:
    """The event's version under de-duplication: the watched values only, never the change time."""
    canonical = json.dumps({str(k): _text(v) if v is not None else None for k, v in sorted(snapshot.items())},
                           ensure_ascii=False, separators=(",", ":"))
    return "dedupe#" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def key_parts(fields: Sequence[str], record_key: str, event_version: str, data: Mapping[str, Any],
              snapshot: Mapping[str, Any]) -> tuple[str, str]:
    """(record part, version part) of the idempotency key: the business identity and its version
    when `fields` are configured and all present, else the record's own key and version."""
    if not fields:
        return record_key, event_version
    found = identity(fields, data)
    if found is None:
        return record_key, event_version
    return found, version(snapshot)
