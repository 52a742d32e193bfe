"""SendGrid's signed Event Webhook: email statuses into the same store as Twilio callbacks.

Checked in order, nothing stored unless authentic: declared and real body size, signature
(ECDSA over timestamp + the raw body, channels.sendgrid_signature) -> 403 when missing or
forged, then JSON shape. Each event becomes a StatusEvent keyed by SendGrid's message id (the
part of `sg_message_id` before the first dot, which is the X-Message-Id the send returned) and
goes through `Store.apply_statuses` like any provider report: `processed delivered deferred
bounce dropped` move the notification (core.lifecycle.SENDGRID_EVENTS); `open`, `click` and the
other engagement events are kept in the audit only. The raw event kept (encrypted) holds no
email address; bounce and drop reasons have addresses masked before they are shown.

SendGrid retries a POST that did not get a 2xx, so a store outage answers 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ml_connector.channels.sendgrid_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_event_signature
from ml_connector.core.models import StatusEvent
from ml_connector.errors import StoreUnavailable
from ml_connector.store.port import Store

__all__ = ["DEFAULT_PATH", "email_event_route", "events_from"]

log = logging.getLogger(__name__)

DEFAULT_PATH = "/sendgrid/events"
#: SendGrid batches events; a POST of a few thousand is a few MB at most.
DEFAULT_MAX_BODY = 4 * 1024 * 1024
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+")
#: Event fields kept (encrypted) with the report; never `email` nor custom text.
_KEPT = ("event", "sg_event_id", "sg_message_id", "timestamp", "type", "status", "attempt",
         "bounce_classification", "mlc_notification_id", "category")


def _mask_addresses(text: str) -> str:
    return _ADDRESS.sub("•••@•••", text)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def events_from(payload: Any, received_at: datetime) -> list[StatusEvent]:
    """The reports in a verified Event Webhook body; ValueError when it is not a list of events.
    Events without `event` or `sg_message_id` are skipped (SendGrid sends none such for mail)."""
    if not isinstance(payload, list):
        raise ValueError("expected a JSON array of events")
    found: list[StatusEvent] = []
    for item in payload:
        if not isinstance(item, dict):
            raise ValueError("expected a JSON array of objects")
        kind, message_id = item.get("event"), item.get("sg_message_id")
        if not isinstance(kind, str) or not kind or not isinstance(message_id, str) or not message_id:
            continue
        raw = {key: _text(item[key]) for key in _KEPT if key in item and item[key] is not None}
        reason = item.get("reason") or item.get("response")
        if isinstance(reason, str) and reason:
            raw["ErrorMessage"] = _mask_addresses(reason)[:500]
        found.append(StatusEvent(provider_id=message_id.split(".", 1)[0][:64], provider_status=kind[:32],
                                 error_code=None, received_at=received_at, raw=raw))
    return found


async def _read_capped(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def email_event_route(
    *,
    store: Store,
    public_keys: Sequence[ec.EllipticCurvePublicKey],
    clock: Callable[[], datetime],
    path: str = DEFAULT_PATH,
    max_body_bytes: int = DEFAULT_MAX_BODY,
) -> Route:
    """The POST route SendGrid's Event Webhook is pointed at (`<public base>/sendgrid/events`)."""
    keys = tuple(public_keys)

    async def endpoint(request: Request) -> Response:
        body = await _read_capped(request, max_body_bytes)
        if body is None:
            return PlainTextResponse("request body too large\n", status_code=413)
        headers: Mapping[str, str] = request.headers
        if not verify_event_signature(keys, headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER), body):
            log.warning("SendGrid event webhook rejected: %s signature",
                        "missing" if SIGNATURE_HEADER.lower() not in headers else "bad")
            return PlainTextResponse("forbidden\n", status_code=403)
        try:
            events = events_from(json.loads(body), clock())
        except ValueError as exc:
            return PlainTextResponse(f"malformed events: {exc}\n", status_code=400)
        if not events:
            return PlainTextResponse("")
        try:
            results = await asyncio.to_thread(store.apply_statuses, events)
        except StoreUnavailable:
            return PlainTextResponse("store unavailable; retry later\n", status_code=503)
        log.debug("SendGrid events: %s", ", ".join(f"{e.provider_status}={r}" for e, r in zip(events, results,
                                                                                                  strict=True)))
        return PlainTextResponse("")

    return Route(path, endpoint, methods=["POST"])
