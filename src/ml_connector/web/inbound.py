"""The inbound-message webhook: texts people send to our numbers (SMS and WhatsApp).

Checked like status callbacks (web.webhooks: sizes, media type, field count, form decoding, then
the signature over the configured public URL; forged or unsigned -> 403, nothing stored), then
stored with what it asked for (opt-out, opt-in, help, or a reply threaded to the notification it
answers; store.inbound). Twilio wants TwiML back: an empty `<Response/>`, or the configured help
text for HELP. When a Messaging Service's Advanced Opt-Out matched the keyword (the request
carries `OptOutType`), Twilio has already answered it, so we record it and answer nothing.
Twilio's default opt-out handling answers STOP and START on long codes itself, so our own
confirmation for those is off unless configured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ml_connector.core.keywords import DEFAULT_KEYWORDS, Intent, Keywords, classify, from_twilio_opt_out_type
from ml_connector.core.redact import mask_phone
from ml_connector.errors import StoreUnavailable
from ml_connector.store.inbound import InboundMessage
from ml_connector.store.sql import SqlStore
from ml_connector.web.webhooks import (
    CallbackResult,
    _authenticate,
    _check_declared_length,
    _check_field_count,
    _check_media_type,
    _decode_form,
    _PublicUrl,
    _Rejected,
    _single,
)

log = logging.getLogger(__name__)

TWIML = "application/xml"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
DEFAULT_MAX_FIELDS = 200


@dataclass(frozen=True)
class InboundSettings:
    help_text: str | None = None
    opt_out_reply: str | None = None  # off: Twilio's default handling answers STOP itself
    opt_in_reply: str | None = None
    opt_out_everywhere: bool = False
    keywords: Keywords = DEFAULT_KEYWORDS


def twiml(message: str | None) -> str:
    if not message:
        return EMPTY_TWIML
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(message)}</Message></Response>'


def answer(intent: Intent, settings: InboundSettings, *, twilio_answered: bool) -> str:
    """The TwiML for a stored inbound text."""
    if twilio_answered:
        return EMPTY_TWIML
    return twiml({Intent.HELP: settings.help_text, Intent.OPT_OUT: settings.opt_out_reply,
                  Intent.OPT_IN: settings.opt_in_reply}.get(intent))


class InboundEndpoint:
    """POST /twilio/inbound (configurable): one Starlette endpoint; inbound texts are few."""

    def __init__(self, *, store: SqlStore, tokens: Mapping[str, str], public_url: str,
                 reply_windows: Mapping[str, timedelta], settings: InboundSettings,
                 clock: Callable[[], datetime], max_body_bytes: int = 65536) -> None:
        self._store = store
        self._tokens = dict(tokens)
        self._public = _PublicUrl.parse(public_url)
        self._windows = dict(reply_windows)
        self._settings = settings
        self._clock = clock
        self._max_body_bytes = max_body_bytes

    @property
    def paths(self) -> tuple[str, ...]:
        return self._public.route_paths

    async def handle(self, request: Request) -> Response:
        try:
            message, twilio_answered = await self._read(request)
        except _Rejected as rejected:
            status = 403 if rejected.result in (CallbackResult.UNSIGNED, CallbackResult.UNKNOWN_ACCOUNT,
                                                CallbackResult.BAD_SIGNATURE) else 400
            log.warning("inbound message rejected (%s: %s)", rejected.result.value, rejected.why)
            return PlainTextResponse("forbidden\n" if status == 403 else f"{rejected.why}\n", status)
        try:
            outcome = await asyncio.to_thread(self._store.record_inbound, message, reply_windows=self._windows,
                                              opt_out_everywhere=self._settings.opt_out_everywhere)
        except StoreUnavailable:
            return PlainTextResponse("store unavailable; retry later\n", 503)
        log.info("inbound %s from %s: %s (%s)", message.provider_id, mask_phone(message.sender),
                 outcome.intent.value, outcome.match_reason)
        return Response(answer(outcome.intent, self._settings, twilio_answered=twilio_answered), 200,
                        media_type=TWIML)

    async def _read(self, request: Request) -> tuple[InboundMessage, bool]:
        _check_declared_length(request.headers.get("content-length"), self._max_body_bytes)
        _check_media_type(request.headers.get("content-type"))
        body = await request.body()
        if len(body) > self._max_body_bytes:
            raise _Rejected(CallbackResult.TOO_LARGE, f"body exceeds {self._max_body_bytes} bytes")
        _check_field_count(body, DEFAULT_MAX_FIELDS)
        pairs = _decode_form(body)
        query = request.url.query
        _authenticate(pairs, request.headers.get("x-twilio-signature"), self._tokens,
                      self._public.signed_urls(query))
        sid = _single(pairs, "MessageSid") or _single(pairs, "SmsMessageSid")
        sender, to = _single(pairs, "From"), _single(pairs, "To")
        if not sid or not sender or not to:
            raise _Rejected(CallbackResult.INVALID_FIELDS, "MessageSid, From and To are required once")
        text = _single(pairs, "Body") or ""
        opt_out_type = from_twilio_opt_out_type(_single(pairs, "OptOutType"))
        intent = opt_out_type or classify(text, self._settings.keywords)
        return InboundMessage(
            provider_id=sid, account_sid=_single(pairs, "AccountSid") or "", sender=sender, to=to,
            messaging_service_sid=_single(pairs, "MessagingServiceSid") or None, body=text, intent=intent,
            received_at=self._clock(),
        ), opt_out_type is not None
