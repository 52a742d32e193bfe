"""A tiny HTTP transport seam for the provider hot path.

No single library gives both things the Twilio client needs: aiohttp keeps its throughput at
high concurrency (plain httpx slows down as concurrency rises, see ARCHITECTURE.md), while
httpx can mount an ASGI app in-process so tests and the demo need no sockets. So the client
speaks to this four-line protocol and picks a transport:

- `AiohttpTransport`: production; one pooled aiohttp session per event loop.
- `HttpxTransport` / `AsgiTransport`: any httpx transport, e.g. an in-process ASGI simulator
  or an `httpx.MockTransport` handler in a test.

Every transport reports failures as one of two errors, because the caller's next step depends
only on whether the request can have reached the server:

    TransportError
    ├── ConnectFailed   the request certainly did not reach the server (safe to resend)
    └── ResponseLost    the request may have been received (reconcile before resending)

Error messages name the method, host and path only: query strings can carry phone numbers.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
import httpx

from ml_connector.tls import client_ssl_context, tls_failure

__all__ = [
    "AiohttpTransport",
    "AsgiTransport",
    "ConnectFailed",
    "Headers",
    "HttpResponse",
    "HttpTransport",
    "HttpxTransport",
    "ResponseLost",
    "TransportError",
]


class TransportError(Exception):
    """The HTTP exchange failed below the HTTP layer (no usable response)."""

    def __init__(self, method: str, url: str, detail: str) -> None:
        self.method = method
        self.where = _safe_location(url)
        self.detail = detail
        super().__init__(f"{method} {self.where}: {detail}")


class ConnectFailed(TransportError):
    """DNS, refused connection, TLS handshake, connect or pool timeout: nothing was sent."""


class ResponseLost(TransportError):
    """Read timeout, disconnect or reset after the request was written: it may have been processed."""


def _safe_location(url: str) -> str:
    """scheme://host[:port]/path without userinfo or query, fit for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Headers(Mapping[str, str]):
    """Immutable, case-insensitive header mapping; repeated headers are joined with ', '."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        merged: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        self._items = merged

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete HTTP response: the body is fully read before the transport returns."""

    status: int
    headers: Mapping[str, str] = field(default_factory=Headers)
    body: bytes = b""


