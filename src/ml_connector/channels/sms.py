"""The SMS/MMS channel: OutboundMessage -> Twilio Messages, errors -> the delivery error tree.

What happens on failure is decided by core.resolution, not here; this module only translates:

    resolution action   send()           find_sent() / fetch_status() (reads are idempotent)
    RETRY               TransientError   TransientError
    RETRY_SLOW          TransientError(slow_down=True)
    FAIL                PermanentError   PermanentError
    RECONCILE           InDoubtError     TransientError
    HOLD_ACCOUNT        AccountError     AccountError (the account is refused, not the message)

Reconciliation (`find_sent`) exists because Twilio's Messages create has no idempotency key
(twilio.md §3): after a lost response the only way to know whether the message exists is to
look for it in the account's message list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from ml_connector.channels.http import ConnectFailed, ResponseLost, TransportError
from ml_connector.channels.twilio_api import (
    MESSAGING_SERVICE_SID,
    TwilioApiError,
    TwilioClient,
    TwilioProtocolError,
)
from ml_connector.core.models import OutboundMessage, SendResult, StatusEvent, require_aware
from ml_connector.core.redact import scrub_phones
from ml_connector.core.resolution import (
    Action,
    Resolution,
    resolve_api_error,
    resolve_transport_error,
)
from ml_connector.errors import AccountError, DeliveryError, InDoubtError, PermanentError, TransientError

__all__ = ["SenderRef", "SmsChannel"]

#: What a literal sender string can be, tried in order (twilio.md §2, `From`).
FROM_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("E.164 phone number", re.compile(r"^\+[1-9]\d{1,14}$")),
    ("short code", re.compile(r"^\d{3,8}$")),
    ("channel address", re.compile(r"^(whatsapp|messenger|rcs):\S+$")),
    ("alphanumeric sender ID", re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")),
)


def _from_kind(value: str) -> str | None:
    for kind, pattern in FROM_PATTERNS:
        if pattern.match(value):
            return kind
    return None


@dataclass(frozen=True, slots=True)
class SenderRef:
    """Who sends: a From (number, short code, alphanumeric ID, channel address), a Messaging
    Service (Twilio picks from its pool), or both (a specific sender of the pool)."""

    from_: str | None = None
    messaging_service_sid: str | None = None

    def __post_init__(self) -> None:
        if not self.from_ and not self.messaging_service_sid:
            raise ValueError("a sender needs a From or a Messaging Service SID")
        if self.messaging_service_sid and not MESSAGING_SERVICE_SID.match(self.messaging_service_sid):
            raise ValueError("messaging_service_sid must be 'MG' followed by 32 hex digits")
        if self.from_ and _from_kind(self.from_) is None:
            raise ValueError(
                "sender must be an E.164 number (+15551234567), a short code, an alphanumeric "
                "sender ID (1-11 letters/digits/spaces, at least one letter), a channel address "
                "(whatsapp:+1...) or a Messaging Service SID (MG...)"
            )

    @classmethod
    def parse(cls, value: str) -> SenderRef:
        """Decide by pattern: MG + 32 hex digits is a Messaging Service, anything else a From."""
        if MESSAGING_SERVICE_SID.match(value):
            return cls(messaging_service_sid=value)
        return cls(from_=value)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_twilio_date(value: object) -> datetime | None:
    """Twilio resource dates are RFC 2822 ('Wed, 18 Aug 2010 20:01:40 +0000'); None if absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _optional_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _send_result(resource: Mapping[str, Any]) -> SendResult:
    sid, status = resource.get("sid"), resource.get("status")
    if not isinstance(sid, str) or not isinstance(status, str):
        raise TwilioProtocolError("Message resource without 'sid' and 'status'")
    message = resource.get("error_message")
    return SendResult(
        provider_id=sid,
        provider_status=status,
        segments=_optional_int(resource.get("num_segments")),
        error_code=_optional_int(resource.get("error_code")),
        error_message=scrub_phones(message) if isinstance(message, str) else None,
    )


