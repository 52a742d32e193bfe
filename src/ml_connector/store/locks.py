"""Poller leadership: each flow is polled by one process at a time, and taken over when it dies.

PostgreSQL (many processes): a session-level advisory lock per flow, `pg_try_advisory_lock` on a
stable 64-bit hash of (schema, flow), held on a dedicated autocommit connection for as long as
this process polls the flow. Nothing on the server times out a live holder; a dead holder's
session ends and the lock frees with it:

| how the holder dies                  | how PostgreSQL notices                                   |
| ------------------------------------ | -------------------------------------------------------- |
| process killed (SIGKILL, OOM, crash) | the kernel closes its socket: at once                    |
| machine gone, network cut            | server TCP keepalives: ~KEEPALIVE_IDLE + INTERVAL*COUNT  |
| server restarted                     | every session ends; the holder sees its lock gone        |

The holder re-checks its lock before each poll and the poll's commit re-checks, in the commit's
own transaction, that this session still holds it (fencing, see `assert_held`): a process that
lost its connection stops polling instead of racing the new leader.

SQLite (one machine): an exclusive `flock` on a file next to the database, one per flow. The
kernel drops it when the process dies, with no lease to expire and no clock to trust, which a
row lease in the store cannot offer. SQLite itself needs a local filesystem, so flock's weakness
on network filesystems costs nothing more.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from ml_connector.errors import MlcError

log = logging.getLogger(__name__)

#: Server-side keepalive (seconds): a vanished client's session ends in about 5 + 2 * 3 = 11 s.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 5, 2, 3
#: Unacknowledged data is given up on after this long (ms), on both ends.
TCP_USER_TIMEOUT_MS = 10_000
#: The lock session's statements never wait (try-lock, catalog reads): a slow one means trouble.
STATEMENT_TIMEOUT_MS = 5_000

_CLIENT_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": KEEPALIVE_IDLE,
    "keepalives_interval": KEEPALIVE_INTERVAL,
    "keepalives_count": KEEPALIVE_COUNT,
    "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
    "connect_timeout": 5,
}
#: (setting, value, first server version that has it): the lock session's own settings. The lock
#: session sits idle between polls by design, so a role-wide idle_session_timeout must not end it.
_SESSION_SETTINGS = (
    ("tcp_keepalives_idle", KEEPALIVE_IDLE, 0),
    ("tcp_keepalives_interval", KEEPALIVE_INTERVAL, 0),
    ("tcp_keepalives_count", KEEPALIVE_COUNT, 0),
    ("tcp_user_timeout", TCP_USER_TIMEOUT_MS, 120000),
    ("statement_timeout", STATEMENT_TIMEOUT_MS, 0),
    ("idle_session_timeout", 0, 140000),
)
_SET = text(
    "SELECT set_config(:name, :value, false) WHERE current_setting('server_version_num')::int >= :since"
)
# A bigint advisory key shows in pg_locks as classid (high 32 bits), objid (low 32 bits), objsubid 1.
_HELD_BY = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1 AND pid = :pid)"
)
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


class LockLost(MlcError):
    """This process no longer holds its flow's poller lock; the poll was not committed."""

    retriable = True


