"""The webhook app: Twilio's signed message status callbacks, a health check and metrics.

A status callback is checked in a fixed order and nothing is stored unless it is authentic
(invariant 6): header and body sizes, media type, the number of fields, form decoding, signature,
required fields, then the report is
stored in one short transaction (`Store.apply_statuses`, in a worker thread, together with the
reports that arrived meanwhile; see runtime.batching). Duplicates and out-of-order reports are the
store's business (invariant 5); here they are only counted.

The cheap checks come first so that a forged request costs little more than a real one: the
header block and the field count are measured before anything is decoded, sorted or hashed
(Twilio's status callbacks have a few dozen fields and a few headers; a 7,000-field body under
the size limit once cost a hundred times a normal callback before its 403).

The signature is checked against the configured public `status_callback_url`, never the URL
the request arrived at: a reverse proxy changes scheme, host and port, and Twilio signed what
it requested. Both trailing-slash spellings of that URL are served and accepted, without
redirects, since a redirected POST loses its body or its signature.

The status-callback route is a plain ASGI callable, and POSTs to its exact paths reach it
without Starlette's middleware, routing and Request objects (at thousands of callbacks a
second those cost more than the checks themselves); everything else, including other methods
on those paths, goes through the Starlette app, which routes to the same callable.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import unquote, urlsplit

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ml_connector.channels.signature import SIGNATURE_HEADER, compute_signature, url_port_variants
from ml_connector.core.models import StatusEvent
from ml_connector.core.redact import mask_phone
from ml_connector.errors import ConfigError, StoreUnavailable
from ml_connector.runtime.batching import Batcher
from ml_connector.store.port import ApplyResult, Store
from ml_connector.web.health import readiness_endpoint, store_problem
from ml_connector.web.metrics import WebhookMetrics

__all__ = ["CallbackResult", "WebhookApp", "create_webhook_app"]

log = logging.getLogger(__name__)

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_FORM_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})
_RESERVED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_SIGNATURE_KEY = SIGNATURE_HEADER.lower().encode("latin-1")

#: Form fields a status callback may carry. Twilio sends 10-30 (more with channel extras); an
#: inbound MMS with ten media items about 50.
DEFAULT_MAX_FIELDS = 200
#: Bytes of header names and values, and headers, a callback may carry (a browser sends ~1 KB,
#: Twilio less; common servers refuse beyond 8-16 KB).
DEFAULT_MAX_HEADER_BYTES = 16384
MAX_HEADERS = 100
#: Twilio error codes have five digits; nine always fit the store's 32-bit integer column.
MAX_ERROR_CODE_DIGITS = 9


class CallbackResult(StrEnum):
    """How one status callback ended; the `result` label of the callbacks counter."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    ORPHAN = "orphan"
    TOO_LARGE = "too_large"
    TOO_MANY_FIELDS = "too_many_fields"
    HEADERS_TOO_LARGE = "headers_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    MALFORMED = "malformed"                # undecodable before authentication
    UNSIGNED = "unsigned"
    UNKNOWN_ACCOUNT = "unknown_account"
    BAD_SIGNATURE = "bad_signature"
    INVALID_FIELDS = "invalid_fields"      # authentic, but MessageSid/MessageStatus/ErrorCode unusable
    STORE_ERROR = "store_error"
    STORE_UNAVAILABLE = "store_unavailable"  # the database is away: 503, Twilio retries later


