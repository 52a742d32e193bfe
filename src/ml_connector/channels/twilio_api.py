"""A thin async client for the Twilio REST API (2010-04-01): Messages and Account.

Requests are built by small pure functions (`create_message_request`, ...) that validate what
Twilio would reject anyway, so a bad message fails before it leaves and the conformance test can
enumerate every request this client can make. The client sends them over an `HttpTransport`
(aiohttp by default; an in-process ASGI app in tests) with HTTP Basic auth: the Account SID +
Auth Token, or an API key (SK...) + secret, in which case the URL still names the AC... account
(twilio.md §1).

Errors:
- a non-2xx answer raises `TwilioApiError` (status, Twilio code, message, more_info, Retry-After);
- a 2xx answer we cannot read raises `TwilioProtocolError`;
- transport failures propagate as `ConnectFailed` / `ResponseLost` (channels.http).

Secrets never appear in reprs, messages or logs, and phone numbers inside Twilio's error
messages are masked by core.redact (Twilio quotes the 'To' number in 21211 and friends).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode, urlsplit

from ml_connector.channels.http import AiohttpTransport, HttpResponse, HttpTransport
from ml_connector.core.redact import scrub_phones

__all__ = [
    "ACCOUNT_SID",
    "API_KEY_SID",
    "MESSAGE_SID",
    "MESSAGING_SERVICE_SID",
    "Operation",
    "PreparedRequest",
    "TwilioApiError",
    "TwilioClient",
    "TwilioProtocolError",
    "create_message_request",
    "fetch_account_request",
    "fetch_message_request",
    "list_messages_request",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600  # twilio.md §2
MAX_MEDIA_URLS = 10  # twilio.md §2
MAX_CALLBACK_CHARS = 4000  # twilio.md §2 (error 21609)
VALIDITY_RANGE = range(1, 36001)  # twilio.md §2
PAGE_SIZE_RANGE = range(1, 1001)  # spec: ListMessage PageSize
USER_AGENT = "ml-connector/0.1"


def _describe_sid(value: str) -> str:
    """Enough to recognise a misplaced value without echoing it (it may be a secret)."""
    return f"a {len(value)}-character value starting with {value[:2]!r}"


def _require_sid(value: str, pattern: re.Pattern[str], what: str, shape: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        got = _describe_sid(value) if isinstance(value, str) else type(value).__name__
        raise ValueError(f"{what} must be {shape}; got {got}")
    return value


def _require_url(value: str, what: str, *, hostname_underscores: bool = True) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http(s) URL")
    if not hostname_underscores and "_" in parts.hostname:
        raise ValueError(f"{what} host name must not contain underscores (Twilio error 21609)")
    return value


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date; None if absent/invalid."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --- requests ---------------------------------------------------------------------------------


class Operation(StrEnum):
    """The operations this client uses, named by the spec's operationId."""

    CREATE_MESSAGE = "CreateMessage"
    FETCH_MESSAGE = "FetchMessage"
    LIST_MESSAGE = "ListMessage"
    FETCH_ACCOUNT = "FetchAccount"
    CREATE_CALL = "CreateCall"
    FETCH_CALL = "FetchCall"
    LIST_CALL = "ListCall"


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """One request before auth and host: query parameters for GET, form fields for POST."""

    operation: Operation
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()

    def target(self) -> str:
        """Path plus query string (GET) as sent."""
        if self.method == "GET" and self.params:
            return f"{self.path}?{urlencode(self.params)}"
        return self.path

    def body(self) -> bytes | None:
        """Form-encoded body (POST); lists are repeated keys, e.g. MediaUrl=a&MediaUrl=b."""
        return urlencode(self.params).encode("ascii") if self.method == "POST" else None


def _account_path(account_sid: str) -> str:
    _require_sid(account_sid, ACCOUNT_SID, "account_sid", "'AC' followed by 32 hex digits")
    return f"/{API_VERSION}/Accounts/{account_sid}"