def _merge_delay(a: float | None, b: float | None) -> float | None:
    return max((d for d in (a, b) if d is not None), default=None)


_ERROR_FOR: Mapping[Action, Callable[[str, int | None, int | None, float | None], DeliveryError]] = {
    Action.RETRY: lambda reason, code, status, delay: TransientError(
        reason, code=code, status=status, retry_after=delay
    ),
    Action.RETRY_SLOW: lambda reason, code, status, delay: TransientError(
        reason, code=code, status=status, retry_after=delay, slow_down=True
    ),
    Action.FAIL: lambda reason, code, status, delay: PermanentError(reason, code=code, status=status),
    Action.RECONCILE: lambda reason, code, status, delay: InDoubtError(reason, code=code, status=status),
    Action.HOLD_ACCOUNT: lambda reason, code, status, delay: AccountError(reason, code=code, status=status),
}

#: For reads nothing can be doubled, so "reconcile" just means "try again".
_READ_ACTION: Mapping[Action, Action] = {Action.RECONCILE: Action.RETRY}


def _to_delivery_error(exc: Exception, *, reading: bool) -> DeliveryError | None:
    """The delivery error for a client/transport exception, or None if it is not one of ours."""
    code: int | None = None
    status: int | None = None
    delay: float | None = None
    resolution: Resolution
    if isinstance(exc, TwilioApiError):
        resolution = resolve_api_error(exc.status, exc.code)
        code, status, delay, reason = exc.code, exc.status, exc.retry_after, exc.message
    elif isinstance(exc, ConnectFailed):
        resolution, reason = resolve_transport_error("connect"), str(exc)
    elif isinstance(exc, ResponseLost):
        resolution, reason = resolve_transport_error("lost"), str(exc)
    elif isinstance(exc, TwilioProtocolError):
        # 2xx that we cannot read: Twilio accepted something, we do not know what.
        resolution, reason = Resolution(Action.RECONCILE, "unreadable 2xx answer"), str(exc)
    elif isinstance(exc, ValueError):
        resolution, reason = Resolution(Action.FAIL, "invalid message"), str(exc)
    else:
        return None
    action = _READ_ACTION.get(resolution.action, resolution.action) if reading else resolution.action
    return _ERROR_FOR[action](reason, code, status, _merge_delay(delay, resolution.min_delay))


_HANDLED = (TwilioApiError, TransportError, TwilioProtocolError, ValueError)