# result -> (HTTP status, body). Twilio wants 200 and ignores the body; 5xx makes it retry.
_RESPONSES: Mapping[CallbackResult, tuple[int, str]] = {
    CallbackResult.APPLIED: (200, ""),
    CallbackResult.DUPLICATE: (200, ""),
    CallbackResult.STALE: (200, ""),
    CallbackResult.ORPHAN: (200, ""),
    CallbackResult.TOO_LARGE: (413, "request body too large\n"),
    CallbackResult.TOO_MANY_FIELDS: (413, "too many form fields\n"),
    CallbackResult.HEADERS_TOO_LARGE: (431, "request headers too large\n"),
    CallbackResult.UNSUPPORTED_MEDIA_TYPE: (415, f"expected {FORM_MEDIA_TYPE}\n"),
    CallbackResult.MALFORMED: (400, "malformed form body\n"),
    CallbackResult.UNSIGNED: (403, "forbidden\n"),
    CallbackResult.UNKNOWN_ACCOUNT: (403, "forbidden\n"),
    CallbackResult.BAD_SIGNATURE: (403, "forbidden\n"),
    CallbackResult.INVALID_FIELDS: (400, "MessageSid and MessageStatus required once; "
                                         f"ErrorCode a number of at most {MAX_ERROR_CODE_DIGITS} digits\n"),
    CallbackResult.STORE_ERROR: (500, "temporarily unable to record the status\n"),
    CallbackResult.STORE_UNAVAILABLE: (503, "store unavailable; retry later\n"),
}


