"""Config sections for operating the connector: the admin listener and logging.

Kept apart from config.py's business sections; `Config` has one field for each.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml_connector.core.flowspec import Duration

__all__ = ["ADMIN_PORT_ENV", "AdminConfig", "LoggingConfig", "parse_level"]

#: Overrides `admin.port`, so several processes on one machine can share one config file.
ADMIN_PORT_ENV = "MLC_ADMIN_PORT"

_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def parse_level(value: str) -> int:
    """'debug', 'INFO', ... -> the logging level; anything else is a ValueError naming the choices."""
    name = value.strip().upper()
    if name not in _LEVELS:
        raise ValueError(f"{value!r} is not a log level; use one of {', '.join(_LEVELS)}")
    return int(logging.getLevelName(name))


class AdminConfig(BaseModel):
    """Health checks and metrics of every process, on an internal address of their own.

    Loopback by default: Prometheus or the load balancer's probe runs on the same host, or the
    operator binds a private interface. Port 0 takes a free port (logged at start).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    #: /readyz fails when a flow polled here has completed no poll for this many of its intervals.
    stuck_after_intervals: int = Field(default=3, ge=1)
    #: /readyz fails (on dispatcher processes) when the oldest notification due waits longer.
    max_pending_age: Duration = timedelta(minutes=15)

    @field_validator("max_pending_age")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value


class LoggingConfig(BaseModel):
    """Log format and a level per component (logger name), e.g. `ml_connector.sources: DEBUG`.

    The command line's --log-format and --log-level win over these.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["human", "json"] | None = None
    levels: dict[str, str] = Field(default_factory=dict)

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: dict[str, str]) -> dict[str, str]:
        for level in value.values():
            parse_level(str(level))
        return value
