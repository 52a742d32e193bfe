"""Twilio's voice webhooks: call status callbacks and the acknowledgement digit.

    POST <public>/twilio/voice/status   CallSid, CallStatus (initiated ringing in-progress
                                        completed busy no-answer failed canceled) -> the store
    POST <public>/twilio/voice/ack?n=<notification id>&d=<digit>
                                        the <Gather> action: Digits pressed -> "acknowledged"
                                        when they equal d, else kept in the audit only; answers
                                        TwiML that thanks the person

Both are signed by Twilio (X-Twilio-Signature over the public URL, query included, and the
sorted form fields, with the Auth Token of the callback's AccountSid) and checked before
anything is read or stored; unsigned or forged -> 403, nothing stored. The signature covers the
query, so the notification id and the expected digit cannot be forged either. Everything
else (ordering, repeats) is the store's business, as for message callbacks.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ml_connector.channels.signature import SIGNATURE_HEADER, compute_signature, url_port_variants
from ml_connector.core.models import StatusEvent
from ml_connector.errors import StoreUnavailable
from ml_connector.store.port import Store

__all__ = ["ACK_PATH", "ACKNOWLEDGED", "STATUS_PATH", "voice_routes"]

log = logging.getLogger(__name__)

STATUS_PATH = "/twilio/voice/status"
ACK_PATH = "/twilio/voice/ack"
#: The provider status an acknowledgement is stored as (core.lifecycle.CALL_STATUS).
ACKNOWLEDGED = "acknowledged"
MAX_BODY = 65536
_KEPT = ("CallStatus", "CallDuration", "AnsweredBy", "SequenceNumber", "Timestamp", "CallbackSource", "Digits",
         "ErrorCode", "ErrorMessage")
_THANKS = ('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Thank you. Your confirmation was recorded.'
           "</Say></Response>")
_NOT_CONFIRMED = ('<?xml version="1.0" encoding="UTF-8"?><Response><Say>Not confirmed. Goodbye.</Say></Response>')


def _twiml(text: str) -> Response:
    return Response(text, media_type="text/xml")


def _authentic(pairs: Sequence[tuple[str, str]], signature: str | None, tokens: Mapping[str, str],
               urls: Sequence[str]) -> bool:
    if not signature:
        return False
    accounts = {value for name, value in pairs if name == "AccountSid"}
    token = tokens.get(next(iter(accounts))) if len(accounts) == 1 else None
    if token is None:
        return False
    given = signature.encode("utf-8")
    return any(hmac.compare_digest(compute_signature(token, url, pairs).encode("ascii"), given) for url in urls)


async def _form(request: Request) -> list[tuple[str, str]] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        return None


def voice_routes(*, store: Store, auth_tokens: Mapping[str, str], public_url: str,
                 clock: Callable[[], datetime]) -> list[Route]:
    """The two routes; `public_url` is webhooks.public_url (what Twilio is given and signs)."""
    base = public_url.rstrip("/")
    tokens = dict(auth_tokens)

    async def verified(request: Request, path: str) -> list[tuple[str, str]] | Response:
        pairs = await _form(request)
        if pairs is None:
            return PlainTextResponse("malformed or too large form body\n", status_code=400)
        query = request.url.query
        urls = url_port_variants(f"{base}{path}" + (f"?{query}" if query else ""))
        if not _authentic(pairs, request.headers.get(SIGNATURE_HEADER), tokens, urls):
            log.warning("voice webhook %s rejected: unsigned, unknown account or bad signature", path)
            return PlainTextResponse("forbidden\n", status_code=403)
        return pairs

    async def store_event(event: StatusEvent) -> Response | None:
        try:
            await asyncio.to_thread(store.apply_status, event)
        except StoreUnavailable:
            return PlainTextResponse("store unavailable; retry later\n", status_code=503)
        return None

    async def status(request: Request) -> Response:
        pairs = await verified(request, STATUS_PATH)
        if isinstance(pairs, Response):
            return pairs
        fields = dict(pairs)
        sid, call_status = fields.get("CallSid"), fields.get("CallStatus")
        if not sid or not call_status or len(sid) > 64 or len(call_status) > 32:
            return PlainTextResponse("CallSid and CallStatus required\n", status_code=400)
        code = fields.get("ErrorCode", "")
        event = StatusEvent(provider_id=sid, provider_status=call_status,
                            error_code=int(code) if code.isdigit() and len(code) <= 9 else None,
                            received_at=clock(), raw={k: fields[k] for k in _KEPT if k in fields})
        return await store_event(event) or PlainTextResponse("")

    async def ack(request: Request) -> Response:
        pairs = await verified(request, ACK_PATH)
        if isinstance(pairs, Response):
            return pairs
        fields = dict(pairs)
        query = dict(parse_qsl(urlsplit(str(request.url)).query))
        sid, digits, expected = fields.get("CallSid"), fields.get("Digits", ""), query.get("d")
        if not sid or len(sid) > 64 or not expected:
            return PlainTextResponse("CallSid and the expected digit required\n", status_code=400)
        confirmed = digits == expected
        raw = {"Digits": digits[:16], "notification": query.get("n", "")[:20]}
        event = StatusEvent(provider_id=sid, provider_status=ACKNOWLEDGED if confirmed else "not-acknowledged",
                            error_code=None, received_at=clock(), raw=raw)
        return await store_event(event) or _twiml(_THANKS if confirmed else _NOT_CONFIRMED)

    return [Route(STATUS_PATH, status, methods=["POST"]), Route(ACK_PATH, ack, methods=["POST"])]
