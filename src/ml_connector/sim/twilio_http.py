"""The Twilio simulator's ASGI surface: routing, Basic auth, fault effects, JSON in and out.

A plain ASGI callable rather than a framework app: handlers stay lean under thousands of
requests per second, and dropping a connection without an answer needs the raw `send`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl

import httpx

from ml_connector.sim import twilio_wire as wire
from ml_connector.sim.twilio_faults import FaultDecision, FaultRule
from ml_connector.sim.twilio_state import Account

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = b"application/json; charset=utf-8"
_FORM = "application/x-www-form-urlencoded"
_PREFIX = f"/{wire.API_VERSION}/Accounts/"

# path pattern -> {method: operation}
_ROUTES: tuple[tuple[re.Pattern[str], dict[str, str]], ...] = (
    (re.compile(r"^(?P<account>[^/]+)/Messages\.json$"), {"POST": "create_message", "GET": "list_messages"}),
    (re.compile(r"^(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"), {"GET": "fetch_message"}),
    (re.compile(r"^(?P<account>[^/]+)/Calls\.json$"), {"POST": "create_call", "GET": "list_calls"}),
    (re.compile(r"^(?P<account>[^/]+)/Calls/(?P<sid>[^/]+)\.json$"), {"GET": "fetch_call"}),
    (re.compile(r"^(?P<account>[^/]+)\.json$"), {"GET": "fetch_account"}),
)

_FAULT_BODIES: dict[int, tuple[bytes, bytes]] = {
    500: (_JSON, json.dumps(wire.api_error(20500).body()).encode()),
    502: (b"text/html", b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"),
    503: (_JSON, json.dumps(wire.api_error(20503).body()).encode()),
}


class SimulatedDisconnect(httpx.RemoteProtocolError):
    """Raised in-process where a real server would close the socket without answering."""


@dataclass(frozen=True)
class ApiRequest:
    """One authenticated REST call, as the simulator's handlers receive it."""

    operation: str
    account: Account
    via_auth_token: bool
    sid: str | None
    form: dict[str, list[str]]
    query: dict[str, str]
    decision: FaultDecision


@dataclass(frozen=True)
class Reply:
    status: int
    body: object
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Backend(Protocol):
    """What the ASGI surface needs from the simulator."""

    @property
    def latency(self) -> float: ...

    def decide(self, operation: str) -> FaultDecision: ...

    async def pause(self, seconds: float) -> None: ...

    def authenticate(self, account_sid: str, username: str, password: str) -> tuple[Account, bool] | None: ...

    def handle(self, request: ApiRequest) -> Reply: ...

    def control(self, method: str, name: str, body: bytes) -> Reply: ...

    async def hang(self, seconds: float) -> None: ...


class TwilioApp:
    """ASGI app: Twilio's REST paths under /2010-04-01/Accounts/, control under /_sim/."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/_sim/"):
            body = await _read_body(receive)
            await _send(send, self._backend.control(scope["method"], path[len("/_sim/"):], body))
            return
        await self._api(scope, receive, send)

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        routed = _route(method, scope["path"])
        if isinstance(routed, wire.ApiError):
            await _send(send, Reply(routed.status, routed.body()))
            return
        operation, account_sid, sid = routed
        decision = self._backend.decide(operation)
        delay = self._backend.latency + decision.latency
        if delay > 0:
            await self._backend.pause(delay)
        ending = decision.ending
        if ending is not None and ending.action in ("429", "5xx"):
            await _send_fault(send, ending)
            return
        if ending is not None and ending.action == "timeout":
            await self._backend.hang(ending.hang_seconds)
            await _drop(send)
            return
        body = await _read_body(receive) if method == "POST" else b""
        credentials = _basic_credentials(scope)
        found = self._backend.authenticate(account_sid, *credentials) if credentials else None
        if found is None:
            error = wire.api_error(20003)
            await _send(send, Reply(401, error.body(), ((b"www-authenticate", b'Basic realm="Twilio API"'),)))
            return
        account, via_token = found
        reply = self._backend.handle(
            ApiRequest(
                operation=operation,
                account=account,
                via_auth_token=via_token,
                sid=sid,
                form=_form(scope, body),
                query=dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)),
                decision=decision,
            )
        )
        if ending is not None and ending.action == "drop_after_accept":
            await _drop(send)
            return
        await _send(send, reply)


def _route(method: str, path: str) -> tuple[str, str, str | None] | wire.ApiError:
    if path.startswith(_PREFIX):
        rest = path[len(_PREFIX):]
        for pattern, methods in _ROUTES:
            match = pattern.match(rest)
            if match is None:
                continue
            operation = methods.get(method)
            if operation is None:
                return wire.api_error(20004)
            groups = match.groupdict()
            return operation, groups["account"], groups.get("sid")
    return wire.api_error(20404, f"The requested resource {path} was not found")


def _basic_credentials(scope: Scope) -> tuple[str, str] | None:
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            scheme, _, encoded = value.decode("latin-1").partition(" ")
            if scheme.lower() != "basic":
                return None
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            username, sep, password = decoded.partition(":")
            return (username, password) if sep else None
    return None


def _form(scope: Scope, body: bytes) -> dict[str, list[str]]:
    """Form fields with repeated keys kept (MediaUrl); a non-form body carries no parameters."""
    content_type = next((v for k, v in scope["headers"] if k.lower() == b"content-type"), b"")
    if not body or not content_type.decode("latin-1").lower().startswith(_FORM):
        return {}
    form: dict[str, list[str]] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(key, []).append(value)
    return form


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send(send: Send, reply: Reply) -> None:
    payload = json.dumps(reply.body, separators=(",", ":")).encode()
    await _send_raw(send, reply.status, _JSON, payload, reply.headers)


async def _send_raw(
    send: Send, status: int, content_type: bytes, payload: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _send_fault(send: Send, rule: FaultRule) -> None:
    if rule.action == "429":
        extra = ((b"retry-after", str(rule.retry_after).encode()),) if rule.retry_after is not None else ()
        body = json.dumps(wire.api_error(20429).body()).encode()
        await _send_raw(send, 429, _JSON, body, extra)
        return
    content_type, body = _FAULT_BODIES[rule.status]
    await _send_raw(send, rule.status, content_type, body)


async def _drop(send: Send) -> None:
    """Close the connection without an answer.

    Under uvicorn the `send` callable belongs to the request cycle, which holds the socket's
    transport: abort it, then yield so uvicorn notices the loss before the app returns. With no
    transport at hand (httpx.ASGITransport), raise what an HTTP client would see.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if callable(abort):  # not isinstance(asyncio.Transport): uvloop's transports do not derive from it
        abort()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return
    raise SimulatedDisconnect("Server disconnected without sending a response.")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
