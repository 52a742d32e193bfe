"""Serve an ASGI app with uvicorn inside the caller's event loop, on a socket we bind ourselves.

Binding first lets port 0 pick a free loopback port (tests, demo) and report it; signal handling
stays with the caller (`ml-connector run` owns SIGINT/SIGTERM for all roles at once). uvicorn
parses HTTP with httptools when it is installed (a dependency), else with h11.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
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
async def serving(app: Any, host: str = "127.0.0.1", port: int = 0,
                  sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve `app` while the block runs (on `sock` when given, bound already); yields its base URL."""
    sock = sock or bind(host, port)
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


def freeze_long_lived_objects() -> None:
    """Exempt everything alive now from the cyclic garbage collector's full collections.

    A full collection walks every tracked object: with the modules, config, store and app of a
    running connector (~100,000 objects) that stops the event loop for 50-90 ms, every second or
    two under load: that was the webhooks' p99 (and a backfill's poll spent a tenth of its time
    there). Called by `ml-connector run` once the connector is built and again once the server is
    up, when what is alive is what lives as long as the process (garbage is collected first, so
    none is kept). Not for test processes, whose objects do not live that long.
    """
    gc.collect()
    gc.freeze()


async def serve_until(app: Any, host: str, port: int, stop: asyncio.Event,
                      sock: socket.socket | None = None) -> None:
    """Serve `app` until `stop` is set: the web role of `ml-connector run`."""
    async with serving(app, host, port, sock):
        freeze_long_lived_objects()
        await stop.wait()
