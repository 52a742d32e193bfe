"""MMS and WhatsApp: Twilio Messages with media and Content templates, on the SMS channel.

Both are Messages (same create, same statuses, same reconciliation, same error tables: the
SMS channel does the work); what differs is read from the stored body (core.message_body):

- MMS: the text plus each rendered media URL as a repeated `MediaUrl` field.
- WhatsApp: both addresses become `whatsapp:+E164` (the store keeps the bare number, so the
  keyed look-up by phone finds it); a business-initiated message names an approved Content
  template (`ContentSid` + `ContentVariables` JSON from the record) and sends no Body. Free
  text is allowed only inside the 24-hour window after the recipient last wrote: outside it
  WhatsApp answers 63016, which core.resolution makes permanent with that reason. `read`
  comes from status callbacks (core.lifecycle).

Reconciliation compares bodies; a template message's body is what Twilio rendered, which we do
not know, so for those the newest message to the same address from the same sender since the
send is adopted (never a second send).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ml_connector.channels.sms import SmsChannel
from ml_connector.core.message_body import MessageContent
from ml_connector.core.models import OutboundMessage, SendResult, StatusEvent
from ml_connector.errors import PermanentError

__all__ = ["WHATSAPP_PREFIX", "MediaChannel"]

WHATSAPP_PREFIX = "whatsapp:"


def _whatsapp(address: str) -> str:
    return f"{WHATSAPP_PREFIX}{address}" if address.startswith("+") else address


class MediaChannel:
    """channels.base.Channel for "mms" or "whatsapp" over an account's SMS channel."""

    def __init__(self, sms: SmsChannel, kind: str) -> None:
        if kind not in ("mms", "whatsapp"):
            raise ValueError("kind must be 'mms' or 'whatsapp'")
        self._sms = sms
        self.kind = kind

    def _message(self, message: OutboundMessage) -> OutboundMessage:
        try:
            content = MessageContent.parse(message.body)
        except ValueError as exc:
            raise PermanentError(str(exc)) from None
        if self.kind == "mms" and not content.media:
            raise PermanentError("an MMS needs at least one media URL")
        if self.kind == "mms" and content.content_sid:
            raise PermanentError("Content templates are for WhatsApp, not MMS")
        templated = content.content_sid is not None
        return replace(
            message,
            to=_whatsapp(message.to) if self.kind == "whatsapp" else message.to,
            sender=_whatsapp(message.sender) if self.kind == "whatsapp" else message.sender,
            body="" if templated else content.text,
            media_urls=content.media,
            content_sid=content.content_sid,
            content_variables=content.variables_json,
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        return await self._sms.send(self._message(message))

    async def find_sent(self, message: OutboundMessage, not_before: datetime) -> SendResult | None:
        return await self._sms.find_sent(self._message(message), not_before)

    async def fetch_status(self, provider_id: str) -> StatusEvent:
        return await self._sms.fetch_status(provider_id)
