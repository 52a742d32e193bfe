"""The reference agent's HTTP layer: protocol v1 (docs/sap-agent-protocol.md) over a pool of pyrfc
connections.

* Every request must carry the configured bearer token (compared with `hmac.compare_digest`, in
  constant time); mutual TLS, when configured, is enforced by the TLS layer before this app runs.
* Only `allowed_functions` can be called: the agent is not a general RFC gateway.
* Stateless calls take a pooled connection for one call. A session keeps one connection (one SAP
  user context, so a BAPI and its BAPI_TRANSACTION_COMMIT share a logical unit of work) until it
  is deleted or idle too long; its connection is then closed, which rolls back what was not
  committed, so no other caller ever inherits it.
* pyrfc's exceptions become protocol error types (`sap_agent.backend.error_of`); the SAP
  password and the other connection secrets are never in an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ml_connector.sap_agent.backend import breaks_connection, encode, error_of, split_result
from ml_connector.sap_agent.config import AgentConfig
from ml_connector.sap_agent.pool import ConnectionPool, PoolExhausted
from ml_connector.sources import sap_rfc_protocol as protocol

log = logging.getLogger(__name__)

AGENT_NAME = "ml-connector-sap-agent 0.1.0"


@dataclass
class _Session:
    connection: Any
    last_used: float
    busy: bool = False


class AgentApp:
    """The agent: config, pool, sessions. `connect()` opens one pyrfc connection (injected in tests)."""

    def __init__(self, config: AgentConfig, connect: Callable[[], Any], *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.pool = ConnectionPool(connect, size=config.pool.size, acquire_timeout=config.pool.acquire_timeout)
        self.sessions: dict[str, _Session] = {}
        self._monotonic = monotonic
        self._token = config.token.get_secret_value().encode() if config.token else None
        self._allowed = frozenset(config.allowed_functions)

    # -- answers -----------------------------------------------------------------------------------

    @staticmethod
    def _json(body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status, media_type="application/json",
                        headers={protocol.VERSION_HEADER: protocol.VERSION})

    def _error(self, error: protocol.RfcErrorBody) -> Response:
        return self._json(error.to_json(), protocol.status_of(error.type))

    def _refused(self, error_type: str, message: str) -> Response:
        return self._error(protocol.RfcErrorBody(type=error_type, message=message))

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True  # mutual TLS only: the TLS layer admitted the client
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return hmac.compare_digest(given.strip().encode(), self._token) and scheme.lower() == "bearer"

    # -- sessions ----------------------------------------------------------------------------------

    async def _expire_sessions(self) -> None:
        limit = self._monotonic() - self.config.session_idle_timeout
        for sid, session in list(self.sessions.items()):
            if session.last_used < limit and not session.busy:
                del self.sessions[sid]
                await self.pool.release(session.connection, broken=True)  # closing rolls back

    async def _open(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refused("AGENT_UNAUTHORIZED", "bearer token missing or wrong")
        await self._expire_sessions()
        try:
            connection = await self.pool.acquire()
        except PoolExhausted as exc:
            return self._refused("RESOURCE_FAILURE", str(exc))
        except Exception as exc:  # noqa: BLE001 - pyrfc's errors, mapped to the protocol
            return self._error(error_of(exc))
        sid = secrets.token_urlsafe(24)
        self.sessions[sid] = _Session(connection, self._monotonic())
        return self._json({"session": sid, "idle_timeout": self.config.session_idle_timeout}, 201)

    async def _close(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refused("AGENT_UNAUTHORIZED", "bearer token missing or wrong")
        session = self.sessions.pop(str(request.path_params["session"]), None)
        if session is None:
            return self._refused("SESSION_NOT_FOUND", "no such session (ended or idle too long)")
        await self.pool.release(session.connection, broken=True)
        return Response(status_code=204, headers={protocol.VERSION_HEADER: protocol.VERSION})

    # -- calls -------------------------------------------------------------------------------------

    @staticmethod
    def _parse(body: bytes) -> tuple[str, dict[str, Any], dict[str, list[dict[str, Any]]]]:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("function"), str) or not data["function"].strip():
            raise ValueError("a JSON object with `function` is expected")
        imports = data.get("imports") or {}
        tables = data.get("tables") or {}
        if not isinstance(imports, dict) or not isinstance(tables, dict):
            raise ValueError("`imports` and `tables` are JSON objects")
        for name, rows in tables.items():
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ValueError(f"table {name} is a list of objects")
        return data["function"].strip().upper(), imports, tables

    async def _run(self, connection: Any, function: str, imports: Mapping[str, Any],
                   tables: Mapping[str, list[dict[str, Any]]]) -> Response:
        result = await asyncio.to_thread(connection.call, function, **imports, **tables)
        exports, out_tables = split_result(result, tables)
        returned = protocol.return_rows(exports.get("RETURN", out_tables.get("RETURN")))
        return self._json({"exports": exports, "tables": out_tables, "return": encode(returned)})

    async def _call(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refused("AGENT_UNAUTHORIZED", "bearer token missing or wrong")
        try:
            function, imports, tables = self._parse(await request.body())
        except ValueError as exc:
            return self._refused("BAD_REQUEST", f"not a protocol v1 call: {exc}")
        if function not in self._allowed:
            return self._refused("FUNCTION_NOT_ALLOWED", f"{function} is not in this agent's allowed_functions")
        sid = request.path_params.get("session")
        if sid is not None:
            return await self._session_call(str(sid), function, imports, tables)
        try:
            async with self.pool.connection() as connection:
                return await self._run(connection, function, imports, tables)
        except PoolExhausted as exc:
            return self._refused("RESOURCE_FAILURE", str(exc))
        except Exception as exc:  # noqa: BLE001 - pyrfc's errors, mapped to the protocol
            return self._mapped(function, exc)

    async def _session_call(self, sid: str, function: str, imports: Mapping[str, Any],
                            tables: Mapping[str, list[dict[str, Any]]]) -> Response:
        await self._expire_sessions()
        session = self.sessions.get(sid)
        if session is None:
            return self._refused("SESSION_NOT_FOUND", "no such session (ended or idle too long)")
        if session.busy:
            return self._refused("BAD_REQUEST", "the session is running another call")
        session.busy = True
        try:
            return await self._run(session.connection, function, imports, tables)
        except Exception as exc:  # noqa: BLE001 - pyrfc's errors, mapped to the protocol
            if breaks_connection(exc):
                self.sessions.pop(sid, None)
                await self.pool.release(session.connection, broken=True)
            return self._mapped(function, exc)
        finally:
            session.busy = False
            session.last_used = self._monotonic()

    def _mapped(self, function: str, exc: Exception) -> Response:
        error = error_of(exc)
        log.warning("sap-agent: %s failed: %s", function, error.describe())
        return self._error(error)

    async def _info(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refused("AGENT_UNAUTHORIZED", "bearer token missing or wrong")
        try:
            async with self.pool.connection() as connection:
                result = await asyncio.to_thread(connection.call, "RFC_SYSTEM_INFO")
                attributes = getattr(connection, "get_connection_attributes", None)
                found = await asyncio.to_thread(attributes) if attributes is not None else {}
        except PoolExhausted as exc:
            return self._refused("RESOURCE_FAILURE", str(exc))
        except Exception as exc:  # noqa: BLE001 - pyrfc's errors, mapped to the protocol
            return self._mapped("RFC_SYSTEM_INFO", exc)
        info = encode(result.get("RFCSI_EXPORT") or {})
        shown = self.config.shown()
        system = {"sid": info.get("RFCSYSID", ""), "release": info.get("RFCSAPRL", ""),
                  "client": str(found.get("client") or shown.get("client", "")),
                  "user": str(found.get("user") or shown.get("user", "")), "host": info.get("RFCHOST", ""),
                  "codepage": info.get("RFCCHARTYP", ""), "kernel": info.get("RFCKERNRL", ""),
                  "timezone_offset": str(info.get("RFCTZONE", "")).strip()}
        return self._json({"protocol": protocol.VERSION, "agent": AGENT_NAME, "system": system,
                           "pool": {"size": self.pool.size, "in_use": self.pool.in_use}})

    def create_app(self) -> Starlette:
        prefix = protocol.PREFIX
        return Starlette(routes=[
            Route(f"{prefix}/info", self._info, methods=["GET"]),
            Route(f"{prefix}/call", self._call, methods=["POST"]),
            Route(f"{prefix}/sessions", self._open, methods=["POST"]),
            Route(f"{prefix}/sessions/{{session}}/call", self._call, methods=["POST"]),
            Route(f"{prefix}/sessions/{{session}}", self._close, methods=["DELETE"]),
        ], lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.aclose()

    async def aclose(self) -> None:
        for session in self.sessions.values():
            await self.pool.release(session.connection, broken=True)
        self.sessions.clear()
        await self.pool.aclose()
