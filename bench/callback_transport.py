"""An httpx transport over aiohttp, for the simulator's status callbacks in the benchmarks.

The simulator posts its callbacks with an httpx client. Under load thousands of callbacks are
queued at once, and httpcore's pool scans every queued request against every connection each
time one is assigned (quadratic; py-spy shows the simulator's loop inside
`AsyncConnectionPool._assign_requests_to_connections`), so the simulator stops answering
REST requests at all after about a thousand messages. Handing the simulator this transport
(its `callback_transport` parameter) keeps the benchmark measuring the connector.
"""

from __future__ import annotations

import aiohttp
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
