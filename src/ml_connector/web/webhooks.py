"""The webhook app: Twilio's signed message status callbacks, a health check and metrics.

A status callback is checked in a fixed order and nothing is stored unless it is authentic
(invariant 6): size, media type, form decoding, signature, required fields, then the report is
stored in one short transaction (`Store.apply_statuses`, in a worker thread, together with the
reports that arrived meanwhile; see runtime.batching). Duplicates and out-of-order reports are the
store's business (invariant 5); here they are only counted.

The signature is checked against the configured public `status_callback_url`, never the URL
the request arrived at: a reverse proxy changes scheme, host and port, and Twilio signed what
it requested. Both trailing-slash spellings of that URL are served and accepted, without
redirects, since a redirected POST loses its body or its signature.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import parse_qsl, unquote, urlsplit

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ml_connector.channels.signature import SIGNATURE_HEADER, validate_signature
from ml_connector.core.models import StatusEvent
from ml_connector.core.redact import mask_phone
from ml_connector.errors import ConfigError
from ml_connector.runtime.batching import Batcher
from ml_connector.store.port import ApplyResult, Store
from ml_connector.web.metrics import WebhookMetrics

__all__ = ["CallbackResult", "create_webhook_app"]

log = logging.getLogger(__name__)

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_FORM_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})
_RESERVED_PATHS = frozenset({"/healthz", "/metrics"})


class CallbackResult(StrEnum):
    """How one status callback ended; the `result` label of the callbacks counter."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    ORPHAN = "orphan"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    MALFORMED = "malformed"                # undecodable before authentication
    UNSIGNED = "unsigned"
    UNKNOWN_ACCOUNT = "unknown_account"
    BAD_SIGNATURE = "bad_signature"
    INVALID_FIELDS = "invalid_fields"      # authentic, but MessageSid/MessageStatus/ErrorCode unusable
    STORE_ERROR = "store_error"


# result -> (HTTP status, body). Twilio wants 200 and ignores the body; 5xx makes it retry.
_RESPONSES: Mapping[CallbackResult, tuple[int, str]] = {
    CallbackResult.APPLIED: (200, ""),
    CallbackResult.DUPLICATE: (200, ""),
    CallbackResult.STALE: (200, ""),
    CallbackResult.ORPHAN: (200, ""),
    CallbackResult.TOO_LARGE: (413, "request body too large\n"),
    CallbackResult.UNSUPPORTED_MEDIA_TYPE: (415, f"expected {FORM_MEDIA_TYPE}\n"),
    CallbackResult.MALFORMED: (400, "malformed form body\n"),
    CallbackResult.UNSIGNED: (403, "forbidden\n"),
    CallbackResult.UNKNOWN_ACCOUNT: (403, "forbidden\n"),
    CallbackResult.BAD_SIGNATURE: (403, "forbidden\n"),
    CallbackResult.INVALID_FIELDS: (400, "MessageSid and MessageStatus required once; ErrorCode numeric\n"),
    CallbackResult.STORE_ERROR: (500, "temporarily unable to record the status\n"),
}

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


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, refusing to hold more than `limit` bytes whatever Content-Length claimed."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _Rejected(CallbackResult.TOO_LARGE, f"body exceeds {limit} bytes")
    return bytes(body)


def _decode_form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Rejected(CallbackResult.MALFORMED, type(exc).__name__) from None


def _authenticate(
    pairs: Sequence[tuple[str, str]], signature: str | None, tokens: Mapping[str, str], urls: Sequence[str]
) -> None:
    if not signature:
        raise _Rejected(CallbackResult.UNSIGNED, f"no {SIGNATURE_HEADER} header")
    accounts = {value for name, value in pairs if name == "AccountSid"}
    token = tokens.get(next(iter(accounts))) if len(accounts) == 1 else None
    if token is None:
        raise _Rejected(CallbackResult.UNKNOWN_ACCOUNT, "AccountSid missing, repeated or not configured")
    if not any(validate_signature(token, url, pairs, signature) for url in urls):
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
    raw: dict[str, str] = {}
    for name, value in pairs:  # a repeated key keeps its first value
        raw.setdefault(name, value)
    return StatusEvent(
        provider_id=message_sid,
        provider_status=message_status,
        error_code=int(error_code) if error_code else None,
        received_at=received_at,
        raw=raw,
    )


def _masked_context(request: Request, pairs: Sequence[tuple[str, str]]) -> str:
    fields = dict(pairs[::-1])  # first value wins
    client = request.client.host if request.client else "?"
    return (
        f"client={client} account={_mask_sid(fields.get('AccountSid', ''))} "
        f"message={fields.get('MessageSid', '-')[:40]!r} to={mask_phone(fields.get('To', ''))}"
    )


def create_webhook_app(
    *,
    store: Store,
    auth_tokens: Mapping[str, str],
    status_callback_url: str,
    max_body_bytes: int = 65536,
    clock: Callable[[], datetime] | None = None,
    registry: CollectorRegistry | None = None,
) -> Starlette:
    """The ASGI app Twilio posts status callbacks to.

    `auth_tokens` maps each AccountSid to its Auth Token: the callback's own AccountSid picks
    the key. `status_callback_url` is the public URL given to Twilio as StatusCallback; the app
    serves its path (with and without a trailing slash) and validates signatures against it.
    `clock` stamps `received_at` (aware); `registry` receives the metrics (a fresh one if None).
    """
    if not auth_tokens:
        raise ConfigError("webhooks need at least one AccountSid -> Auth Token")
    if max_body_bytes <= 0:
        raise ConfigError(f"max_body_bytes must be positive, got {max_body_bytes}")
    public = _PublicUrl.parse(status_callback_url)
    tokens = dict(auth_tokens)
    now = clock if clock is not None else (lambda: datetime.now(UTC))
    metrics = WebhookMetrics([result.value for result in CallbackResult], registry)
    batcher: Batcher[StatusEvent, ApplyResult] = Batcher(store.apply_statuses, store.apply_status)

    async def handle(request: Request) -> CallbackResult:
        pairs: list[tuple[str, str]] = []
        try:
            _check_declared_length(request.headers.get("content-length"), max_body_bytes)
            _check_media_type(request.headers.get("content-type"))
            pairs = _decode_form(await _read_capped(request, max_body_bytes))
            query = request.scope.get("query_string", b"").decode("latin-1")
            _authenticate(pairs, request.headers.get(SIGNATURE_HEADER), tokens, public.candidates(query))
            event = _status_event(pairs, now())
        except _Rejected as rejected:
            log.warning("status callback rejected (%s: %s) %s",
                        rejected.result.value, rejected.why, _masked_context(request, pairs))
            return rejected.result
        try:
            applied = await batcher.apply(event)  # answered once the report is durable
        except Exception:
            log.exception("status callback not recorded: store failed for message %s", event.provider_id)
            return CallbackResult.STORE_ERROR
        return _FROM_STORE[applied]

    async def status_callback(request: Request) -> Response:
        started = time.perf_counter()
        result = await handle(request)
        metrics.observe(result.value, time.perf_counter() - started)
        status, body = _RESPONSES[result]
        return PlainTextResponse(body, status_code=status)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    routes = [Route(path, status_callback, methods=["POST"]) for path in public.route_paths]
    routes.append(Route("/healthz", healthz, methods=["GET"]))
    routes.append(Route("/metrics", metrics.endpoint, methods=["GET"]))
    app = Starlette(routes=routes)
    app.router.redirect_slashes = False
    return app
