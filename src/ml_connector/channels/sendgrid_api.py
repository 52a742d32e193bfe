"""A small client for Twilio SendGrid's v3 Mail Send, on the same transport seam as Twilio's.

    request                      answer
    POST /v3/mail/send (JSON)    202 Accepted, X-Message-Id: <id>   -> the message id
                                 4xx/5xx {"errors": [{"message", "field"}]} -> SendGridApiError
                                 429 + X-RateLimit-Reset (epoch s)  -> SendGridApiError(retry_after)

Requests are built by `mail_send_request` (pure, checked against SendGrid's OpenAPI document
by tests/channels) and sent with `Authorization: Bearer <API key>`. The key is never in a
message, a log line or a repr.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ml_connector.channels.http import AiohttpTransport, HttpResponse, HttpTransport

__all__ = [
    "MAIL_SEND_PATH",
    "MailRequest",
    "SendGridApiError",
    "SendGridClient",
    "SendGridProtocolError",
    "mail_send_request",
    "parse_rate_limit_reset",
]

log = logging.getLogger(__name__)

MAIL_SEND_PATH = "/v3/mail/send"
USER_AGENT = "ml-connector"
#: SendGrid allows at most 10 categories of at most 255 characters (Mail Send schema).
MAX_CATEGORIES = 10
#: custom_args: the whole object must stay under 10,000 bytes; ours is a handful of ids.
CUSTOM_ARGS_BUDGET = 10_000


@dataclass(frozen=True, slots=True)
class MailRequest:
    """One Mail Send request before auth and host: the JSON document it posts."""

    method: str
    path: str
    payload: Mapping[str, Any]

    def body(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _address(email: str, name: str | None = None) -> dict[str, str]:
    if not email or "@" not in email or email != email.strip():
        raise ValueError("an email address needs a local part, '@' and a domain, without spaces")
    return {"email": email, "name": name} if name else {"email": email}


def mail_send_request(
    *,
    to: str,
    from_email: str,
    subject: str,
    text: str,
    html: str | None = None,
    from_name: str | None = None,
    reply_to: str | None = None,
    categories: Sequence[str] = (),
    custom_args: Mapping[str, str] | None = None,
) -> MailRequest:
    """POST /v3/mail/send for one recipient: text/plain first, then text/html (the order
    SendGrid requires), categories, and custom_args (string values) for correlating events.

    custom_args go in the personalization, where the OpenAPI document declares them an object
    (the top-level `custom_args` is declared a string there)."""
    if not subject.strip():
        raise ValueError("an email needs a subject")
    if not text:
        raise ValueError("an email needs a text part")
    cats = list(dict.fromkeys(categories))
    if len(cats) > MAX_CATEGORIES or any(not c or len(c) > 255 for c in cats):
        raise ValueError(f"categories: at most {MAX_CATEGORIES}, each 1-255 characters")
    args = dict(custom_args or {})
    if not all(isinstance(v, str) for v in args.values()):
        raise ValueError("custom_args values must be strings")
    if len(json.dumps(args)) >= CUSTOM_ARGS_BUDGET:
        raise ValueError("custom_args too large")
    personalization: dict[str, Any] = {"to": [_address(to)]}
    content = [{"type": "text/plain", "value": text}]
    if html is not None:
        content.append({"type": "text/html", "value": html})
    payload: dict[str, Any] = {
        "personalizations": [personalization],
        "from": _address(from_email, from_name),
        "subject": subject,
        "content": content,
    }
    if reply_to:
        payload["reply_to"] = _address(reply_to)
    if cats:
        payload["categories"] = cats
    if args:
        personalization["custom_args"] = args
    return MailRequest("POST", MAIL_SEND_PATH, payload)


class SendGridApiError(Exception):
    """SendGrid answered with an error status. The message is SendGrid's first error text."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}: {message}")


class SendGridProtocolError(Exception):
    """A success status we cannot read (no X-Message-Id)."""


def parse_rate_limit_reset(value: str | None, now: datetime) -> float | None:
    """Seconds until X-RateLimit-Reset (a Unix time in seconds); None if absent or invalid."""
    if value is None:
        return None
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    if reset != reset or reset <= 0:  # NaN or nonsense
        return None
    return max(0.0, reset - now.timestamp())


def _error_text(response: HttpResponse) -> str:
    try:
        data = json.loads(response.body)
    except ValueError:
        return f"non-JSON body ({len(response.body)} bytes)"
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        message, field = errors[0].get("message"), errors[0].get("field")
        if isinstance(message, str):
            return f"{message} (field {field})" if isinstance(field, str) else message
    return "no error message"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SendGridClient:
    """One SendGrid API key on one base URL. `transport` defaults to a pooled aiohttp one."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.sendgrid.com",
        transport: HttpTransport | None = None,
        timeout: float = 15.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.username:
            raise ValueError("base_url must be like 'https://api.sendgrid.com' (no credentials or query)")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("base_url must use https; plain http is only allowed for loopback hosts")
        if not api_key.strip():
            raise ValueError("the SendGrid API key is empty (is its environment variable set?)")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._clock = clock
        self._transport: HttpTransport = transport if transport is not None else AiohttpTransport()
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    def __repr__(self) -> str:
        return f"SendGridClient(base_url={self.base_url!r})"

    async def send(self, request: MailRequest) -> str:
        """Post the mail; returns X-Message-Id. No idempotency key exists (see channels.email)."""
        response = await self._transport.request(
            request.method, self.base_url + request.path, headers=self._headers, body=request.body(),
            timeout=self.timeout,
        )
        log.debug("sendgrid %s %s -> %s", request.method, request.path, response.status)
        if response.status != 202 and not 200 <= response.status < 300:
            retry = parse_rate_limit_reset(response.headers.get("X-RateLimit-Reset"), self._clock())
            raise SendGridApiError(response.status, _error_text(response), retry)
        message_id = response.headers.get("X-Message-Id", "").strip()
        if not message_id:
            raise SendGridProtocolError(f"HTTP {response.status} without an X-Message-Id header")
        return message_id

    async def aclose(self) -> None:
        await self._transport.aclose()
