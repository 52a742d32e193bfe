"""The embedded server: serve_until (the web role of `ml-connector run`) freezes the startup heap."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import httpx

from ml_connector.web.server import serve_until, serving


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def test_serving_answers_on_the_yielded_url() -> None:
    async with serving(hello) as url, httpx.AsyncClient() as client:
        response = await client.get(url + "/")
    assert response.text == "hello"


async def test_serve_until_freezes_what_is_alive_once_up_and_stops_on_the_event() -> None:
    gc.unfreeze()
    stop = asyncio.Event()
    task = asyncio.create_task(serve_until(hello, "127.0.0.1", 0, stop))
    try:
        while gc.get_freeze_count() == 0:
            assert not task.done(), task
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    finally:
        stop.set()
        gc.unfreeze()  # this is a test process: give its objects back to the collector
        await asyncio.gather(task, return_exceptions=True)
