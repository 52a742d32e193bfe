"""One HTTP exchange with SAP Gateway: client and language, the security session, CSRF, errors.

* ``sap-client`` and ``sap-language`` go on every request (query parameters), next links too.
* Sessions: the first request logs on with Basic; Gateway answers with its security session
  cookies (``SAP_SESSIONID_<SID>_<client>``, ``sap-usercontext``), which later requests send
  instead of the password. When the session is gone (401, or ICF's 400 "Session not found" /
  "Session Timed Out"), the cookies are dropped and the request is sent once more with Basic.
* CSRF, for writes only: a token fetched with ``x-csrf-token: Fetch`` on a GET of the service
  root, sent with the same session's cookies on POST/PUT/MERGE/DELETE; a 403 "CSRF token
  validation failed" (the token died with its session) fetches a new one and retries once.
* Errors: SAP's error JSON and its Atom/XML form become `GatewayError`s naming the service,
  entity set, HTTP status, SAP's message and transaction id. 5xx (but 501) and connection
  errors are retried by the shared policy (sources.retrying); 4xx are not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ml_connector import safexml
from ml_connector.core.redact import mask_url
from ml_connector.errors import SourceAuthError, SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.sources.retrying import RetryPolicy, TryAgain

log = logging.getLogger(__name__)

_SESSION_COOKIES = ("SAP_SESSIONID", "MYSAPSSO2")
_SESSION_LOST = ("session not found", "session timed out", "session timeout", "session no longer exists")
_CSRF_FAILED = "csrf token validation failed"
_DATASERVICES_META = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
_MESSAGE_CHARS = 400


@dataclass(frozen=True, slots=True)
class SapMessage:
    """What SAP said in an error body."""

    code: str = ""
    text: str = ""
    transaction: str = ""
    details: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [self.text or "no message"]
        extra = [d for d in self.details if d and d != self.text]
        if extra:
            parts.append("; ".join(extra))
        if self.code:
            parts.append(f"code {self.code}")
        if self.transaction:
            parts.append(f"transaction {self.transaction} in /IWFND/ERROR_LOG")
        return " - ".join(parts)[:_MESSAGE_CHARS]


class GatewayError(SourceError):
    """Gateway refused a request (4xx): not retried. `status` and `sap` keep what it said."""

    def __init__(self, message: str, *, source: str | None, status: int, sap: SapMessage) -> None:
        self.status = status
        self.sap = sap
        super().__init__(message, source=source)


class GatewayAuthError(SourceAuthError):
    """401/403 from Gateway: credentials, client or authorisation; `csrf` when the CSRF token failed."""

    def __init__(self, message: str, *, source: str | None, csrf: bool = False) -> None:
        self.csrf = csrf
        super().__init__(message, source=source)


class NotImplementedByService(GatewayError):
    """HTTP 501: the service developer did not implement this (e.g. $skip, GET_ENTITYSET)."""


def _json_message(body: Any) -> SapMessage | None:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    message = error.get("message")
    text = message.get("value") if isinstance(message, dict) else message
    inner_raw = error.get("innererror")
    inner: dict[str, Any] = inner_raw if isinstance(inner_raw, dict) else {}
    details = tuple(str(d.get("message", "")) for d in inner.get("errordetails") or [] if isinstance(d, dict))
    return SapMessage(code=str(error.get("code") or ""), text=str(text or "").strip(),
                      transaction=str(inner.get("transactionid") or ""), details=details)


def _xml_message(content: bytes) -> SapMessage | None:
    try:
        root = safexml.parse(content)
    except safexml.XmlError:
        return None
    if root.tag.rsplit("}", 1)[-1] != "error":
        return None

    def text_of(element: safexml.Element | None, name: str) -> str:
        if element is None:
            return ""
        found = element.find(f"{{{_DATASERVICES_META}}}{name}")
        if found is None:
            found = element.find(name)
        return (found.text or "").strip() if found is not None else ""

    inner = root.find(f"{{{_DATASERVICES_META}}}innererror")
    if inner is None:
        inner = root.find("innererror")
    details: tuple[str, ...] = ()
    if inner is not None:
        details = tuple((d.text or "").strip() for d in inner.iter()
                        if d.tag.rsplit("}", 1)[-1] == "message" and d.text)
    return SapMessage(code=text_of(root, "code"), text=text_of(root, "message"),
                      transaction=text_of(inner, "transactionid"), details=details)


def sap_message(response: httpx.Response) -> SapMessage:
    """SAP's error text from a JSON or Atom/XML body; an empty message for HTML pages."""
    content = response.content
    head = content.lstrip()[:1]
    if head == b"{":
        try:
            found = _json_message(json.loads(content.decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            found = None
        if found is not None:
            return found
    if head == b"<":
        found = _xml_message(content)
        if found is not None:
            return found
    if response.headers.get("content-type", "").startswith("text/plain"):
        return SapMessage(text=content[:_MESSAGE_CHARS].decode("utf-8", "replace").strip())
    return SapMessage()


class GatewayClient:
    """Requests to one SAP system through one httpx client (its cookie jar is the session)."""

    def __init__(self, http: httpx.AsyncClient, *, username: str, password: str, client: str, language: str,
                 source: str, retries: int, retry_delay: float) -> None:
        self._http = http
        self._basic = httpx.BasicAuth(username, password)
        self._params = {"sap-client": client, "sap-language": language}
        self._source = source
        self._retries = retries
        self._retry_delay = retry_delay
        self._csrf: str | None = None
        self.client = client
        self.username = username

    @property
    def has_session(self) -> bool:
        return any(cookie.name.startswith(_SESSION_COOKIES) for cookie in self._http.cookies.jar)

    def session_client(self) -> str | None:
        """The client Gateway put into ``sap-usercontext`` (``sap-client=100``), if any."""
        for cookie in self._http.cookies.jar:
            if cookie.name == "sap-usercontext" and cookie.value:
                value = cookie.value.strip('"').replace("%3d", "=").replace("%3D", "=")
                for part in httpx.QueryParams(value).multi_items():
                    if part[0] == "sap-client":
                        return part[1]
        return None

    def _url(self, url: str) -> httpx.URL:
        target = httpx.URL(url)
        params = target.params
        for name, value in self._params.items():
            if name not in params:
                params = params.set(name, value)
        return target.copy_with(params=params)

    async def get(self, url: str, *, what: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """GET with session reuse and backoff; a 2xx response, else a typed SourceError."""
        return await self._request("GET", url, what=what, headers=headers)

    async def write(self, method: str, url: str, *, what: str, body: Mapping[str, Any],
                    csrf_root: str) -> httpx.Response:
        """POST/PUT/MERGE/DELETE with a CSRF token (fetched on `csrf_root` when there is none);
        one refetch and one retry when Gateway says the token failed validation."""
        for attempt in (1, 2):
            if self._csrf is None:
                await self._fetch_csrf(csrf_root, what=what)
            try:
                return await self._request(method, url, what=what, json_body=body,
                                           headers={"x-csrf-token": self._csrf or ""})
            except GatewayAuthError as exc:
                if attempt == 2 or not exc.csrf:
                    raise
                log.info("%s: %s: CSRF token refused; fetching a new one", self._source, what)
                self._csrf = None
        raise AssertionError("unreachable")

    async def _fetch_csrf(self, root: str, *, what: str) -> None:
        response = await self._request("GET", root, what=f"{what} (CSRF token)", headers={"x-csrf-token": "Fetch"})
        token = response.headers.get("x-csrf-token")
        if not token or token.lower() in ("required", "unsafe"):
            raise SourcePayloadError(f"{what}: Gateway sent no CSRF token on x-csrf-token: Fetch", source=self._source)
        self._csrf = token

    async def _request(self, method: str, url: str, *, what: str, headers: Mapping[str, str] | None = None,
                       json_body: Mapping[str, Any] | None = None) -> httpx.Response:
        relogged = False

        async def attempt(number: int) -> httpx.Response:
            nonlocal relogged
            while True:  # at most twice: once more after logging on again, which is no retry
                send_headers = {"Accept": "application/json", **(headers or {})}
                with_session = self.has_session
                try:
                    response = await self._http.request(
                        method, self._url(url), headers=send_headers, json=json_body,
                        auth=httpx.USE_CLIENT_DEFAULT if with_session else self._basic)
                except httpx.HTTPError as exc:  # carries the URL: keep only its type
                    raise TryAgain(SourceUnavailable(
                        f"{what}: cannot reach SAP Gateway ({type(exc).__name__}) ({number} attempts)",
                        source=self._source)) from None
                status = response.status_code
                if 200 <= status < 300:
                    return response
                said = sap_message(response)
                if with_session and not relogged and self._session_lost(status, said, response.content):
                    log.info("%s: %s: Gateway session gone (HTTP %d); logging on again", self._source, what, status)
                    self._http.cookies.clear()
                    self._csrf = None
                    relogged = True
                    continue
                if status >= 500 and status != 501:
                    failure = f"Gateway answered HTTP {status}" + (f" ({said.describe()})" if said.text else "")
                    raise TryAgain(SourceUnavailable(f"{what}: {failure} ({number} attempts)", source=self._source))
                required = response.headers.get("x-csrf-token", "").lower() == "required"
                raise self._error(status, said, what, csrf_required=required)

        return await RetryPolicy(self._retries, self._retry_delay).run(attempt, source=self._source, what=what)

    @staticmethod
    def _session_lost(status: int, said: SapMessage, content: bytes) -> bool:
        """401, or ICF's 400 "Session not found"/"Session Timed Out" (in an error body or a page)."""
        if status == 401:
            return True
        text = (said.text or content[:2000].decode("utf-8", "replace")).lower()
        return status == 400 and any(phrase in text for phrase in _SESSION_LOST)

    def _error(self, status: int, said: SapMessage, what: str, *, csrf_required: bool = False) -> SourceError:
        text = f"{what}: HTTP {status}: {said.describe()}" if said.text else f"{what}: HTTP {status}"
        if status == 401:
            return GatewayAuthError(
                f"{text}: Gateway refused the logon of user {self.username} in client {self.client}. "
                "A wrong password, a locked user (SU01) and a client that does not exist all look "
                "like this 401", source=self._source)
        if status == 403:
            csrf = csrf_required or _CSRF_FAILED in said.text.lower()
            hint = ("the CSRF token was not accepted" if csrf else
                    f"user {self.username} lacks the authorisation for this service (role with S_SERVICE, "
                    "check /IWFND/ERROR_LOG and SU53)")
            return GatewayAuthError(f"{text}: {hint}", source=self._source, csrf=csrf)
        if status == 501:
            return NotImplementedByService(f"{text}: not implemented by the service", source=self._source,
                                           status=status, sap=said)
        if status == 404:
            return GatewayError(f"{text}: not found: is the service active (/IWFND/MAINT_SERVICE) and the "
                                "service root and entity set spelt as in SEGW?", source=self._source,
                                status=status, sap=said)
        return GatewayError(text, source=self._source, status=status, sap=said)


def safe_url(url: str | httpx.URL) -> str:
    return mask_url(str(url))