def _raw_response(status: int, body: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """What PlainTextResponse(body, status) sends, built once."""
    payload = body.encode("utf-8")
    return status, [(b"content-length", str(len(payload)).encode()),
                    (b"content-type", b"text/plain; charset=utf-8")], payload


_RAW_RESPONSES = {result: _raw_response(*answer) for result, answer in _RESPONSES.items()}

_FROM_STORE: Mapping[ApplyResult, CallbackResult] = {
    ApplyResult.APPLIED: CallbackResult.APPLIED,
    ApplyResult.DUPLICATE: CallbackResult.DUPLICATE,
    ApplyResult.STALE: CallbackResult.STALE,
    ApplyResult.ORPHAN: CallbackResult.ORPHAN,
}


class _Rejected(Exception):
    """Stops a callback's handling with the given result."""

    def __init__(self, result: CallbackResult, why: str) -> None:
        super().__init__(why)
        self.result = result
        self.why = why


def _mask_sid(value: str) -> str:
    """Keep a SID's two-letter prefix and last four characters: enough to tell accounts apart."""
    return value[:2] + "…" + value[-4:] if len(value) > 8 else "***"


@dataclass(frozen=True, slots=True)
class _PublicUrl:
    """The configured public callback URL, split into what Twilio can sign."""

    bases: tuple[str, ...]   # scheme://authority/path, as configured and with the other slash
    query: str               # the configured query string, used when the request carries none
    route_paths: tuple[str, ...]

    @classmethod
    def parse(cls, url: str) -> _PublicUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            # The URL is not echoed: it may carry basic-auth credentials.
            raise ConfigError("status_callback_url must be an absolute http(s) URL, "
                              "such as https://connector.example.com/twilio/status")
        origin = url[: url.find("://") + 3] + parts.netloc  # userinfo: dropped when validating
        path = parts.path or "/"
        trimmed = path.rstrip("/")
        slash_variants = (path, trimmed + "/" if path == trimmed else trimmed or "")
        bases = tuple(dict.fromkeys(origin + p for p in slash_variants))
        route_paths = tuple(dict.fromkeys(unquote(p) or "/" for p in slash_variants))  # routes match decoded
        if _RESERVED_PATHS & set(route_paths):
            raise ConfigError(f"status_callback_url path {path!r} collides with /healthz or /metrics")
        return cls(bases=bases, query=parts.query, route_paths=route_paths)

    def candidates(self, request_query: str) -> tuple[str, ...]:
        """URLs Twilio may have signed: the fragment (connection overrides) is never sent."""
        query = request_query or self.query
        suffix = "?" + query if query else ""
        return tuple(base + suffix for base in self.bases)

    def signed_urls(self, request_query: str) -> tuple[str, ...]:
        """Every URL text a valid signature may cover: each candidate with and without its port.

        The same set `validate_signature` tries candidate by candidate, flattened so the check
        can stop at the first match; each candidate's own spelling comes first, as that is what
        Twilio was given and most likely signed.
        """
        urls: dict[str, None] = {}
        for candidate in self.candidates(request_query):
            variants = url_port_variants(candidate)
            urls.update(dict.fromkeys(sorted(variants, key=lambda variant: variant != candidate)))
        return tuple(urls)


def _check_media_type(content_type: str | None) -> None:
    media, *options = (content_type or "").split(";")
    charset = None
    for option in options:
        name, _, value = option.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if media.strip().lower() != FORM_MEDIA_TYPE or (charset is not None and charset not in _FORM_CHARSETS):
        raise _Rejected(CallbackResult.UNSUPPORTED_MEDIA_TYPE, f"content type {content_type!r}")


def _check_declared_length(content_length: str | None, limit: int) -> None:
    if content_length is None:
        return
    if not (content_length.isascii() and content_length.strip().isdigit()):
        raise _Rejected(CallbackResult.MALFORMED, "Content-Length is not a number")
    if int(content_length) > limit:
        raise _Rejected(CallbackResult.TOO_LARGE, f"Content-Length {int(content_length)} > {limit}")


class _Disconnected(Exception):
    """The client went away before its body arrived: nothing to answer, nothing stored."""


async def _read_capped(receive: Receive, limit: int) -> bytes:
    """The body, refusing to hold more than `limit` bytes whatever Content-Length claimed."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        if message["type"] != "http.request":
            continue
        body += message.get("body", b"")
        if len(body) > limit:
            raise _Rejected(CallbackResult.TOO_LARGE, f"body exceeds {limit} bytes")
        if not message.get("more_body", False):
            return bytes(body)


def _check_header_size(raw: Sequence[tuple[bytes, bytes]], limit: int) -> None:
    """Refuse a header block no Twilio callback has, before any header is decoded."""
    if len(raw) > MAX_HEADERS:
        raise _Rejected(CallbackResult.HEADERS_TOO_LARGE, f"{len(raw)} headers > {MAX_HEADERS}")
    size = sum(len(name) + len(value) for name, value in raw)
    if size > limit:
        raise _Rejected(CallbackResult.HEADERS_TOO_LARGE, f"headers of {size} bytes > {limit}")


def _check_field_count(body: bytes, limit: int) -> None:
    """Count fields by their separators (one C-level scan) before decoding, sorting or hashing."""
    fields = body.count(b"&") + 1 if body else 0
    if fields > limit:
        raise _Rejected(CallbackResult.TOO_MANY_FIELDS, f"more than {limit} form fields")


def _callback_headers(raw: Sequence[tuple[bytes, bytes]]) -> tuple[str | None, str | None, str | None]:
    """Content-Length, Content-Type and X-Twilio-Signature; the first of each when repeated."""
    length = media = signature = None
    for name, value in raw:
        if name == b"content-length":
            length = length if length is not None else value.decode("latin-1")
        elif name == b"content-type":
            media = media if media is not None else value.decode("latin-1")
        elif name == _SIGNATURE_KEY:
            signature = signature if signature is not None else value.decode("latin-1")
    return length, media, signature


def _unquote_plus(text: str) -> str:
    if "+" in text:
        text = text.replace("+", " ")
    return unquote(text, errors="strict") if "%" in text else text


def _decode_form(body: bytes) -> list[tuple[str, str]]:
    """The pairs `parse_qsl(body, keep_blank_values=True, strict_parsing=True, errors="strict")`
    gives, and the same errors, in two thirds of its time: it is called for every callback and
    most of its cost is per call (tests/web/test_form.py holds the two to the same answers)."""
    try:
        text = body.decode("utf-8")
        pairs = []
        for field in text.split("&") if text else ():
            name, equals, value = field.partition("=")
            if not equals:
                raise ValueError(f"bad query field: {field!r}")
            pairs.append((_unquote_plus(name), _unquote_plus(value)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Rejected(CallbackResult.MALFORMED, type(exc).__name__) from None
    return pairs


def _authenticate(
    pairs: Sequence[tuple[str, str]], signature: str | None, tokens: Mapping[str, str], urls: Sequence[str]
) -> None:
    """`urls` as from `_PublicUrl.signed_urls`: a match with any one authenticates the callback."""
    if not signature:
        raise _Rejected(CallbackResult.UNSIGNED, f"no {SIGNATURE_HEADER} header")
    accounts = {value for name, value in pairs if name == "AccountSid"}
    token = tokens.get(next(iter(accounts))) if len(accounts) == 1 else None
    if token is None:
        raise _Rejected(CallbackResult.UNKNOWN_ACCOUNT, "AccountSid missing, repeated or not configured")
    given = signature.encode("utf-8")
    if not any(hmac.compare_digest(compute_signature(token, url, pairs).encode("ascii"), given) for url in urls):
        raise _Rejected(CallbackResult.BAD_SIGNATURE, "signature does not match")


def _single(pairs: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [value for key, value in pairs if key == name]
    return values[0] if len(values) == 1 else None


def _status_event(pairs: Sequence[tuple[str, str]], received_at: datetime) -> StatusEvent:
    message_sid = _single(pairs, "MessageSid")
    message_status = _single(pairs, "MessageStatus")
    error_code = _single(pairs, "ErrorCode") or ""
    if not message_sid or not message_status:
        raise _Rejected(CallbackResult.INVALID_FIELDS, "MessageSid or MessageStatus missing or repeated")
    if error_code and not (error_code.isascii() and error_code.isdigit()):
        raise _Rejected(CallbackResult.INVALID_FIELDS, "ErrorCode is not a number")
    if len(error_code.lstrip("0")) > MAX_ERROR_CODE_DIGITS:
        raise _Rejected(CallbackResult.INVALID_FIELDS, f"ErrorCode has more than {MAX_ERROR_CODE_DIGITS} digits")
    raw: dict[str, str] = {}
    for name, value in pairs:  # a repeated key keeps its first value
        raw.setdefault(name, value)
    return StatusEvent(
        provider_id=message_sid,
        provider_status=message_status,
        error_code=int(error_code.lstrip("0") or "0") if error_code else None,
        received_at=received_at,
        raw=raw,
    )


def _masked_context(scope: Scope, pairs: Sequence[tuple[str, str]]) -> str:
    fields = dict(pairs[::-1])  # first value wins
    client = scope["client"][0] if scope.get("client") else "?"
    return (
        f"client={client} account={_mask_sid(fields.get('AccountSid', ''))} "
        f"message={fields.get('MessageSid', '-')[:40]!r} to={mask_phone(fields.get('To', ''))}"
    )


class _StatusCallbacks:
    """The status-callback endpoint as a plain ASGI app: checks, store, metrics, answer."""

    def __init__(self, *, batcher: Batcher[StatusEvent, ApplyResult], tokens: Mapping[str, str],
                 public: _PublicUrl, max_body_bytes: int, max_fields: int, max_header_bytes: int,
                 now: Callable[[], datetime], metrics: WebhookMetrics) -> None:
        self._batcher = batcher
        self._tokens = tokens
        self._public = public
        self._default_urls = public.signed_urls("")  # the usual case: Twilio adds no query string
        self._max_body_bytes = max_body_bytes
        self._max_fields = max_fields
        self._max_header_bytes = max_header_bytes
        self._now = now
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            result = await self._handle(scope, receive)
        except _Disconnected:
            log.debug("status callback abandoned: the client disconnected before sending its body")
            return
        self._metrics.observe(result.value, time.perf_counter() - started)
        status, headers, body = _RAW_RESPONSES[result]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: Scope, receive: Receive) -> CallbackResult:
        pairs: list[tuple[str, str]] = []
        try:
            _check_header_size(scope["headers"], self._max_header_bytes)
            length, media, signature = _callback_headers(scope["headers"])
            _check_declared_length(length, self._max_body_bytes)
            _check_media_type(media)
            body = await _read_capped(receive, self._max_body_bytes)
            _check_field_count(body, self._max_fields)
            pairs = _decode_form(body)
            query = scope.get("query_string", b"").decode("latin-1")
            urls = self._public.signed_urls(query) if query else self._default_urls
            _authenticate(pairs, signature, self._tokens, urls)
            event = _status_event(pairs, self._now())
        except _Rejected as rejected:
            log.warning("status callback rejected (%s: %s) %s",
                        rejected.result.value, rejected.why, _masked_context(scope, pairs))
            return rejected.result
        try:
            applied = await self._batcher.apply(event)  # answered once the report is durable
        except StoreUnavailable:  # logged once per outage by the store, not once per callback
            return CallbackResult.STORE_UNAVAILABLE
        except Exception:
            log.exception("status callback not recorded: store failed for message %s", event.provider_id)
            return CallbackResult.STORE_ERROR
        return _FROM_STORE[applied]


class WebhookApp:
    """ASGI entry point: POSTs to the status-callback paths go straight to the endpoint.

    Only when the scope carries no root_path, so that the path compared is the one Starlette
    would route on; every other request (GET /metrics, a GET on the callback path: 405) is
    Starlette's, whose router sends callback POSTs to the same endpoint.
    """

    def __init__(self, callbacks: _StatusCallbacks, paths: Sequence[str], fallback: Starlette) -> None:
        self._callbacks = callbacks
        self._paths = frozenset(paths)
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self._paths
                and not scope.get("root_path")):
            await self._callbacks(scope, receive, send)
        else:
            await self.fallback(scope, receive, send)


def create_webhook_app(
    *,
    store: Store,
    auth_tokens: Mapping[str, str],
    status_callback_url: str,
    max_body_bytes: int = 65536,
    max_fields: int = DEFAULT_MAX_FIELDS,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    clock: Callable[[], datetime] | None = None,
    registry: CollectorRegistry | None = None,
    extra_routes: Sequence[Route] = (),
) -> WebhookApp:
    """The ASGI app Twilio posts status callbacks to.

    `auth_tokens` maps each AccountSid to its Auth Token: the callback's own AccountSid picks
    the key. `status_callback_url` is the public URL given to Twilio as StatusCallback; the app
    serves its path (with and without a trailing slash) and validates signatures against it.
    `max_body_bytes`, `max_fields` and `max_header_bytes` bound what one request may cost before
    it is authenticated. `clock` stamps `received_at` (aware); `registry` receives the metrics (a
    fresh one if None); `extra_routes` are the other signed endpoints (inbound messages).
    """
    if not auth_tokens:
        raise ConfigError("webhooks need at least one AccountSid -> Auth Token")
    if max_body_bytes <= 0:
        raise ConfigError(f"max_body_bytes must be positive, got {max_body_bytes}")
    if max_fields <= 0 or max_header_bytes <= 0:
        raise ConfigError(f"max_fields and max_header_bytes must be positive, got {max_fields}, {max_header_bytes}")
    public = _PublicUrl.parse(status_callback_url)
    metrics = WebhookMetrics([result.value for result in CallbackResult], registry)
    callbacks = _StatusCallbacks(
        batcher=Batcher(store.apply_statuses, store.apply_status),
        tokens=dict(auth_tokens),
        public=public,
        max_body_bytes=max_body_bytes,
        max_fields=max_fields,
        max_header_bytes=max_header_bytes,
        now=clock if clock is not None else (lambda: datetime.now(UTC)),
        metrics=metrics,
    )

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    routes = [Route(path, callbacks, methods=["POST"]) for path in public.route_paths]
    routes.append(Route("/healthz", healthz, methods=["GET"]))
    routes.append(Route("/readyz", readiness_endpoint(store_problem(store)), methods=["GET"]))
    routes.append(Route("/metrics", metrics.endpoint, methods=["GET"]))
    routes.extend(extra_routes)  # the other signed endpoints: inbound texts, voice, SendGrid events
    fallback = Starlette(routes=routes)
    fallback.router.redirect_slashes = False
    return WebhookApp(callbacks, public.route_paths, fallback)
