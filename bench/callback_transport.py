"""Lean httpx transports for the simulator's status callbacks in the benchmarks.

The simulator posts its callbacks with an httpx client, and on the benchmarks' two cores its CPU
is taken from the connector being measured. Two problems with the default transport:

- Under load thousands of callbacks are queued at once, and httpcore's pool scans every queued
  request against every connection each time one is assigned (quadratic; py-spy shows the
  simulator's loop inside `AsyncConnectionPool._assign_requests_to_connections`), so the
  simulator stops answering REST requests at all after about a thousand messages.
- A general-purpose client costs the simulator ~0.2-0.3 ms of CPU per callback (aiohttp's
  request and response objects, httpx's models around them), about half of the simulator's CPU.

`RawCallbackTransport` sends the request httpx built, byte for byte (its method, target and raw
headers, Host and Content-Length included, then its body) over pooled keep-alive connections,
and reads the answer with httptools' parser, the one uvicorn uses. It is hand-written because no
client library offers "send these exact bytes, parse the reply" without building its own request
model per call. `AiohttpCallbackTransport` (aiohttp underneath) is kept for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import aiohttp
import httptools
import httpx


class AiohttpCallbackTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with one pooled aiohttp session (created in the running loop)."""

    def __init__(self, max_connections: int = 100) -> None:
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._limit))
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read"))
        # The raw header pairs as they are: httpx.Headers' mapping views re-decode on every access.
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        try:
            async with self._get_session().request(
                request.method, str(request.url), headers=headers, data=body, timeout=timeout,
            ) as response:
                content = await response.read()
                answer = [(k, v) for k, v in response.headers.items() if k.lower() != "content-encoding"]
                return httpx.Response(response.status, headers=answer, content=content, request=request)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _Exchange(asyncio.Protocol):
    """One keep-alive connection: write a request, parse one response, repeat."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bool]] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # TCP: uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(ConnectionError("connection closed before the answer was complete"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.reusable = False
            if self._answer is not None and not self._answer.done():
                self._answer.set_exception(ConnectionError(f"unreadable answer: {exc}"))
            if self.transport is not None:
                self.transport.close()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        if self._answer is not None and not self._answer.done():
            keep = self._parser.should_keep_alive()
            self._answer.set_result((self._parser.get_status_code(), self._headers, bytes(self._body), keep))

    async def exchange(self, payload: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        assert self.transport is not None  # noqa: S101 - connected before use
        self._answer = asyncio.get_running_loop().create_future()
        self._headers, self._body = [], bytearray()
        self.transport.write(payload)
        try:
            return await self._answer
        finally:
            self._answer = None


class RawCallbackTransport(httpx.AsyncBaseTransport):
    """Posts httpx requests as they are over pooled keep-alive connections (HTTP/1.1, plain TCP)."""

    def __init__(self, max_connections: int = 100) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: defaultdict[tuple[str, int], list[_Exchange]] = defaultdict(list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol("the benchmarks' callback transport speaks plain http only",
                                            request=request)
        body = await request.aread()
        target = request.url.raw_path
        lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
        lines.extend(name + b": " + value for name, value in request.headers.raw)
        payload = b"\r\n".join(lines) + b"\r\n\r\n" + body
        address = (request.url.host, request.url.port or 80)
        timeouts = request.extensions.get("timeout", {})
        async with self._slots:
            try:
                async with asyncio.timeout(timeouts.get("read") or None):
                    connection = await self._connection(address, timeouts.get("connect"))
                    status, headers, content, keep = await connection.exchange(payload)
            except (OSError, TimeoutError) as exc:
                raise httpx.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from exc
            if keep and connection.reusable:
                self._idle[address].append(connection)
            elif connection.transport is not None:
                connection.transport.close()
        answer = [(k, v) for k, v in headers if k.lower() != b"content-encoding"]
        return httpx.Response(status, headers=answer, content=content, request=request)

    async def _connection(self, address: tuple[str, int], connect_timeout: float | None) -> _Exchange:
        idle = self._idle[address]
        while idle:
            connection = idle.pop()
            if connection.reusable and connection.transport is not None and not connection.transport.is_closing():
                return connection
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(connect_timeout or None):
            _, protocol = await loop.create_connection(_Exchange, *address)
        return protocol

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                if connection.transport is not None:
                    with contextlib.suppress(Exception):
                        connection.transport.close()
        self._idle.clear()
