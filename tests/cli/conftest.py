"""Fixtures for driving `ml-connector` the way a user does: CliRunner, config files, served simulators."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from ml_connector.cli import main
from ml_connector.demo import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, DEMO_SENDER, DEMO_TZ, demo_config
from ml_connector.sim.demo_erp import DemoErp
from ml_connector.sim.twilio import Account, TwilioSim
from ml_connector.store.crypto import create_key_file
from ml_connector.web.server import serving

#: What every command gets from the environment unless a test says otherwise.
BASE_ENV = {"COLUMNS": "120", "MLC_CONFIG": None, "MLC_MASTER_KEY": None}

Invoke = Callable[..., Result]


def no_traceback(result: Result) -> None:
    """A user error must never show a Python traceback, and must end by exit code, not by a crash."""
    assert "Traceback" not in result.output + result.stderr, result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def run_cli(args: Sequence[str], *, input: str | None = None, env: dict[str, str | None] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input, env={**BASE_ENV, **(env or {})},
                                catch_exceptions=True)
    no_traceback(result)
    return result


@pytest.fixture
def invoke() -> Invoke:
    return run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path, twilio_url: str = "http://127.0.0.1:1", *,
                 tweak: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """The demo's config over `directory` (demo ERP + key file created), pointing at `twilio_url`."""
    config = demo_config(directory, twilio_url, free_port())
    if tweak:
        tweak(config)
    path = directory / "ml-connector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    if not (directory / "ml-connector.key").exists():
        create_key_file(directory / "ml-connector.key")
    if not (directory / "demo-erp.db").exists():
        DemoErp(directory / "demo-erp.db", tz=DEMO_TZ).create()
    return path


@dataclass
class ServedSim:
    url: str
    sim: TwilioSim


def served_in_thread(sim: TwilioSim) -> Iterator[ServedSim]:
    """Serve `sim` on a loopback port from its own thread (sync CLI calls can reach it) until closed."""
    ready, url, loop, stop = threading.Event(), [], asyncio.new_event_loop(), asyncio.Event()

    async def serve() -> None:
        async with serving(sim.create_app()) as base_url:
            url.append(base_url)
            ready.set()
            await stop.wait()
        await sim.aclose()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the simulator did not start"
    try:
        yield ServedSim(url[0], sim)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.fixture
def served_twilio() -> Iterator[ServedSim]:
    """The Twilio simulator on a loopback port, served from its own thread so sync CLI calls can reach it."""
    yield from served_in_thread(TwilioSim(
        accounts=(Account(sid=DEMO_ACCOUNT_SID, auth_token=DEMO_AUTH_TOKEN, numbers=(DEMO_SENDER,)),),
        api_keys=(), services=()))


@pytest.fixture
def cli_env() -> dict[str, str]:
    """The environment for subprocess runs: the venv's PATH, no inherited MLC_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLC_")}
    env["COLUMNS"] = "120"
    return env
