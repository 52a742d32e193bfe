"""Who is asking, and may they: sessions, the SSO header, API tokens, CSRF and roles.

Three ways in, tried in this order:
1. `Authorization: Bearer mlc_...`: an API token (`ml-connector tokens add`), for scripts.
2. The SSO proxy's header (`dashboard.sso.header`), believed only on connections from
   `dashboard.sso.proxies`; from any other address it is ignored, as if it were not there.
3. The signed session cookie a password sign-in set (Starlette's SessionMiddleware: signed with
   a key derived from the master key, and refused once older than `session_max_age`).

Every state-changing form carries the session's CSRF token; a POST without it, or with another,
is refused with 403 before anything happens. API calls with a token carry no cookie and so need
no CSRF token; API calls with a session cookie must send it in `X-CSRF-Token`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ml_connector.config_dashboard import SsoConfig
from ml_connector.store.users import Principal, Role, UserStore

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "Authenticator", "csrf_ok", "csrf_token"]

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
_SESSION_USER = "user"
_SESSION_CSRF = "csrf"


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (the session cookie carries it)."""
    token = request.session.get(_SESSION_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[_SESSION_CSRF] = token
    return token


def csrf_ok(request: Request, offered: Any) -> bool:
    """Whether `offered` is this session's CSRF token."""
    expected = request.session.get(_SESSION_CSRF)
    return (isinstance(expected, str) and bool(expected) and isinstance(offered, str)
            and hmac.compare_digest(expected.encode(), offered.encode()))


@dataclass(frozen=True, slots=True)
class Authenticator:
    users: UserStore
    sso: SsoConfig | None

    async def principal(self, request: Request) -> Principal | None:
        """Who sent `request`, or None."""
        import asyncio

        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            return await asyncio.to_thread(self.users.token_principal, header[7:].strip())
        if self.sso is not None and self.sso.trusts(request.client.host if request.client else None):
            named = request.headers.get(self.sso.header, "").strip()
            if named:
                role = await asyncio.to_thread(self.users.role_of, named)
                return Principal(name=named, role=role or Role(self.sso.default_role), via="sso")
        found = request.session.get(_SESSION_USER)
        if isinstance(found, dict) and isinstance(found.get("name"), str) and found.get("role") in set(Role):
            # The role is read again: a demoted operator loses operating at once, not at expiry.
            role = await asyncio.to_thread(self.users.role_of, found["name"])
            return None if role is None else Principal(name=found["name"], role=role, via="password")
        return None

    async def sign_in(self, request: Request, name: str, password: str) -> Principal | None:
        import asyncio

        who = await asyncio.to_thread(self.users.authenticate, name, password)
        if who is not None:
            request.session.clear()  # a new session: no fixation of a token set before sign-in
            request.session[_SESSION_USER] = {"name": who.name, "role": who.role.value}
            csrf_token(request)
        return who

    @staticmethod
    def sign_out(request: Request) -> None:
        request.session.clear()


Endpoint = Callable[[Request], Awaitable[Any]]
