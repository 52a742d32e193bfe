"""One HTTP GET to SYSPRO (retried by sources.retrying), and the masking that keeps its URLs out of logs.

e.net puts the operator and company passwords and the session UserId in the query string, so
a URL must never reach a log line or an exception unmasked. `safe_url` is the one masking rule,
and ml_connector.logmask applies the same mask to the request lines httpx logs at INFO.
httpx exceptions are never re-raised: they carry the request and its URL.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Literal

import httpx

from ml_connector.core.redact import mask_url
from ml_connector.errors import SourceAuthError, SourceError, SourceUnavailable
from ml_connector.sources.retrying import RetryPolicy, TryAgain
from ml_connector.tls import tls_failure

log = logging.getLogger(__name__)


Action = Literal["ok", "retry", "auth", "missing", "error"]

#: HTTP status -> what to do. IIS answers 503 while an app pool recycles; e.net itself answers
#: 200 for business errors, which the caller inspects.
_STATUS_ACTIONS: Mapping[int, Action] = {401: "auth", 403: "auth", 404: "missing", 407: "auth"}
_RANGE_ACTIONS: tuple[tuple[range, Action], ...] = (
    (range(200, 300), "ok"),
    (range(500, 600), "retry"),
    (range(400, 500), "error"),
)


def status_action(status: int) -> Action:
    """The table lookup: exact codes first, then ranges; anything else is an error."""
    if status in _STATUS_ACTIONS:
        return _STATUS_ACTIONS[status]
    return next((action for codes, action in _RANGE_ACTIONS if status in codes), "error")


def safe_url(url: str | httpx.URL) -> str:
    """The URL with passwords, userinfo and the session UserId masked."""
    return mask_url(str(url))


async def get(
    http: httpx.AsyncClient,
    url: str,
    *,
    what: str,
    source: str,
    retries: int,
    retry_delay: float,
    hints: Mapping[Action, str],
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """GET, retried (full-jitter backoff) on network errors and 5xx; other failures become SourceErrors.

    `hints` adds a sentence per action ("auth", "missing", ...) telling the admin what to check.
    A 2xx response is returned for the caller to read; SYSPRO's business errors are never retried.
    """
    async def attempt(number: int) -> httpx.Response:
        try:
            response = await http.get(url, headers=headers)
        except httpx.HTTPError as exc:  # carries the URL: keep only its type, or the TLS cause
            tls = tls_failure(exc)
            failure = f"cannot reach SYSPRO ({type(exc).__name__}{': ' + tls if tls else ''})"
            raise TryAgain(SourceUnavailable(f"{what}: {failure} ({number} attempts)", source=source)) from None
        action = status_action(response.status_code)
        if action == "ok":
            return response
        if action != "retry":
            said = service_message(response)
            status = f"{what}: HTTP {response.status_code}" + (f" ({said})" if said else "")
            raise _error_for(action, status, hints, source)
        failure = f"SYSPRO's web server answered HTTP {response.status_code}"
        raise TryAgain(SourceUnavailable(f"{what}: {failure} ({number} attempts)", source=source))

    return await RetryPolicy(retries, retry_delay).run(attempt, source=source, what=what)


_URL_IN_TEXT = re.compile(r"https?://[^\s'\"]+")
_MESSAGE_CHARS = 300


def service_message(response: httpx.Response) -> str | None:
    """The service's own words from an OData error body (`{"error": {"message": ...}}`), URLs
    masked; None for anything else (HTTP.sys and IIS pages say no more than the status)."""
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = json.loads(response.content.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message.strip():
        return None
    masked = _URL_IN_TEXT.sub(lambda m: safe_url(m.group(0)), message.strip())
    return masked[:_MESSAGE_CHARS]


def _error_for(action: Action, message: str, hints: Mapping[Action, str], source: str) -> SourceError:
    hint = hints.get(action)
    text = f"{message}: {hint}" if hint else message
    return SourceAuthError(text, source=source) if action == "auth" else SourceError(text, source=source)
