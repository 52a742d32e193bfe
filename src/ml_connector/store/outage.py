"""Store outages: which database errors mean "the store is away", and one log line per outage.

A PostgreSQL restart, a dropped connection or SQLite locked beyond its busy timeout are not bugs
of the statement that met them: every role waits and tries again (errors.StoreUnavailable). The
transaction helpers in store.engine translate those errors and report each transaction's end
here, so an outage is logged once when it starts and once when it ends, whatever the number of
pollers, dispatch workers and webhook requests that meet it meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

#: SQLite's words for "busy or away" (its OperationalError also means "no such table" and the like).
_SQLITE_AWAY = ("database is locked", "database table is locked", "database is busy",
                "unable to open database file", "disk i/o error")


def is_outage(exc: BaseException) -> bool:
    """True for errors that say the database is away or busy, not that the statement is wrong."""
    if not isinstance(exc, DBAPIError):
        return False
    if isinstance(exc.orig, sqlite3.Error):
        return any(words in str(exc.orig).lower() for words in _SQLITE_AWAY)
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


def describe(exc: BaseException) -> str:
    """The driver's first line, without the SQL or parameters SQLAlchemy appends."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"[:300]


@dataclass
class StoreHealth:
    """Whether the last transaction on an engine worked; logs the changes, not every failure."""

    name: str
    down_since: float | None = None
    problem: str | None = None
    outages: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def available(self) -> bool:
        return self.down_since is None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.problem = describe(exc)
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
            self.outages += 1
        log.error("store %s unavailable (%s): waiting and reconnecting; webhooks answer 503 meanwhile",
                  self.name, self.problem)

    def worked(self) -> None:
        if self.down_since is None:  # the usual case: no lock, nothing to say
            return
        with self._lock:
            if self.down_since is None:
                return
            lasted, self.down_since, self.problem = time.monotonic() - self.down_since, None, None
        log.warning("store %s available again after %.1f s", self.name, lasted)


__all__ = ["StoreHealth", "describe", "is_outage"]
