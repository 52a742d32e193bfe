"""The email channel: OutboundMessage -> Twilio SendGrid Mail Send, errors -> the delivery tree.

The stored body is an email's three parts (core.email_body); the recipient is an address, kept
encrypted at rest like a phone number. Each email sender has its own API key, from address,
reply-to and categories; every mail carries our notification id in `custom_args`
(`mlc_notification_id`) and the flow's categories, so the Event Webhook can be correlated by
SendGrid's message id (X-Message-Id, the prefix of each event's `sg_message_id`) or by ours.

At most once. SendGrid's Mail Send has no idempotency key and no way to ask "did you queue a
mail with this custom arg?" (the Email Activity API is a paid add-on, searchable only minutes
later). A send whose outcome is unknown (the response was lost, a 5xx after the request was
read, a crash between request and record) therefore cannot be reconciled, and resending could
deliver the same email twice to a person's inbox, where it cannot be taken back. We choose at
most once: such a notification ends `failed` with the reason "not resent", visible to people
who may replay it after checking SendGrid's activity feed. A connect failure (nothing left
this process) is still retried.

    answer / failure              resolution (core.sendgrid_errors)    here
    202 + X-Message-Id            queued                                SendResult
    429                           RETRY_SLOW (X-RateLimit-Reset)        TransientError(slow_down)
    400 401 403 404 405 413       FAIL                                  PermanentError
    5xx, 408, lost response       RECONCILE                             NotResent (at most once)
    2xx without X-Message-Id      RECONCILE                             NotResent
    connect failed                RETRY                                 TransientError
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ml_connector.channels.http import ConnectFailed, ResponseLost
from ml_connector.channels.sendgrid_api import (
    SendGridApiError,
    SendGridClient,
    SendGridProtocolError,
    mail_send_request,
)
from ml_connector.core.email_body import EmailContent
from ml_connector.core.models import OutboundMessage, SendResult, StatusEvent
from ml_connector.core.resolution import Action
from ml_connector.core.sendgrid_errors import resolve_sendgrid_status
from ml_connector.errors import DeliveryError, NotResent, PermanentError, TransientError

__all__ = ["NOTIFICATION_ARG", "EmailChannel", "EmailSenderRef"]

#: The custom arg that carries our notification id to SendGrid and back in every event.
NOTIFICATION_ARG = "mlc_notification_id"
#: Why a send of unknown outcome is not repeated (shown on the notification).
AT_MOST_ONCE = ("outcome unknown and SendGrid cannot be asked what it queued: not resent (email is sent "
                "at most once); check SendGrid's activity feed before replaying")


@dataclass(frozen=True, slots=True)
class EmailSenderRef:
    """One configured email sender: its key (in `client`), addresses and categories."""

    client: SendGridClient
    from_email: str
    from_name: str | None = None
    reply_to: str | None = None
    categories: Sequence[str] = field(default_factory=tuple)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EmailChannel:
    """channels.base.Channel over SendGrid Mail Send; `senders` by the names flows use."""

    def __init__(self, senders: Mapping[str, EmailSenderRef], *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._senders = dict(senders)
        self._clock = clock

    async def send(self, message: OutboundMessage) -> SendResult:
        """Post the mail once; never retries by itself (the dispatcher owns retries)."""
        sender = self._senders.get(message.sender)
        if sender is None:
            raise PermanentError(f"email sender {message.sender!r} is not configured")
        try:
            content = EmailContent.parse(message.body)
            request = mail_send_request(
                to=message.to, from_email=sender.from_email, from_name=sender.from_name,
                reply_to=sender.reply_to, subject=content.subject, text=content.text, html=content.html,
                categories=sender.categories, custom_args={NOTIFICATION_ARG: str(message.notification_id)},
            )
        except ValueError as exc:
            raise PermanentError(f"invalid email: {exc}") from None
        try:
            message_id = await sender.client.send(request)
        except SendGridApiError as exc:
            raise _api_error(exc) from None
        except ConnectFailed as exc:
            raise TransientError(f"SendGrid not reached: {exc}") from None
        except (ResponseLost, SendGridProtocolError) as exc:
            raise NotResent(f"{AT_MOST_ONCE} ({exc})") from None
        return SendResult(provider_id=message_id, provider_status="queued")

    async def find_sent(self, message: OutboundMessage, not_before: datetime) -> SendResult | None:
        """SendGrid offers no look-up: an in-doubt email is never sent again (see the module)."""
        raise NotResent(AT_MOST_ONCE)

    async def fetch_status(self, provider_id: str) -> StatusEvent:
        """Only the Event Webhook tells an email's status; there is nothing to fetch."""
        raise PermanentError("SendGrid has no status look-up by message id; statuses come from the Event Webhook")

    async def aclose(self) -> None:
        for client in {id(s.client): s.client for s in self._senders.values()}.values():
            await client.aclose()


def _api_error(exc: SendGridApiError) -> DeliveryError:
    resolution = resolve_sendgrid_status(exc.status)
    reason = f"{resolution.reason}: {exc.message}"
    if resolution.action is Action.RETRY_SLOW or resolution.action is Action.RETRY:
        delay = max((d for d in (exc.retry_after, resolution.min_delay) if d is not None), default=None)
        return TransientError(reason, status=exc.status, retry_after=delay,
                              slow_down=resolution.action is Action.RETRY_SLOW)
    if resolution.action is Action.RECONCILE:
        return NotResent(f"{AT_MOST_ONCE} ({reason})", status=exc.status)
    return PermanentError(reason, status=exc.status)
