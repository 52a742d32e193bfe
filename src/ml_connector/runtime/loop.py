"""Run the connector's event loop: uvloop where it is installed, asyncio's own loop otherwise.

uvloop (libuv) roughly halves the loop's own cost per socket event, which matters when one
process serves thousands of webhook requests a second next to the dispatcher. It is a
dependency everywhere but Windows; `MLC_EVENT_LOOP=asyncio` switches it off (to rule it out
when diagnosing), `uvloop` insists on it. Every entry point (`ml-connector`, the benchmarks)
goes through `run`, so they all measure and run the same loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from ml_connector.errors import ConfigError

__all__ = ["LOOP_ENV", "loop_factory", "run"]

T = TypeVar("T")

LOOP_ENV = "MLC_EVENT_LOOP"
_CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory(environ: Mapping[str, str] = os.environ) -> Callable[[], asyncio.AbstractEventLoop]:
    """The factory of the loop `run` uses, chosen by MLC_EVENT_LOOP (auto, uvloop or asyncio)."""
    choice = environ.get(LOOP_ENV, "auto").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise ConfigError(f"{LOOP_ENV} must be one of {', '.join(_CHOICES)}, got {choice!r}")
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(f"{LOOP_ENV}=uvloop but uvloop is not installed (it does not exist on Windows)") from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T], *, environ: Mapping[str, str] = os.environ) -> T:
    """`asyncio.run(coro)` on the loop `loop_factory` picks (same shutdown: tasks, generators, executor)."""
    try:
        factory = loop_factory(environ)
    except ConfigError:
        coro.close()  # never started: no "coroutine was never awaited" warning on top of the error
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
