"""Transports: every failure lands on the right side of 'could it have reached the server?'."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import pytest
from aiohttp import web

from ml_connector.channels.http import (
    AiohttpTransport,
    AsgiTransport,
    ConnectFailed,
    Headers,
    HttpResponse,
    HttpTransport,
    HttpxTransport,
    ResponseLost,
)

SECRET_QUERY = "To=%2B15551234567"


# --- Headers -----------------------------------------------------------------------------------


def test_headers_are_case_insensitive_and_join_repeats() -> None:
    headers = Headers([("Content-Type", "application/json"), ("X-A", "1"), ("x-a", "2")])
    assert headers["content-type"] == "application/json"
    assert headers["CONTENT-TYPE"] == "application/json"
    assert headers.get("Retry-After") is None
    assert "X-a" in headers
    assert headers["X-A"] == "1, 2"
    assert len(headers) == 2


def test_response_is_frozen() -> None:
    response = HttpResponse(200, Headers(), b"")
    with pytest.raises(AttributeError):
        response.status = 500  # type: ignore[misc, unused-ignore]


# --- ASGI / httpx ------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    body = await _read_body(receive)
    headers = dict(scope["headers"])
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"Content-Type", b"text/plain"), (b"X-Method", scope["method"].encode())],
        }
    )
    await send({"type": "http.response.body", "body": headers[b"x-token"] + b"|" + body})


async def test_asgi_round_trip() -> None:
    transport = AsgiTransport(echo_app)
    assert isinstance(transport, HttpTransport)
    response = await transport.request(
        "POST", "https://api.test/x", headers={"X-Token": "abc"}, body=b"a=1", timeout=5
    )
    await transport.aclose()
    assert response.status == 201
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["X-METHOD"] == "POST"
    assert response.body == b"abc|a=1"


async def test_asgi_app_error_after_receiving_is_response_lost() -> None:
    received: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await _read_body(receive))
        raise RuntimeError("boom")

    transport = AsgiTransport(app)
    with pytest.raises(ResponseLost) as info:
        await transport.request(
            "POST", f"https://api.test/p?{SECRET_QUERY}", headers={}, body=b"x", timeout=5
        )
    await transport.aclose()
    assert received == [b"x"]
    assert "RuntimeError" in str(info.value)
    assert "5551234567" not in str(info.value)
    assert "https://api.test/p" in str(info.value)


async def test_asgi_deadline_is_response_lost() -> None:
    never = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await _read_body(receive)
        await never.wait()

    transport = AsgiTransport(app)
    with pytest.raises(ResponseLost):
        await transport.request("GET", "https://api.test/slow", headers={}, body=None, timeout=0.05)
    await transport.aclose()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ConnectError("refused"), ConnectFailed),
        (httpx.ConnectTimeout("slow connect"), ConnectFailed),
        (httpx.PoolTimeout("pool"), ConnectFailed),
        (httpx.ReadTimeout("slow read"), ResponseLost),
        (httpx.RemoteProtocolError("peer closed"), ResponseLost),
        (httpx.WriteError("reset"), ResponseLost),
    ],
)
async def test_httpx_errors_map(raised: Exception, expected: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    transport = HttpxTransport(httpx.MockTransport(handler))
    with pytest.raises(expected):
        await transport.request("GET", "https://api.test/x", headers={}, body=None, timeout=5)
    await transport.aclose()


# --- aiohttp against real loopback servers ------------------------------------------------------


@pytest.fixture
async def aiohttp_transport() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(max_connections=4)
    yield transport
    await transport.aclose()


async def _serve(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def test_aiohttp_round_trip(aiohttp_transport: AiohttpTransport) -> None:
    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(
            status=202,
            body=request.headers["Authorization"].encode() + b"|" + body,
            headers={"X-Seen": "yes"},
        )

    app = web.Application()
    app.router.add_post("/echo", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        for _ in range(2):  # second request reuses the pooled connection
            response = await aiohttp_transport.request(
                "POST",
                f"http://127.0.0.1:{port}/echo",
                headers={"Authorization": "Basic x", "Content-Type": "application/x-www-form-urlencoded"},
                body=b"To=%2B1&Body=hi",
                timeout=5,
            )
            assert response.status == 202
            assert response.body == b"Basic x|To=%2B1&Body=hi"
            assert response.headers["x-seen"] == "yes"
    finally:
        await runner.cleanup()


async def test_aiohttp_refused_is_connect_failed(aiohttp_transport: AiohttpTransport) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(ConnectFailed) as info:
        await aiohttp_transport.request(
            "POST", f"http://127.0.0.1:{port}/x?{SECRET_QUERY}", headers={}, body=b"", timeout=5
        )
    assert "5551234567" not in str(info.value)


async def test_aiohttp_tls_handshake_failure_is_connect_failed(aiohttp_transport: AiohttpTransport) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()

    server, port = await _serve(handle)
    async with server:
        with pytest.raises(ConnectFailed):
            await aiohttp_transport.request(
                "GET", f"https://127.0.0.1:{port}/x", headers={}, body=None, timeout=5
            )


async def test_aiohttp_server_closes_after_request_is_response_lost(
    aiohttp_transport: AiohttpTransport,
) -> None:
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await _read_request_head(reader))
        writer.close()

    server, port = await _serve(handle)
    async with server:
        with pytest.raises(ResponseLost) as info:
            await aiohttp_transport.request(
                "POST", f"http://127.0.0.1:{port}/m?{SECRET_QUERY}", headers={}, body=b"x", timeout=5
            )
    # The request reached the server exactly once: a POST is never silently resent (aiohttp
    # does resend idempotent methods such as GET once, which is harmless).
    assert len(heads) == 1 and heads[0].startswith(b"POST /m?")
    assert "5551234567" not in str(info.value)


async def test_aiohttp_read_timeout_is_response_lost(aiohttp_transport: AiohttpTransport) -> None:
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request_head(reader)
        await done.wait()
        writer.close()

    server, port = await _serve(handle)
    async with server:
        with pytest.raises(ResponseLost):
            await aiohttp_transport.request(
                "GET", f"http://127.0.0.1:{port}/s", headers={}, body=None, timeout=0.2
            )
        done.set()


async def test_aiohttp_truncated_body_is_response_lost(aiohttp_transport: AiohttpTransport) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request_head(reader)
        writer.write(b'HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{"sid": ')
        await writer.drain()
        writer.close()

    server, port = await _serve(handle)
    async with server:
        with pytest.raises(ResponseLost):
            await aiohttp_transport.request(
                "POST", f"http://127.0.0.1:{port}/c", headers={}, body=b"x", timeout=5
            )


def test_aiohttp_rejects_bad_pool_size() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        AiohttpTransport(max_connections=0)
