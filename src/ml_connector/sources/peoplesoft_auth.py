"""PeopleSoft REST authentication as httpx Auth flows: Basic (OPRID/password) or an OAuth2 bearer.

Basic works on every PeopleTools release: the OPRID's permission lists must hold each service
operation. OAuth2 (PeopleTools 8.59+, 8.58 for a few delivered cases): PeopleSoft is only the
resource server, the token comes from the customer's identity provider by the client-credentials
grant (RFC 6749 §4.4). The token is cached, fetched again shortly before `expires_in` runs out,
and once more when PeopleSoft answers 401. An IdP refusal is a `TokenError` carrying the RFC 6749
error code, so `check` can tell it apart from PeopleSoft's own 401. Secrets and tokens never
reach a log line, a repr or an exception message.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

import httpx

from ml_connector.errors import SourceAuthError, SourceUnavailable

#: RFC 6749 §5.2 error codes, in words an administrator can act on.
TOKEN_ERRORS: dict[str, str] = {
    "invalid_client": "the identity provider does not know this client id or the client secret is wrong",
    "invalid_grant": "the identity provider refused the grant",
    "unauthorized_client": "this client may not use the client-credentials grant: enable it for the "
                           "application in the identity provider",
    "unsupported_grant_type": "the identity provider does not support the client-credentials grant at this "
                              "token URL",
    "invalid_scope": "the requested scope is not granted to this client (check `scope`)",
    "invalid_request": "the identity provider rejected the token request as malformed",
}


class TokenError(SourceAuthError):
    """The identity provider refused to issue a token (not PeopleSoft)."""

    def __init__(self, code: str, message: str, *, source: str | None = None) -> None:
        self.code = code
        super().__init__(message, source=source)


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class PsBasicAuth(httpx.Auth):
    """OPRID and password on every call."""

    def __init__(self, user: str, password: str) -> None:
        self._header = basic_header(user, password)

    def __repr__(self) -> str:
        return "PsBasicAuth()"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("PsBasicAuth is async-only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = self._header
        yield request


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: datetime

    def __repr__(self) -> str:
        return f"_Token(refresh_at={self.refresh_at.isoformat()})"


class PsOAuth2Auth(httpx.Auth):
    """Client-credentials bearer tokens from the customer's IdP, cached and refreshed."""

    requires_response_body = True

    def __init__(self, token_url: str, client_id: str, client_secret: str, *, scope: str | None,
                 audience: str | None, client_auth: str, refresh_before: timedelta,
                 clock: Callable[[], datetime], source: str) -> None:
        self._token_url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._scope, self._audience, self._client_auth = scope, audience, client_auth
        self._refresh_before = refresh_before
        self._clock = clock
        self._source = source
        self._lock = asyncio.Lock()
        self._token: _Token | None = None
        self.tokens = 0

    def __repr__(self) -> str:
        return f"PsOAuth2Auth(client_id={self._client_id!r})"

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        if self._audience:
            form["audience"] = self._audience
        headers = {"Accept": "application/json"}
        if self._client_auth == "basic":  # RFC 6749 §2.3.1: form-encode, then Basic
            headers["Authorization"] = basic_header(quote(self._client_id, safe=""), quote(self._secret, safe=""))
        else:
            form |= {"client_id": self._client_id, "client_secret": self._secret}
        return httpx.Request("POST", self._token_url, data=form, headers=headers)

    def _accept(self, response: httpx.Response) -> None:
        if response.status_code >= 500:
            raise SourceUnavailable(f"identity provider answered HTTP {response.status_code}", source=self._source)
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TokenError("invalid_response", f"identity provider answered HTTP {response.status_code} without "
                             "a JSON token response: is token_url right?", source=self._source)
        if response.status_code >= 400 or "error" in body:
            code = str(body.get("error") or f"HTTP {response.status_code}")
            words = TOKEN_ERRORS.get(code, "the identity provider refused the token request")
            detail = str(body.get("error_description") or "")[:200]
            raise TokenError(code, f"identity provider refused the token request: {code}: {words}"
                             + (f" ({detail})" if detail else ""), source=self._source)
        token, kind = body.get("access_token"), str(body.get("token_type", "Bearer"))
        if not isinstance(token, str) or not token or kind.lower() != "bearer":
            raise TokenError("invalid_response", "identity provider answered without a bearer access_token",
                             source=self._source)
        try:
            lifetime = timedelta(seconds=float(body.get("expires_in", 3600)))
        except (TypeError, ValueError):
            lifetime = timedelta(seconds=3600)
        margin = min(self._refresh_before, lifetime / 2)
        self._token = _Token(token, self._clock() + lifetime - margin)
        self.tokens += 1

    def _valid(self) -> _Token | None:
        token = self._token
        return token if token is not None and self._clock() < token.refresh_at else None

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("PsOAuth2Auth is async-only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        used = self._valid()
        if used is None:
            async with self._lock:
                used = self._valid()
                if used is None:
                    response = yield self._token_request()
                    await response.aread()
                    self._accept(response)
                    used = self._token
        assert used is not None  # noqa: S101 - _accept sets it or raises
        request.headers["Authorization"] = f"Bearer {used.value}"
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()
        async with self._lock:
            if self._token is used:  # nobody refreshed it meanwhile: once more
                self._token = None
                fresh = yield self._token_request()
                await fresh.aread()
                self._accept(fresh)
            current = self._token
        assert current is not None  # noqa: S101
        request.headers["Authorization"] = f"Bearer {current.value}"
        yield request
