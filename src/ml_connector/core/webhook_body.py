"""The payload of an outbound webhook, versioned and documented here. Pure.

Every event a webhook flow sends is one JSON document (`PAYLOAD_VERSION` "1"):

    {
      "type": "ml-connector.notification",   # always
      "version": "1",                        # bumped on any incompatible change
      "timestamp": "2026-12-07T23:01:02Z",    # when this delivery was signed (UTC)
      "data": {
        "notification_id": 42,                # ours; also in the webhook-id header as "mlc_42"
        "flow": "po_approved_hook",
        "entity": "purchase_order",
        "record_key": "1002",
        "changed_at": "2026-12-07T17:00:58-06:00",  # the record's change time, ISO 8601
        "message": "PO 10002 for Acme approved"     # the flow's template, rendered
      }
    }

Fields may be added within a version; none is removed or changes meaning without a new version.
The stored body is `data` without `notification_id` (rendered when the event is found); the
channel completes and signs the envelope at send time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ml_connector.core.templates import CompiledTemplate

__all__ = ["EVENT_TYPE", "PAYLOAD_VERSION", "WebhookTemplate", "envelope"]

EVENT_TYPE = "ml-connector.notification"
PAYLOAD_VERSION = "1"


@dataclass(frozen=True, slots=True)
class WebhookTemplate:
    name: str
    text: CompiledTemplate

    @property
    def variables(self) -> frozenset[str]:
        return self.text.variables

    def render(self, context: Mapping[str, Any]) -> str:
        record = context.get("record")
        record = record if isinstance(record, Mapping) else {}
        changed = record.get("changed_at")
        data = {
            "flow": context.get("flow"),
            "entity": record.get("entity"),
            "record_key": record.get("key"),
            "changed_at": changed.isoformat() if isinstance(changed, datetime) else None,
            "message": self.text.render(context),
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def envelope(stored: str, notification_id: int, at: datetime) -> bytes:
    """The signed payload: the stored data with our id, in the versioned envelope."""
    try:
        data = json.loads(stored)
    except ValueError:
        raise ValueError("the stored body is not a webhook payload") from None
    if not isinstance(data, dict):
        raise ValueError("the stored body is not a webhook payload")
    document = {"type": EVENT_TYPE, "version": PAYLOAD_VERSION,
                "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "data": {"notification_id": notification_id, **data}}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