def create_message_request(
    account_sid: str,
    *,
    to: str,
    from_: str | None = None,
    messaging_service_sid: str | None = None,
    body: str | None = None,
    media_urls: Iterable[str] = (),
    status_callback: str | None = None,
    validity_period: int | None = None,
    content_sid: str | None = None,
    content_variables: str | None = None,
) -> PreparedRequest:
    """POST Messages.json. Enforces the spec's conditional groups: From or MessagingServiceSid,
    Body, MediaUrl or ContentSid (an approved Content template, with ContentVariables JSON)."""
    media = tuple(media_urls)
    if not to or to != to.strip():
        raise ValueError("'to' must be a non-empty address without surrounding spaces")
    if not from_ and not messaging_service_sid:
        raise ValueError("a message needs a sender: 'from_' or 'messaging_service_sid'")
    if not body and not media and not content_sid:
        raise ValueError("a message needs content: 'body', 'media_urls' or 'content_sid'")
    if content_sid is not None:
        _require_sid(content_sid, CONTENT_SID, "content_sid", "'HX' followed by 32 hex digits")
    if content_variables is not None:
        if content_sid is None:
            raise ValueError("content_variables go with a content_sid")
        try:
            variables = json.loads(content_variables)
        except ValueError:
            variables = None
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            raise ValueError("content_variables must be a JSON object of strings")
    if body is not None and len(body) > MAX_BODY_CHARS:
        raise ValueError(f"body has {len(body)} characters; Twilio accepts at most {MAX_BODY_CHARS}")
    if len(media) > MAX_MEDIA_URLS:
        raise ValueError(f"{len(media)} media URLs; Twilio accepts at most {MAX_MEDIA_URLS}")
    params: list[tuple[str, str]] = [("To", to)]
    if from_:
        params.append(("From", from_))
    if messaging_service_sid:
        _require_sid(
            messaging_service_sid,
            MESSAGING_SERVICE_SID,
            "messaging_service_sid",
            "'MG' followed by 32 hex digits",
        )
        params.append(("MessagingServiceSid", messaging_service_sid))
    if body:
        params.append(("Body", body))
    for url in media:
        params.append(("MediaUrl", _require_url(url, "each media URL")))
    if status_callback is not None:
        _require_url(status_callback, "status_callback", hostname_underscores=False)
        if len(status_callback) > MAX_CALLBACK_CHARS:
            raise ValueError(f"status_callback is longer than {MAX_CALLBACK_CHARS} characters")
        params.append(("StatusCallback", status_callback))
    if validity_period is not None:
        if isinstance(validity_period, bool) or validity_period not in VALIDITY_RANGE:
            raise ValueError("validity_period must be an integer number of seconds from 1 to 36000")
        params.append(("ValidityPeriod", str(validity_period)))
    if content_sid is not None:
        params.append(("ContentSid", content_sid))
    if content_variables is not None:
        params.append(("ContentVariables", content_variables))
    return PreparedRequest(
        Operation.CREATE_MESSAGE, "POST", f"{_account_path(account_sid)}/Messages.json", tuple(params)
    )


def fetch_message_request(account_sid: str, sid: str) -> PreparedRequest:
    """GET Messages/{Sid}.json."""
    _require_sid(sid, MESSAGE_SID, "message sid", "'SM' or 'MM' followed by 32 hex digits")
    return PreparedRequest(
        Operation.FETCH_MESSAGE, "GET", f"{_account_path(account_sid)}/Messages/{sid}.json"
    )


def _date_filter(value: date, what: str) -> str:
    """Twilio filters by GMT date; sent as midnight in the spec's date-time form, as Twilio's SDKs do."""
    if isinstance(value, datetime):
        raise TypeError(f"{what} must be a date (Twilio filters by GMT date), not a datetime")
    return f"{value.isoformat()}T00:00:00Z"


