"""One RFC call through the agent (protocol v1): the bearer token, the call cap, retries, errors.

* **The cap**: RFC calls to one SAP system (agent URL and client) are limited across every
  source and flow of the process (`CallCap`, default 5): each attempt, retries included, holds a
  slot while it is on the wire, and the backoff between attempts holds none. So a burst of
  retries never exceeds the cap, and SAP's resource check (rdisp/rfc_max_own_used_wp) is never
  what stops us.
* **Retries**: RESOURCE_FAILURE, SYSTEM_FAILURE, RFC_COMMUNICATION_FAILURE and connection errors
  are retried with exponential backoff; logon and token failures, function exceptions and short
  dumps are not (the table in `sap_rfc_protocol.ERRORS`).
* **Errors** name the function, SAP's exception key, message class and number. BAPIRET2 rows of
  type E or A are errors too (`RfcResult.raise_for_return`). Nothing secret is in them: the token
  is only ever in the Authorization header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ml_connector.core.redact import mask_url
from ml_connector.errors import SourceAuthError, SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.sources import sap_rfc_protocol as protocol


class RfcError(SourceError):
    """The agent or SAP refused a call (not retried). `body` keeps what the agent said."""

    def __init__(self, message: str, *, source: str | None, body: protocol.RfcErrorBody) -> None:
        self.body = body
        super().__init__(message, source=source)

    @property
    def key(self) -> str:
        return self.body.key


class RfcAuthError(SourceAuthError):
    """The agent refused our token, or SAP refused the agent's logon."""


class RfcUnavailable(SourceUnavailable):
    """SAP or the agent is busy or unreachable, after the retries."""


class RfcReturnError(SourceError):
    """A BAPI answered RETURN rows of type E or A."""

    def __init__(self, message: str, *, source: str | None, rows: Sequence[Mapping[str, Any]]) -> None:
        self.rows = list(rows)
        super().__init__(message, source=source)


def reworded(exc: SourceError, prefix: str, source: str) -> SourceError:
    """The same error (type and details kept) with `prefix` before its message."""
    message = f"{prefix}: {str(exc).removeprefix(f'{source}: ')}"
    if isinstance(exc, RfcError):
        return RfcError(message, source=source, body=exc.body)
    if isinstance(exc, RfcReturnError):
        return RfcReturnError(message, source=source, rows=exc.rows)
    return type(exc)(message, source=source)


@dataclass(frozen=True, slots=True)
class RfcResult:
    function: str
    exports: Mapping[str, Any]
    tables: Mapping[str, list[dict[str, Any]]]
    returned: list[dict[str, Any]] = field(default_factory=list)

    def raise_for_return(self, source: str | None, what: str = "") -> None:
        bad = protocol.failing(self.returned)
        if bad:
            text = "; ".join(protocol.describe_return(row) for row in bad)
            raise RfcReturnError(f"{self.function}{' ' + what if what else ''}: {text}", source=source, rows=bad)


class CallCap:
    """At most `size` calls at once to one SAP system; counts the most ever in flight."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots = asyncio.Semaphore(size)
        self.in_flight = 0
        self.max_in_flight = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1


_CAPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, CallCap]] = weakref.WeakKeyDictionary()


def cap_for(system: str, size: int) -> CallCap:
    """The process's cap for one SAP system (per event loop); the smallest size configured wins."""
    caps = _CAPS.setdefault(asyncio.get_running_loop(), {})
    found = caps.get(system)
    if found is None or (size < found.size and found.in_flight == 0):
        found = caps[system] = CallCap(size)
    return found


Sleep = Callable[[float], Awaitable[None]]


