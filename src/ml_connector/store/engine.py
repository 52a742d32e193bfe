"""Building engines: which URLs we accept, and the per-connection settings each database needs.

SQLite: WAL (readers never block the writer), synchronous=NORMAL (durable at checkpoints, fast),
busy_timeout 30 s, foreign keys on. Python's sqlite3 transaction handling is switched off so we
emit BEGIN ourselves: `write=True` connections start with BEGIN IMMEDIATE, which takes the write
lock up front, so a claim's SELECT and UPDATE cannot interleave with another process's claim.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ml_connector.errors import ConfigError, StoreUnavailable
from ml_connector.store.files import create_private_database
from ml_connector.store.outage import StoreHealth, is_outage

_WRITE = "mlc_write"
_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
)


def parse_url(url: str) -> URL:
    """Accept sqlite file URLs and PostgreSQL URLs; route PostgreSQL to psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "database url is not a valid URL (expected sqlite:///path.db or postgresql://...)"
        ) from None
    driver = _DRIVERS.get(parsed.drivername)
    shown = parsed.render_as_string(hide_password=True)
    if driver is None:
        raise ConfigError(
            f"database url {shown}: unsupported scheme {parsed.drivername!r}; "
            "use sqlite:///path.db or postgresql://user@host/db"
        )
    if driver == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            f"database url {shown}: an in-memory SQLite database cannot be shared between "
            "connections; give a file path (sqlite:///path.db)"
        )
    return parsed.set(drivername=driver)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for `url` with the settings above."""
    parsed = parse_url(url)
    if parsed.drivername == "sqlite":
        create_private_database(parsed.database)  # before SQLite creates it with the umask's mode
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        _SQLITE_WRITERS[engine] = threading.Lock()
        _HEALTH[engine] = StoreHealth("sqlite")
        return engine
    engine = create_engine(parsed, pool_pre_ping=True)
    _HEALTH[engine] = StoreHealth("postgresql")
    return engine


#: Each engine's outage state (store.outage), kept beside the engine rather than on it.
_HEALTH: WeakKeyDictionary[Engine, StoreHealth] = WeakKeyDictionary()


def health(engine: Engine) -> StoreHealth:
    """The outage state of `engine` (created on first use for engines made elsewhere)."""
    found = _HEALTH.get(engine)
    if found is None:
        found = _HEALTH[engine] = StoreHealth(engine.dialect.name)
    return found


@contextmanager
def _watched(engine: Engine) -> Iterator[None]:
    """Translate outage errors into StoreUnavailable and tell the engine's health how it went."""
    state = health(engine)
    try:
        yield
    except Exception as exc:
        if not is_outage(exc):
            raise
        state.failed(exc)
        raise StoreUnavailable(f"store unavailable: {state.problem}") from exc
    state.worked()


#: One lock per SQLite engine: its writers queue here, in this process, instead of in SQLite's
#: busy handler, which sleeps 1, 2, 5, 10 ... up to 100 ms between tries and so leaves the
#: database idle long after the lock was freed (the poller, claims, attempt results and status
#: callbacks all write). Other processes still meet the busy handler, as they must.
_SQLITE_WRITERS: WeakKeyDictionary[Engine, threading.Lock] = WeakKeyDictionary()


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: BEGIN IMMEDIATE on SQLite, plain BEGIN on PostgreSQL."""
    queue = _SQLITE_WRITERS.get(engine) if engine.dialect.name == "sqlite" else None
    with _watched(engine), queue if queue is not None else nullcontext(), engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (deferred BEGIN on SQLite: never waits for the write lock)."""
    with _watched(engine), engine.connect() as conn, conn.begin():
        yield conn