def list_messages_request(
    account_sid: str,
    *,
    to: str | None = None,
    from_: str | None = None,
    date_sent: date | None = None,
    date_sent_after: date | None = None,
    date_sent_before: date | None = None,
    page_size: int = 50,
) -> PreparedRequest:
    """GET Messages.json with filters. `date_sent_after`/`before` are inclusive (`DateSent>=`, `<=`)."""
    if isinstance(page_size, bool) or page_size not in PAGE_SIZE_RANGE:
        raise ValueError("page_size must be from 1 to 1000")
    params: list[tuple[str, str]] = []
    if to:
        params.append(("To", to))
    if from_:
        params.append(("From", from_))
    # The parameter names end in '<' / '>'; followed by '=' they read as Twilio's <= / >= filters.
    for name, value in (
        ("DateSent", date_sent),
        ("DateSent>", date_sent_after),
        ("DateSent<", date_sent_before),
    ):
        if value is not None:
            params.append((name, _date_filter(value, name)))
    params.append(("PageSize", str(page_size)))
    return PreparedRequest(
        Operation.LIST_MESSAGE, "GET", f"{_account_path(account_sid)}/Messages.json", tuple(params)
    )


def fetch_account_request(account_sid: str) -> PreparedRequest:
    """GET Accounts/{Sid}.json: the cheapest call that proves the credentials work."""
    return PreparedRequest(Operation.FETCH_ACCOUNT, "GET", f"{_account_path(account_sid)}.json")


# --- errors -----------------------------------------------------------------------------------


