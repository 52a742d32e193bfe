"""What a log line is about (flow, notification, Twilio SID), carried by context variables.

Each poll loop and each send runs in its own asyncio task, and a task starts with a copy of
the context: what one binds shows on its own log lines only. The log formatter (logsetup)
reads these; an `extra={...}` on a call wins over them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["FIELDS", "bind", "bound", "current"]

_flow: ContextVar[str | None] = ContextVar("mlc_flow", default=None)
_notification: ContextVar[int | None] = ContextVar("mlc_notification_id", default=None)
_sid: ContextVar[str | None] = ContextVar("mlc_twilio_sid", default=None)

#: Field name on a log record -> its context variable.
FIELDS: dict[str, ContextVar[Any]] = {"flow": _flow, "notification_id": _notification, "twilio_sid": _sid}


def bind(**values: Any) -> None:
    """Set fields for the rest of the current task (a task of its own: a poll loop, a send)."""
    for name, value in values.items():
        FIELDS[name].set(value)


@contextlib.contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Set fields for the block only (work done one item after another in one task)."""
    tokens = [(FIELDS[name], FIELDS[name].set(value)) for name, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current() -> dict[str, Any]:
    """The fields set now (unset ones left out)."""
    return {name: var.get() for name, var in FIELDS.items() if var.get() is not None}
