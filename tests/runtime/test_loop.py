"""The loop runner: uvloop when installed (unless MLC_EVENT_LOOP says otherwise), asyncio's loop else."""

from __future__ import annotations

import asyncio
import sys
import warnings

import pytest

from ml_connector.errors import ConfigError
from ml_connector.runtime.loop import LOOP_ENV, loop_factory, run


async def loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_returns_the_coroutines_result() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert run(answer(), environ={}) == 42


def test_uses_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert run(loop_module(), environ={}).startswith("uvloop")
    assert run(loop_module(), environ={LOOP_ENV: "uvloop"}).startswith("uvloop")


def test_asyncio_on_request() -> None:
    assert run(loop_module(), environ={LOOP_ENV: " AsyncIO "}).startswith("asyncio")


def test_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    assert run(loop_module(), environ={}).startswith("asyncio")
    assert loop_factory({LOOP_ENV: "auto"}) is asyncio.new_event_loop


def test_insisting_on_missing_uvloop_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        loop_factory({LOOP_ENV: "uvloop"})


def test_unknown_choice_is_refused_and_the_coroutine_closed() -> None:
    coro = loop_module()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would surface here
        with pytest.raises(ConfigError, match=LOOP_ENV):
            run(coro, environ={LOOP_ENV: "trio"})
    assert coro.cr_frame is None  # closed


def test_exceptions_propagate_and_the_loop_is_closed() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def fail() -> None:
        loops.append(asyncio.get_running_loop())
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run(fail(), environ={})
    assert loops[0].is_closed()


def test_the_loop_variable_is_listed_in_help() -> None:
    from ml_connector.config import env_settings

    assert LOOP_ENV in [setting.name for setting in env_settings()]