def flow_lock_key(schema: str, flow: str) -> int:
    """The advisory lock key of `flow`: stable across processes, versions and Python runs.

    Advisory locks are database-wide, so the schema is part of the key: two deployments in two
    schemas of one database never block each other's flows of the same name.
    """
    digest = hashlib.sha256(f"ml-connector/poller/{schema}/{flow}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _halves(key: int) -> tuple[int, int]:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


class PgFlowLock:
    """The poller lock of one flow on PostgreSQL, on its own connection (see the module docstring)."""

    def __init__(self, url: URL, flow: str, *, label: str) -> None:
        self.flow = flow
        self._label = label[:63]  # application_name's limit: admins see who holds it in pg_stat_activity
        self._engine: Engine = create_engine(url, poolclass=NullPool, connect_args=_CLIENT_KEEPALIVE)
        self._conn: Connection | None = None
        self._key: int | None = None
        self._pid: int | None = None
        self._held = False
        self._mutex = threading.Lock()  # acquire() may still run in a worker thread when release() comes

    @property
    def key(self) -> int | None:
        """The advisory key, once a connection has told us the schema."""
        return self._key

    def acquire(self) -> bool:
        """Hold the lock (try once, never wait); True while this process holds it.

        Called before every poll: when already held, this re-checks that the session still
        holds it, and a lost lock is given up and tried afresh.
        """
        with self._mutex:
            try:
                if self._held and self._still_held():
                    return True
                if self._held:
                    log.warning("flow %s: the poller lock was lost; polling stops until it is won again", self.flow)
                    self._drop()
                return self._try()
            except DBAPIError as exc:
                was_held = self._held
                self._drop()
                if was_held:  # the lock's session died (a database restart): try afresh at once
                    log.warning("flow %s: the poller lock's session ended (%s); taking the lock again",
                                self.flow, type(exc.orig).__name__)
                    with contextlib.suppress(DBAPIError):
                        if self._try():
                            return True
                        self._drop()
                    return False
                log.warning("flow %s: poller lock unavailable (%s)", self.flow, type(exc.orig).__name__)
                return False

    def release(self) -> None:
        """Give the lock up (shutdown): another process takes the flow at its next try."""
        with self._mutex:
            if self._held and self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                except DBAPIError:
                    pass  # the session is gone, and the lock with it
            self._drop()
            self._engine.dispose()

    def assert_held(self, conn: Connection) -> None:
        """Raise LockLost unless this lock's session holds the lock, seen from `conn`'s transaction.

        Runs inside a poll's commit: the commit goes through only while the lock session is the
        holder, so a process cut off from the database cannot commit over its successor.
        """
        if not self._held or self._key is None:
            raise LockLost(f"flow {self.flow}: this process does not hold the poller lock")
        hi, lo = _halves(self._key)
        if not conn.execute(_HELD_BY, {"hi": hi, "lo": lo, "pid": self._pid}).scalar_one():
            raise LockLost(f"flow {self.flow}: the poller lock's session ended; nothing was committed")

    # -- internals -----------------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                for name, value, since in _SESSION_SETTINGS:
                    conn.execute(_SET, {"name": name, "value": str(value), "since": since})
                conn.execute(text("SELECT set_config('application_name', :name, false)"), {"name": self._label})
                schema = conn.execute(text("SELECT current_schema()")).scalar_one()
                self._pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            except BaseException:
                conn.close()
                raise
            self._key = flow_lock_key(str(schema), self.flow)
            self._conn = conn
        return self._conn

    def _try(self) -> bool:
        conn = self._connection()
        self._held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar_one())
        return self._held

    def _still_held(self) -> bool:
        assert self._conn is not None and self._key is not None  # noqa: S101 - _held implies both
        hi, lo = _halves(self._key)
        return bool(self._conn.execute(_HELD_BY, {"hi": hi, "lo": lo, "pid": self._pid}).scalar_one())

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except DBAPIError:
                pass


class FileFlowLock:
    """The poller lock of one flow on SQLite: an exclusive flock on `<database>.poller-<flow>.lock`."""

    def __init__(self, database: Path, flow: str, *, label: str) -> None:
        self.flow = flow
        self.path = lock_file_path(database, flow)
        self._label = label
        self._fd: int | None = None
        self._mutex = threading.Lock()

    def acquire(self) -> bool:
        """Hold the lock (try once, never wait); True while this process holds it."""
        with self._mutex:
            if self._fd is not None:
                return True
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            # Who holds it, for an admin reading the file; the lock itself is the flock, not this text.
            os.ftruncate(fd, 0)
            os.write(fd, f"{self._label}\n".encode())
            self._fd = fd
            return True

    def release(self) -> None:
        """Give the lock up. The file stays: deleting it would race another process opening it."""
        with self._mutex:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)  # closing the only descriptor drops the flock

    def assert_held(self, conn: Connection) -> None:
        """Raise LockLost unless held. A flock cannot be lost while its process lives."""
        if self._fd is None:
            raise LockLost(f"flow {self.flow}: this process does not hold the poller lock")


#: What `SqlStore.flow_lock` hands out.
FlowLock = PgFlowLock | FileFlowLock


def lock_file_path(database: Path, flow: str) -> Path:
    """`<database>.poller-<flow>.lock`; names that are not file-safe get a readable slug plus a hash."""
    slug = _SLUG.sub("_", flow)
    if slug != flow:
        slug = f"{slug}-{hashlib.sha256(flow.encode()).hexdigest()[:12]}"
    return database.with_name(f"{database.name}.poller-{slug}.lock")
