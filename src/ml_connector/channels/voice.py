"""The voice channel: OutboundMessage -> Twilio Calls with inline TwiML, errors -> the delivery tree.

The call says the stored message (core.voice_body) twice with a pause and, when the flow asks
for an acknowledgement, gathers one digit; the Gather's action URL is our own webhook
(web.voice_webhooks), which Twilio signs like any callback and which carries the notification
id and the expected digit in its query (signed too, so neither can be forged). Call progress
comes back on the status callback (initiated ringing answered completed, or busy no-answer
failed canceled: core.lifecycle.CALL_STATUS).

Twilio's Calls create has no idempotency key either, so after a lost response `find_sent`
lists the account's calls to the same number from the same number started since the send
(StartTime>= the day before, then the newest created after the cutoff). A call does not carry
its TwiML back, so two calls to one person from one number within the window cannot be told
apart: the newest is adopted, which never calls twice.

Errors are the Twilio REST ones (channels.sms translates them); calls are paced per account
(core.channel_kinds: calls per second, default 1), not per sender.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from ml_connector.channels.sms import TWILIO_ERRORS, twilio_delivery_error
from ml_connector.channels.twilio_api import TwilioClient, TwilioProtocolError
from ml_connector.channels.twilio_calls import create_call_request, fetch_call_request, list_calls_request
from ml_connector.core.models import OutboundMessage, SendResult, StatusEvent, require_aware
from ml_connector.core.voice_body import VoiceContent, twiml_for
from ml_connector.errors import PermanentError, TransientError

__all__ = ["VoiceChannel"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _created(resource: Mapping[str, Any]) -> datetime | None:
    from email.utils import parsedate_to_datetime

    value = resource.get("date_created")
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _result(resource: Mapping[str, Any]) -> SendResult:
    sid, status = resource.get("sid"), resource.get("status")
    if not isinstance(sid, str) or not isinstance(status, str):
        raise TwilioProtocolError("Call resource without 'sid' and 'status'")
    return SendResult(provider_id=sid, provider_status=status)


class VoiceChannel:
    """channels.base.Channel over Twilio Calls for one account.

    `status_callback` is the public URL of the call status webhook, `ack_url` that of the
    acknowledgement webhook (both served by web.voice_webhooks).
    """

    def __init__(
        self,
        client: TwilioClient,
        *,
        status_callback: str | None,
        ack_url: str | None,
        clock: Callable[[], datetime] = _utcnow,
        clock_margin: timedelta = timedelta(minutes=5),
        max_scan: int = 2000,
    ) -> None:
        self._client = client
        self._status_callback = status_callback
        self._ack_url = ack_url
        self._clock = clock
        self._margin = clock_margin
        self._max_scan = max_scan

    def ack_url_for(self, notification_id: int, digit: str) -> str | None:
        if self._ack_url is None:
            return None
        return f"{self._ack_url}?{urlencode({'n': str(notification_id), 'd': digit})}"

    async def send(self, message: OutboundMessage) -> SendResult:
        """Place the call once; never retries by itself."""
        try:
            content = VoiceContent.parse(message.body)
            ack = self.ack_url_for(message.notification_id, content.digit) if content.digit else None
            if content.prompt is not None and ack is None:
                raise PermanentError("an acknowledged call needs webhooks.public_url (the Gather action)")
            request = create_call_request(self._client.account_sid, to=message.to, from_=message.sender,
                                          twiml=twiml_for(content, ack), status_callback=self._status_callback)
            return _result(await self._client.call(request))
        except TWILIO_ERRORS as exc:
            raise twilio_delivery_error(exc, reading=False) or exc from None

    async def find_sent(self, message: OutboundMessage, not_before: datetime) -> SendResult | None:
        """The newest outbound-api call to the same number from the same number created at or after
        `not_before` less the margin, or None; a scan that cannot finish raises TransientError."""
        require_aware(not_before, "not_before")
        cutoff = not_before - self._margin
        since = cutoff.astimezone(UTC).date() - timedelta(days=1)
        best: Mapping[str, Any] | None = None
        scanned = 0
        try:
            request = list_calls_request(self._client.account_sid, to=message.to, from_=message.sender,
                                         started_on_or_after=since)
            async with aclosing(self._client.list_resources(request, "calls")) as calls:
                async for call in calls:
                    scanned += 1
                    if scanned > self._max_scan:
                        raise TransientError(f"call reconciliation stopped after {self._max_scan} calls")
                    created = _created(call)
                    if (call.get("direction") == "outbound-api" and call.get("to") == message.to
                            and call.get("from") == message.sender and created is not None and created >= cutoff
                            and (best is None or created > (_created(best) or cutoff))):
                        best = call
            # A call still queued has no start time and escapes the StartTime filter: look at the
            # recipient's newest calls too, until one is older than the cutoff.
            recent = list_calls_request(self._client.account_sid, to=message.to, from_=message.sender)
            async with aclosing(self._client.list_resources(recent, "calls")) as calls:
                async for call in calls:
                    created = _created(call)
                    if created is None or created < cutoff:
                        break
                    if call.get("direction") == "outbound-api" and (
                            best is None or created > (_created(best) or cutoff)):
                        best = call
        except TWILIO_ERRORS as exc:
            raise twilio_delivery_error(exc, reading=True) or exc from None
        return _result(best) if best is not None else None

    async def fetch_status(self, provider_id: str) -> StatusEvent:
        """Twilio's current view of one call, shaped like a status callback."""
        try:
            resource = await self._client.call(fetch_call_request(self._client.account_sid, provider_id))
            result = _result(resource)
        except TWILIO_ERRORS as exc:
            raise twilio_delivery_error(exc, reading=True) or exc from None
        raw = {k: str(v) for k, v in resource.items() if isinstance(v, str | int) and not isinstance(v, bool)}
        return StatusEvent(provider_id=result.provider_id, provider_status=result.provider_status, error_code=None,
                           received_at=self._clock(), raw=raw)
