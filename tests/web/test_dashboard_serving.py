"""`ml-connector run`'s web role serves the dashboard on its own configured address, beside the webhooks."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx

from tests.support.pipeline import pipeline


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_web_role_serves_the_dashboard_where_configured(tmp_path: Path) -> None:
    port, webhook_port = free_port(), free_port()

    def tweak(config: dict[str, Any]) -> None:
        config["dashboard"] = {"host": "127.0.0.1", "port": port, "secure_cookies": False}

    async with pipeline(tmp_path, tweak=tweak, env={"MLC_WEBHOOK_PORT": str(webhook_port)}) as p:
        stop = asyncio.Event()
        web = asyncio.create_task(p.connector.run(stop, ("web",)))
        try:
            async with httpx.AsyncClient() as client:
                for _ in range(200):
                    try:
                        login = await client.get(f"http://127.0.0.1:{port}/login")
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
                assert login.status_code == 200 and "Sign in" in login.text
                assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 303
                # the webhook listener is another one, without the dashboard
                assert (await client.get(f"http://127.0.0.1:{webhook_port}/login")).status_code == 404
        finally:
            stop.set()
            await web

