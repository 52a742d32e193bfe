"""The outbound webhook channel: a signed JSON POST of the event to a customer's endpoint.

Signed the Standard Webhooks way (with the `standardwebhooks` package): `webhook-id` (stable
for one notification, "mlc_<id>", so a receiver drops a redelivery), `webhook-timestamp` (Unix
seconds) and `webhook-signature` ("v1,<base64 HMAC-SHA256 of id.timestamp.body>"), with a
secret per endpoint ("whsec_..." base64, from ${ENV}). The payload is core.webhook_body's.

    answer                    here
    2xx                       delivered (final: there is nothing more to hear)
    408, 429                  TransientError (Retry-After honoured)
    other 4xx                 PermanentError with the status
    5xx, timeout, lost answer TransientError: sent again with the same webhook-id, which the
                              receiver uses to drop the duplicate (at least once, deduplicated)
    connect failed            TransientError
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from ml_connector.channels.http import AiohttpTransport, ConnectFailed, HttpTransport, ResponseLost
from ml_connector.channels.twilio_api import parse_retry_after
from ml_connector.core.models import OutboundMessage, SendResult, StatusEvent
from ml_connector.core.webhook_body import envelope
from ml_connector.errors import PermanentError, TransientError

__all__ = ["WebhookChannel", "WebhookEndpoint", "webhook_id"]

USER_AGENT = "ml-connector"


def webhook_id(notification_id: int) -> str:
    return f"mlc_{notification_id}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    url: str
    secret: str
    timeout: float = 10.0

    def __repr__(self) -> str:
        return f"WebhookEndpoint(url={self.url!r})"


class WebhookChannel:
    """channels.base.Channel posting to the configured endpoints, by the names flows use."""

    def __init__(self, endpoints: Mapping[str, WebhookEndpoint], *, transport: HttpTransport | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self._endpoints = dict(endpoints)
        self._signers = {name: Webhook(e.secret) for name, e in endpoints.items()}
        self._transport: HttpTransport = transport if transport is not None else AiohttpTransport()
        self._clock = clock

    async def send(self, message: OutboundMessage) -> SendResult:
        endpoint = self._endpoints.get(message.sender)
        if endpoint is None:
            raise PermanentError(f"webhook endpoint {message.sender!r} is not configured")
        now = self._clock()
        ident = webhook_id(message.notification_id)
        try:
            body = envelope(message.body, message.notification_id, now)
        except ValueError as exc:
            raise PermanentError(str(exc)) from None
        stamp = datetime.fromtimestamp(int(now.timestamp()), UTC)
        headers = {
            "Content-Type": "application/json", "User-Agent": USER_AGENT, "webhook-id": ident,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": self._signers[message.sender].sign(ident, stamp, body.decode("utf-8")),
        }
        try:
            response = await self._transport.request("POST", endpoint.url, headers=headers, body=body,
                                                     timeout=endpoint.timeout)
        except (ConnectFailed, ResponseLost) as exc:  # same webhook-id next time: the receiver dedupes
            raise TransientError(f"webhook endpoint not answered: {exc}") from None
        status = response.status
        if 200 <= status < 300:
            return SendResult(provider_id=ident, provider_status="delivered")
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        if status in (408, 429) or status >= 500:
            raise TransientError(f"webhook endpoint answered {status}", status=status, retry_after=retry_after,
                                 slow_down=status == 429)
        raise PermanentError(f"webhook endpoint refused the event ({status})", status=status)

    async def find_sent(self, message: OutboundMessage, not_before: datetime) -> SendResult | None:
        """Nothing to ask: sending again with the same webhook-id is the protocol's deduplication."""
        return None

    async def fetch_status(self, provider_id: str) -> StatusEvent:
        raise PermanentError("a webhook's answer is its final status; there is nothing to fetch")

    async def aclose(self) -> None:
        await self._transport.aclose()
