"""The agent's RFC connections: at most `size` open, opened when first needed, reused.

Each open RFC connection holds a user context on SAP and, while a call runs, a dialog work
process; the pool size is the agent's own cap. pyrfc is blocking, so opening, calling and closing
run in worker threads. A connection that broke (logon, communication) is closed, not reused.
A caller waiting longer than `acquire_timeout` for a free connection gets RESOURCE_FAILURE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from ml_connector.sap_agent.backend import breaks_connection

log = logging.getLogger(__name__)


class PoolExhausted(Exception):
    """No connection became free within the acquire timeout."""


class ConnectionPool:
    def __init__(self, connect: Callable[[], Any], *, size: int, acquire_timeout: float) -> None:
        self._connect = connect
        self.size = size
        self.acquire_timeout = acquire_timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Any] = []
        self.in_use = 0
        self.opened = 0

    async def acquire(self) -> Any:
        """A connection for one caller's exclusive use (open a new one when none is idle)."""
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self.acquire_timeout or 0.001)
        except TimeoutError:
            raise PoolExhausted(f"all {self.size} RFC connections of the agent are busy") from None
        try:
            if self._idle:
                connection = self._idle.pop()
            else:
                connection = await asyncio.to_thread(self._connect)
                self.opened += 1
        except BaseException:
            self._slots.release()
            raise
        self.in_use += 1
        return connection

    async def release(self, connection: Any, *, broken: bool = False) -> None:
        self.in_use -= 1
        try:
            if broken:
                await self._close(connection)
            else:
                self._idle.append(connection)
        finally:
            self._slots.release()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """``async with pool.connection() as conn``; broken when the block raises a connection error."""
        connection = await self.acquire()
        broken = False
        try:
            yield connection
        except BaseException as exc:
            broken = breaks_connection(exc)
            raise
        finally:
            await self.release(connection, broken=broken)

    @staticmethod
    async def _close(connection: Any) -> None:
        close = getattr(connection, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(close)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await self._close(connection)
