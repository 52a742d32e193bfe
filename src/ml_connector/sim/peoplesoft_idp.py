"""A small OAuth2 identity provider (the IDCS / Azure AD / Okta role) for the PeopleSoft simulator.

PeopleSoft 8.59+ is only a resource server: the customer's IdP issues the bearer tokens. This one
serves the client-credentials grant at ``POST /oauth2/v1/token`` (RFC 6749 §4.4): client
authentication by HTTP Basic or by ``client_id``/``client_secret`` form fields, ``scope`` and an
optional ``audience`` (Okta/Auth0 style). Errors are RFC 6749 §5.2 JSON bodies
(``{"error": "invalid_client", "error_description": ...}``) with HTTP 400, or 401 for a failed
client authentication. Tokens are opaque and expire after ``token_ttl`` seconds of the clock.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

TOKEN_PATH = "/oauth2/v1/token"  # noqa: S105 - a URL path, not a secret


@dataclass(frozen=True)
class IdpClient:
    client_id: str
    secret: str
    scopes: frozenset[str]
    subject: str  # the PeopleSoft user the token maps to (OAuth2 service app -> OPRID)


@dataclass(frozen=True)
class Issued:
    client: IdpClient
    scope: str
    audience: str | None
    expires_at: datetime


class FakeIdp:
    """Client-credentials tokens for registered clients; `validate` is the resource server's check."""

    def __init__(self, clients: tuple[IdpClient, ...], now: Callable[[], datetime], *, token_ttl: int = 3600) -> None:
        self.clients = {c.client_id: c for c in clients}
        self._now = now
        self.token_ttl = token_ttl
        self._tokens: dict[str, Issued] = {}
        self.issued = 0

    def validate(self, token: str) -> Issued | None:
        issued = self._tokens.get(token)
        if issued is None or issued.expires_at <= self._now():
            return None
        return issued

    def expire_tokens(self) -> int:
        count = len(self._tokens)
        self._tokens.clear()
        return count

    @staticmethod
    def _error(status: int, error: str, description: str, *, basic: bool = False) -> Response:
        headers = {"WWW-Authenticate": 'Basic realm="idp"'} if basic else {}
        return JSONResponse({"error": error, "error_description": description}, status_code=status,
                            headers={**headers, "Cache-Control": "no-store"})

    async def token(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return self._error(400, "invalid_request", "the token request must be form encoded")
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        client_id, secret, basic = form.get("client_id"), form.get("client_secret"), False
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return self._error(400, "invalid_request", "malformed Basic credentials")
            user, _, password = raw.partition(":")
            client_id, secret, basic = unquote(user), unquote(password), True
        grant = form.get("grant_type")
        if not grant:
            return self._error(400, "invalid_request", "grant_type is required")
        client = self.clients.get(client_id or "")
        if client is None or secret is None or not secrets.compare_digest(client.secret.encode(), secret.encode()):
            return self._error(401, "invalid_client", "client authentication failed", basic=basic)
        if grant != "client_credentials":
            return self._error(400, "unsupported_grant_type", f"grant type {grant} is not supported")
        asked = form.get("scope", "").split()
        unknown = [s for s in asked if s not in client.scopes]
        if unknown:
            return self._error(400, "invalid_scope", f"scope {' '.join(unknown)} is not granted to this client")
        token = secrets.token_urlsafe(32)
        expires = self._now() + timedelta(seconds=self.token_ttl)
        self._tokens[token] = Issued(client, " ".join(asked), form.get("audience"), expires)
        self.issued += 1
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl,
                             "scope": " ".join(asked)}, headers={"Cache-Control": "no-store"})