class SmsChannel:
    """channels.base.Channel over Twilio Messages.

    `senders` maps names used in flow configs to SenderRef; a message whose `sender` is not a
    name there is read as a literal From or Messaging Service SID (SenderRef.parse).
    """

    def __init__(
        self,
        client: TwilioClient,
        *,
        senders: Mapping[str, SenderRef] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        clock_margin: timedelta = timedelta(minutes=5),
        max_scan: int = 5000,
    ) -> None:
        self._client = client
        self._senders = dict(senders or {})
        self._clock = clock
        self._margin = clock_margin
        self._max_scan = max_scan

    def sender_for(self, sender: str) -> SenderRef:
        """The configured sender of that name, else the literal sender."""
        return self._senders.get(sender) or SenderRef.parse(sender)

    async def send(self, message: OutboundMessage) -> SendResult:
        """Create the message once. Never retries by itself: the dispatcher owns retries."""
        try:
            ref = self.sender_for(message.sender)
            resource = await self._client.create_message(
                to=message.to,
                from_=ref.from_,
                messaging_service_sid=ref.messaging_service_sid,
                body=message.body or None,
                media_urls=message.media_urls,
                status_callback=message.status_callback,
                validity_period=message.validity_period,
                content_sid=message.content_sid,
                content_variables=message.content_variables,
            )
            return _send_result(resource)
        except _HANDLED as exc:
            raise _to_delivery_error(exc, reading=False) or exc from None

    async def find_sent(self, message: OutboundMessage, not_before: datetime) -> SendResult | None:
        """The newest Twilio message to the same recipient, from the same sender, with the exact
        same body, created at or after `not_before` (less a clock margin), or None.

        Two scans, because DateSent is only a date and a message still queued has no date_sent:
        1. `DateSent>=` the day before `not_before` (the margin covers time zones and skew);
        2. the recipient's messages without a date filter, newest first, until one was created
           before the cutoff.
        A scan that cannot finish raises TransientError rather than answer "not sent".
        Limits: a body rewritten by Twilio (Smart Encoding, link shortening on the Messaging
        Service) or redacted by retention settings will not match.
        """
        require_aware(not_before, "not_before")
        try:
            ref = self.sender_for(message.sender)
            cutoff = not_before - self._margin
            found: dict[str, Mapping[str, Any]] = {}
            scanned = 0
            since = cutoff.astimezone(UTC).date() - timedelta(days=1)
            async with aclosing(self._client.list_messages(to=message.to, date_sent_after=since)) as by_date:
                async for item in by_date:
                    scanned = self._count(scanned)
                    if _matches(item, message, ref, cutoff):
                        found[item["sid"]] = item
            async with aclosing(self._client.list_messages(to=message.to)) as recent:
                async for item in recent:
                    scanned = self._count(scanned)
                    created = _parse_twilio_date(item.get("date_created"))
                    if created is not None and created < cutoff:
                        break
                    if _matches(item, message, ref, cutoff):
                        found[item["sid"]] = item
            if not found:
                return None
            newest = max(found.values(), key=lambda m: _parse_twilio_date(m.get("date_created")) or cutoff)
            return _send_result(newest)
        except _HANDLED as exc:
            raise _to_delivery_error(exc, reading=True) or exc from None

    def _count(self, scanned: int) -> int:
        if scanned >= self._max_scan:
            raise TransientError(f"reconciliation stopped after {self._max_scan} messages without finishing")
        return scanned + 1

    async def probe(self) -> None:
        """One cheap authenticated call (the Account resource): does Twilio take this account now?

        Raises the same DeliveryError kinds as a send would (AccountError while the credentials
        or the account are refused)."""
        try:
            await self._client.fetch_account()
        except _HANDLED as exc:
            raise _to_delivery_error(exc, reading=True) or exc from None

    async def fetch_status(self, provider_id: str) -> StatusEvent:
        """Twilio's current view of one message, shaped like a status callback."""
        try:
            resource = await self._client.fetch_message(provider_id)
            result = _send_result(resource)
        except _HANDLED as exc:
            raise _to_delivery_error(exc, reading=True) or exc from None
        raw = {
            key: str(value)
            for key, value in resource.items()
            if key != "body" and isinstance(value, str | int | float) and not isinstance(value, bool)
        }
        return StatusEvent(
            provider_id=result.provider_id,
            provider_status=result.provider_status,
            error_code=result.error_code,
            received_at=self._clock(),
            raw=raw,
        )


def _matches(item: Mapping[str, Any], message: OutboundMessage, ref: SenderRef, cutoff: datetime) -> bool:
    """Same recipient, sender and body, ours (outbound-api), and not older than the cutoff."""
    created = _parse_twilio_date(item.get("date_created"))
    return (
        isinstance(item.get("sid"), str)
        and item.get("direction") == "outbound-api"
        and item.get("to") == message.to
        # A Content template's body is rendered by Twilio: unknown here, so not compared.
        and (message.content_sid is not None or (item.get("body") or "") == message.body)
        and (ref.from_ is None or item.get("from") == ref.from_)
        and (
            ref.messaging_service_sid is None
            or item.get("messaging_service_sid") == ref.messaging_service_sid
        )
        and created is not None
        and created >= cutoff
    )


#: The same translation for every channel on the Twilio REST API (voice, ...).
twilio_delivery_error = _to_delivery_error
TWILIO_ERRORS = _HANDLED
