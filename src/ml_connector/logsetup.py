"""Logging for the `ml-connector` command: the human or JSON format, a level per component.

Every record passes one filter on the handler before either format sees it
(logmask.RedactFilter): the message is rendered, the configured secrets masked and phone numbers
scrubbed by core.redact, exception text included. So neither format can show what the other
hides. JSON lines carry `flow`, `notification_id` and `twilio_sid` when known (logctx, or an
`extra=` on the call).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from ml_connector import logctx
from ml_connector.config_ops import parse_level
from ml_connector.logmask import RedactFilter

__all__ = ["FORMATS", "ContextFilter", "JsonFormatter", "configure", "secrets_of"]

FORMATS = ("human", "json")
_HUMAN = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"


class ContextFilter(logging.Filter):
    """Adds the fields logctx holds (an `extra=` on the call wins) and their human suffix."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in logctx.current().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        shown = [f"{name}={getattr(record, name)}" for name in logctx.FIELDS
                 if getattr(record, name, None) is not None]
        record.context = f" [{' '.join(shown)}]" if shown else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, context fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in logctx.FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


class _HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "context"):
            record.context = ""
        return super().format(record)


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


_handler: _Stderr | None = None
_redact = RedactFilter()


def configure(*, level: int, fmt: str = "human", levels: Mapping[str, str] | None = None,
              secrets: Iterable[str] = ()) -> None:
    """(Re)configure the root handler; idempotent, so loading the config may refine it."""
    global _handler
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use human or json")
    root = logging.getLogger()
    if _handler is None or _handler not in root.handlers:
        _handler = _Stderr()
        _handler.addFilter(_redact)
        _handler.addFilter(ContextFilter())
        root.addHandler(_handler)
    _handler.setFormatter(JsonFormatter() if fmt == "json" else _HumanFormatter(_HUMAN))
    root.setLevel(level)
    for name, value in (levels or {}).items():
        logging.getLogger(name).setLevel(parse_level(value))
    _redact.secrets.update(s for s in secrets if s)


def secrets_of(model: Any) -> set[str]:
    """Every SecretStr value in a config model, and every password in its URLs' userinfo."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, str) and "://" in value:
            with contextlib.suppress(ValueError):
                found.add(urlsplit(value).password or "")
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name, None))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(model)
    return {s for s in found if len(s) >= 4}  # a 1-3 character secret would mask ordinary words