class TwilioApiError(Exception):
    """Twilio (or a proxy in front of it) answered non-2xx. `code` is None when the body was not
    Twilio's error JSON. `message` is Twilio's text with phone numbers masked."""

    def __init__(
        self,
        status: int,
        code: int | None,
        message: str,
        more_info: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = scrub_phones(message)
        self.more_info = more_info
        self.retry_after = retry_after
        tag = f" [{code}]" if code is not None else ""
        super().__init__(f"Twilio HTTP {status}{tag}: {self.message}")


class TwilioProtocolError(Exception):
    """Twilio answered 2xx with something this client cannot use (not JSON, bad paging links)."""


def _error_from(response: HttpResponse, now: datetime) -> TwilioApiError:
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
    try:
        data = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        code = data.get("code")
        message = data.get("message")
        more_info = data.get("more_info")
        return TwilioApiError(
            response.status,
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            message if isinstance(message, str) and message else f"HTTP {response.status}",
            more_info if isinstance(more_info, str) else None,
            retry_after,
        )
    kind = response.headers.get("Content-Type", "no content type").split(";")[0].strip()
    return TwilioApiError(
        response.status, None, f"HTTP {response.status} with a non-JSON body ({kind})", None, retry_after
    )


def _json_object(response: HttpResponse, what: str) -> dict[str, Any]:
    try:
        data = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        raise TwilioProtocolError(f"{what}: HTTP {response.status} body is not JSON") from None
    if not isinstance(data, dict):
        raise TwilioProtocolError(f"{what}: HTTP {response.status} body is not a JSON object")
    return data


# --- client -----------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TwilioClient:
    """Async Twilio REST client over a pluggable transport. Close it with `aclose()` (it closes
    its transport, including one passed in)."""

    def __init__(
        self,
        account_sid: str,
        *,
        auth_token: str | None = None,
        api_key_sid: str | None = None,
        api_key_secret: str | None = None,
        base_url: str = "https://api.twilio.com",
        transport: HttpTransport | None = None,
        timeout: float = 15.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        _require_sid(account_sid, ACCOUNT_SID, "account_sid", "'AC' followed by 32 hex digits")
        if auth_token and (api_key_sid or api_key_secret):
            raise ValueError("give either auth_token or api_key_sid + api_key_secret, not both")
        if auth_token:
            username, secret, self.auth_kind = account_sid, auth_token, "auth_token"
        elif api_key_sid and api_key_secret:
            _require_sid(api_key_sid, API_KEY_SID, "api_key_sid", "'SK' followed by 32 hex digits")
            username, secret, self.auth_kind = api_key_sid, api_key_secret, "api_key"
        else:
            raise ValueError("credentials missing: give auth_token, or api_key_sid and api_key_secret")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.username:
            raise ValueError("base_url must be like 'https://api.twilio.com' (no credentials or query)")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("base_url must use https; plain http is only allowed for loopback hosts")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._clock = clock
        self._transport: HttpTransport = transport if transport is not None else AiohttpTransport()
        token = base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")
        self._headers = {
            "Authorization": f"Basic {token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }

    def __repr__(self) -> str:
        return (
            f"TwilioClient(account_sid={self.account_sid!r}, auth={self.auth_kind}, "
            f"base_url={self.base_url!r})"
        )

    async def _send(self, method: str, target: str, body: bytes | None) -> HttpResponse:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        response = await self._transport.request(
            method, self.base_url + target, headers=headers, body=body, timeout=self.timeout
        )
        log.debug("twilio %s %s -> %s", method, target.split("?")[0], response.status)
        if not 200 <= response.status < 300:
            raise _error_from(response, self._clock())
        return response

    async def _call(self, prepared: PreparedRequest) -> dict[str, Any]:
        response = await self._send(prepared.method, prepared.target(), prepared.body())
        return _json_object(response, prepared.operation)

    async def create_message(
        self,
        *,
        to: str,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
        body: str | None = None,
        media_urls: Iterable[str] = (),
        status_callback: str | None = None,
        validity_period: int | None = None,
        content_sid: str | None = None,
        content_variables: str | None = None,
    ) -> dict[str, Any]:
        """Create (send) a message; returns the Message resource. No idempotency key exists, so a
        ResponseLost here must be reconciled with `list_messages` before any resend."""
        prepared = create_message_request(
            self.account_sid,
            to=to,
            from_=from_,
            messaging_service_sid=messaging_service_sid,
            body=body,
            media_urls=media_urls,
            status_callback=status_callback,
            validity_period=validity_period,
            content_sid=content_sid,
            content_variables=content_variables,
        )
        return await self._call(prepared)

    async def fetch_message(self, sid: str) -> dict[str, Any]:
        """One Message resource by SID."""
        return await self._call(fetch_message_request(self.account_sid, sid))

    async def fetch_account(self) -> dict[str, Any]:
        """The Account resource: proves the credentials and the account SID agree."""
        return await self._call(fetch_account_request(self.account_sid))

    async def list_messages(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        date_sent: date | None = None,
        date_sent_after: date | None = None,
        date_sent_before: date | None = None,
        page_size: int = 50,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Messages matching the filters, newest first, following `next_page_uri` page by page.

        A next page outside this account's Messages list, or a page link seen before, raises
        TwilioProtocolError instead of leaking credentials elsewhere or looping forever.
        """
        prepared = list_messages_request(
            self.account_sid,
            to=to,
            from_=from_,
            date_sent=date_sent,
            date_sent_after=date_sent_after,
            date_sent_before=date_sent_before,
            page_size=page_size,
        )
        async with aclosing(self.list_resources(prepared, "messages")) as items:
            async for item in items:
                yield item

    async def call(self, prepared: PreparedRequest) -> dict[str, Any]:
        """Send one prepared request (channels.twilio_calls builds the Calls ones); the JSON object."""
        return await self._call(prepared)

    async def list_resources(self, prepared: PreparedRequest, key: str) -> AsyncGenerator[dict[str, Any], None]:
        """The `key` items of a list request, following `next_page_uri` page by page (see
        `list_messages`: a page link outside this list, or seen before, is TwilioProtocolError)."""
        target = prepared.target()
        seen: set[str] = {target}
        pages = 0
        name = prepared.operation.value
        while True:
            page = _json_object(await self._send("GET", target, None), prepared.operation)
            pages += 1
            items = page.get(key)
            if not isinstance(items, list) or not all(isinstance(m, dict) for m in items):
                raise TwilioProtocolError(f"{name} page {pages}: {key!r} is not a list of objects")
            if isinstance(page.get("uri"), str):
                seen.add(page["uri"])
            for item in items:
                yield item
            next_uri = page.get("next_page_uri")
            if not next_uri:
                return
            if not isinstance(next_uri, str) or not next_uri.startswith(prepared.path + "?"):
                raise TwilioProtocolError(f"{name} page {pages}: next_page_uri is not a page of this list")
            if next_uri in seen:
                raise TwilioProtocolError(f"{name} page {pages}: next_page_uri repeats an earlier page")
            seen.add(next_uri)
            target = next_uri

    async def aclose(self) -> None:
        await self._transport.aclose()
