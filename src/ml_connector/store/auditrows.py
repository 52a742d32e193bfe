"""Audit rows and small helpers every store module shares."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from ml_connector.store.bulk import Bulk
from ml_connector.store.scrub import mask_numbers
from ml_connector.store.tables import audit

CHUNK = 500
_FREE_TEXT = frozenset({"reason", "message"})  # audit detail keys that may quote a phone number


#: Built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def json_text(detail: Mapping[str, Any]) -> str:
    return _ENCODER.encode(detail)


def audit_row(
    at: datetime, kind: str, *, nid: int | None, flow: str | None, status: str | None, **detail: Any
) -> dict[str, Any]:
    clean = {k: mask_numbers(v) if k in _FREE_TEXT else v for k, v in detail.items()}
    return {"at": at, "notification_id": nid, "flow": flow, "kind": kind, "status": status,
            "detail_json": json_text(clean)}


#: Audit rows as bulk writes take them (store.bulk): `audit_tuple` of each `audit_row`.
AUDIT = Bulk(audit, ("at", "notification_id", "flow", "kind", "status", "detail_json"))


def audit_tuple(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (row["at"], row["notification_id"], row["flow"], row["kind"], row["status"], row["detail_json"])


def chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
