"""Serve an ASGI app with uvicorn inside the caller's event loop, on a socket we bind ourselves.

Binding first lets port 0 pick a free loopback port (tests, demo) and report it; signal handling
stays with the caller (`ml-connector run` owns SIGINT/SIGTERM for all roles at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


class _EmbeddedServer(uvicorn.Server):
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so (else ~40 ms waits).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serving(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` while the block runs; yields its base URL (http://host:port)."""
    sock = bind(host, port)
    server = _EmbeddedServer(uvicorn.Config(
        app, log_level="warning", lifespan="off", access_log=False, backlog=2048,
        timeout_keep_alive=30,
    ))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # surfaces the startup error
        await asyncio.sleep(0.01)
    bound_port = sock.getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def serve_until(app: Any, host: str, port: int, stop: asyncio.Event) -> None:
    async with serving(app, host, port):
        await stop.wait()