class AgentClient:
    """Speaks protocol v1 to one agent. `http` carries the TLS settings (and client certificate)."""

    def __init__(self, http: httpx.AsyncClient, *, url: str, token: str | None, client: str, source: str,
                 cap_size: int, retries: int, retry_delay: float, sleep: Sleep = asyncio.sleep) -> None:
        self._http = http
        self.url = url.rstrip("/")
        self._token = token
        self.system = f"{self.url}#{client}"
        self.source = source
        self.cap_size = cap_size
        self.retries = retries
        self.retry_delay = retry_delay
        self._sleep = sleep
        self.attempts = 0

    def __repr__(self) -> str:
        return f"AgentClient(url={mask_url(self.url)!r})"

    @property
    def cap(self) -> CallCap:
        return cap_for(self.system, self.cap_size)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _send(self, method: str, path: str, what: str, body: Any = None) -> Any:
        """One request with the cap and the retries; the decoded JSON answer (None for 204)."""
        url = self.url + protocol.PREFIX + path
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            try:
                async with self.cap.slot():
                    response = await self._http.request(method, url, json=body, headers=self._headers())
                    content = response.content
            except httpx.TransportError as exc:
                if attempt <= self.retries:
                    await self._sleep(self.retry_delay * 2 ** (attempt - 1))
                    continue
                raise RfcUnavailable(f"{what}: the agent at {mask_url(self.url)} cannot be reached "
                                     f"({type(exc).__name__})", source=self.source) from None
            if response.status_code == 204:
                return None
            try:
                answer = json.loads(content)
            except ValueError:
                answer = None
            if response.is_success:
                if not isinstance(answer, dict):
                    raise SourcePayloadError(f"{what}: the agent's answer is not a JSON object "
                                             f"({len(content)} bytes)", source=self.source)
                return answer
            error = protocol.RfcErrorBody.from_json(answer) or protocol.RfcErrorBody(
                type="BAD_GATEWAY" if response.status_code >= 500 else "BAD_REQUEST",
                message=f"HTTP {response.status_code} without a protocol v1 error body")
            kind = protocol.ERRORS.get(error.type)
            retry = (kind.kind == "retry") if kind else response.status_code >= 500
            if retry and attempt <= self.retries:
                await self._sleep(self.retry_delay * 2 ** (attempt - 1))
                continue
            message = f"{what}: {error.describe()}"
            if kind is not None and kind.kind == "auth":
                hint = ("check the agent token (agent.token) or client certificate"
                        if error.type == "AGENT_UNAUTHORIZED" else
                        "the agent's SAP logon was refused: wrong password, locked user or a client that does "
                        "not exist look the same (check the agent's configuration and SU01)")
                raise RfcAuthError(f"{message} - {hint}", source=self.source)
            if retry:
                raise RfcUnavailable(f"{message} (after {attempt} attempts)", source=self.source)
            raise RfcError(message, source=self.source, body=error)

    async def info(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self._send("GET", "/info", "agent info")
        return answer

    async def call(self, function: str, imports: Mapping[str, Any] | None = None,
                   tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None, *,
                   session: str | None = None, what: str = "") -> RfcResult:
        path = f"/sessions/{session}/call" if session else "/call"
        body = {"function": function, "imports": dict(imports or {}),
                "tables": {k: [dict(r) for r in v] for k, v in (tables or {}).items()}}
        answer = await self._send("POST", path, f"{function}{' ' + what if what else ''}", body)
        exports = answer.get("exports") or {}
        out_tables = answer.get("tables") or {}
        returned = answer.get("return") or []
        if not isinstance(exports, dict) or not isinstance(out_tables, dict) or not isinstance(returned, list):
            raise SourcePayloadError(f"{function}: the agent's answer has no exports/tables/return",
                                     source=self.source)
        return RfcResult(function, exports, out_tables, protocol.return_rows(returned))

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[str]:
        """A stateful agent session (one SAP user context), ended whatever happens."""
        answer = await self._send("POST", "/sessions", "open agent session")
        session = answer.get("session")
        if not isinstance(session, str) or not session:
            raise SourcePayloadError("open agent session: the answer names no session", source=self.source)
        try:
            yield session
        finally:
            with contextlib.suppress(SourceError):
                await self._send("DELETE", f"/sessions/{session}", "close agent session")
