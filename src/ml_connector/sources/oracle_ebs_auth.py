"""Oracle EBS ISG authentication as an httpx Auth flow: Basic on every call, or an ICX session.

Session mode: `GET /webservices/rest/login` with Basic credentials returns `accessTokenName`
(the ICX session cookie's name, usually the database SID) and `accessToken`; every call then
carries `Cookie: <accessTokenName>=<accessToken>`. A 401 means the ICX session expired (profile
"ICX: Session Timeout"): log in again once and repeat the request, also in the middle of paging.
Tokens and passwords never reach a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from typing import Any

import httpx

from ml_connector import safexml
from ml_connector.errors import SourceAuthError, SourcePayloadError, SourceUnavailable

LOGIN_PATH = "/webservices/rest/login"
LOGOUT_PATH = "/webservices/rest/logout"


def basic_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class EbsSession:
    cookie_name: str
    token: str
    ebs_version: str | None
    user_name: str | None

    def __repr__(self) -> str:  # the token is a credential
        return f"EbsSession(cookie_name={self.cookie_name!r}, user_name={self.user_name!r})"


def parse_login(response: httpx.Response, source: str) -> EbsSession:
    """Read the login answer, JSON (`{"response":{"data":{...}}}`) or its XML twin."""
    data: dict[str, Any] = {}
    text = response.text
    try:
        if text.lstrip().startswith("<"):
            root = safexml.parse(text)
            node = root.find(".//data")
            data = {child.tag: (child.text or "") for child in (node if node is not None else [])}
        else:
            body = json.loads(text)
            data = body.get("response", {}).get("data", {}) if isinstance(body, dict) else {}
    except safexml.XmlRefused as exc:
        raise SourcePayloadError(f"login response: {exc}", source=source) from None
    except (ValueError, AttributeError):
        raise SourcePayloadError("login answered something that is neither the JSON nor the XML "
                                 "login response", source=source) from None
    name, token = data.get("accessTokenName"), data.get("accessToken")
    if not name or not token:
        raise SourcePayloadError("login response has no accessTokenName/accessToken", source=source)
    return EbsSession(str(name), str(token), data.get("ebsVersion"), data.get("userName"))


class EbsAuth(httpx.Auth):
    """Basic on every call (`session=False`) or an ICX session cookie renewed once on 401."""

    requires_response_body = True

    def __init__(self, base_url: str, username: str, password: str, *, session: bool, source: str) -> None:
        self._base_url = base_url.rstrip("/")
        self._basic = basic_header(username, password)
        self._use_session = session
        self._source = source
        self._lock = asyncio.Lock()
        self.session: EbsSession | None = None
        self.logins = 0

    def __repr__(self) -> str:
        return f"EbsAuth(session={self._use_session})"

    def _login_request(self) -> httpx.Request:
        return httpx.Request("GET", self._base_url + LOGIN_PATH,
                             headers={"Authorization": self._basic, "Accept": "application/json"})

    def _apply(self, request: httpx.Request) -> None:
        if self.session is None:
            request.headers["Authorization"] = self._basic
        else:
            request.headers["Cookie"] = f"{self.session.cookie_name}={self.session.token}"

    def _accept_login(self, response: httpx.Response) -> None:
        if response.status_code == 401:
            raise SourceAuthError("login refused: wrong user name or password (HTTP 401)",
                                  source=self._source)
        if response.status_code == 404:
            raise SourceAuthError("login service not found (HTTP 404): is ISG REST deployed at this URL?",
                                  source=self._source)
        if response.status_code >= 500:
            raise SourceUnavailable(f"login answered HTTP {response.status_code}", source=self._source)
        if response.status_code >= 400:
            raise SourceAuthError(f"login failed with HTTP {response.status_code}", source=self._source)
        self.session = parse_login(response, self._source)
        self.logins += 1

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("EbsAuth is async-only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._use_session:
            self._apply(request)
            yield request
            return
        used = self.session
        if used is None:
            async with self._lock:
                if self.session is None:
                    response = yield self._login_request()
                    await response.aread()
                    self._accept_login(response)
                used = self.session
        self._apply(request)
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()
        async with self._lock:
            if self.session is used:  # nobody renewed it meanwhile: log in again, once
                self.session = None
                login = yield self._login_request()
                await login.aread()
                self._accept_login(login)
        self._apply(request)
        yield request

    def logout_request(self) -> httpx.Request | None:
        if self.session is None:
            return None
        request = httpx.Request("GET", self._base_url + LOGOUT_PATH)
        self._apply(request)
        self.session = None
        return request