@runtime_checkable
class HttpTransport(Protocol):
    """Send one request and return the whole response, or raise ConnectFailed / ResponseLost."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,  # noqa: ASYNC109 - split into connect/read limits, which a caller's deadline cannot do
    ) -> HttpResponse: ...

    async def aclose(self) -> None: ...


# --- aiohttp ---------------------------------------------------------------------------------

#: aiohttp exception -> our error, most specific first (ClientConnectorError is a ClientOSError,
#: ConnectionTimeoutError a ServerTimeoutError). Anything else from aiohttp after the connection
#: was made is treated as "may have been received": the conservative reading.
_AIOHTTP_ERRORS: tuple[tuple[type[BaseException], type[TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, ConnectFailed),  # connect or wait for a pooled connection
    (aiohttp.ClientConnectorError, ConnectFailed),  # DNS, refused, TLS handshake, certificate
    (aiohttp.SocketTimeoutError, ResponseLost),  # read timeout
    (aiohttp.ServerTimeoutError, ResponseLost),
    (aiohttp.ServerDisconnectedError, ResponseLost),
    (aiohttp.ClientOSError, ResponseLost),  # reset after write
    (aiohttp.ClientPayloadError, ResponseLost),  # body cut short
    (aiohttp.ClientResponseError, ResponseLost),  # malformed status line or headers
    (aiohttp.ClientError, ResponseLost),
    (TimeoutError, ResponseLost),  # overall deadline
)


def _classify(
    exc: BaseException, table: tuple[tuple[type[BaseException], type[TransportError]], ...]
) -> type[TransportError] | None:
    for exc_type, error in table:
        if isinstance(exc, exc_type):
            return error
    return None


def _describe(exc: BaseException) -> str:
    """Exception class plus an OS reason or the TLS cause, never the exception text (it may quote
    the URL)."""
    tls = tls_failure(exc)
    if tls is not None:
        return f"{type(exc).__name__}: {tls}"
    reason = ""
    if isinstance(exc, OSError) and exc.strerror:
        reason = f" ({exc.strerror})"
    return f"{type(exc).__name__}{reason}"


class AiohttpTransport:
    """Pooled aiohttp transport: keeps throughput at high concurrency.

    The session is created on first use inside the running loop (aiohttp binds it to that
    loop). TLS verification trusts the system and certifi stores plus `ca_bundle`, or only
    `ca_bundle` with `ca_bundle_only` (see ml_connector.tls).
    """

    def __init__(
        self, *, max_connections: int = 100, verify: bool = True, ca_bundle: str | None = None,
        ca_bundle_only: bool = False,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._max_connections = max_connections
        self._ssl: ssl.SSLContext | bool = client_ssl_context(
            verify=verify, ca_bundle=ca_bundle, ca_bundle_only=ca_bundle_only)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed:
            if self._loop is not loop:
                raise RuntimeError("AiohttpTransport is bound to another event loop; create one per loop")
            return self._session
        connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl, keepalive_timeout=30.0)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False)
        self._loop = loop
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,  # noqa: ASYNC109 - see HttpTransport.request
    ) -> HttpResponse:
        session = self._get_session()
        # connect covers waiting for a pooled connection too: both mean nothing was sent.
        limits = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout)
        try:
            async with asyncio.timeout(timeout * 2):
                async with session.request(
                    method, url, headers=dict(headers), data=body, timeout=limits, allow_redirects=False
                ) as resp:
                    payload = await resp.read()
                    return HttpResponse(resp.status, Headers(resp.headers.items()), payload)
        except Exception as exc:
            error = _classify(exc, _AIOHTTP_ERRORS)
            if error is None:
                raise
            raise error(method, url, _describe(exc)) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# --- httpx -----------------------------------------------------------------------------------

_HTTPX_ERRORS: tuple[tuple[type[BaseException], type[TransportError]], ...] = (
    (httpx.ConnectError, ConnectFailed),
    (httpx.ConnectTimeout, ConnectFailed),
    (httpx.PoolTimeout, ConnectFailed),
    (httpx.UnsupportedProtocol, ConnectFailed),
    (httpx.TransportError, ResponseLost),  # read/write timeouts and errors, protocol errors
    (TimeoutError, ResponseLost),
    (Exception, ResponseLost),  # an in-process app raised after it received the request
)


class HttpxTransport:
    """Wraps any httpx transport (ASGI app, MockTransport, or the default network one).

    Meant for tests, the demo and low-rate callers; the timeout is enforced as one deadline
    around the whole exchange because in-process transports ignore httpx's own timeouts.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,  # noqa: ASYNC109 - see HttpTransport.request
    ) -> HttpResponse:
        try:
            async with asyncio.timeout(timeout):
                resp = await self._client.request(
                    method, url, headers=dict(headers), content=body, timeout=timeout
                )
        except Exception as exc:
            error = _classify(exc, _HTTPX_ERRORS)
            if error is None:  # pragma: no cover - the table ends with Exception
                raise
            raise error(method, url, _describe(exc)) from None
        return HttpResponse(resp.status_code, Headers(resp.headers.multi_items()), resp.content)

    async def aclose(self) -> None:
        await self._client.aclose()


_Message = MutableMapping[str, Any]
AsgiApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[_Message]], Callable[[_Message], Awaitable[None]]],
    Awaitable[None],
]


class AsgiTransport(HttpxTransport):
    """Runs an ASGI app in-process (simulators in tests and the demo); no sockets involved."""

    def __init__(self, app: AsgiApp) -> None:
        super().__init__(httpx.ASGITransport(app=app))
