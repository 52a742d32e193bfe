"""Who holds each flow's poller lock (store.locks), asked without taking the lock.

PostgreSQL: the advisory lock's holder in pg_locks, named by its session's application_name
(`ml-connector <host>:<pid>`). SQLite: the kernel's list of flock holders (/proc/locks on Linux)
for the lock file's inode, and the label the holder wrote into the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Connection, text

from ml_connector.store.locks import _halves, flow_lock_key, lock_file_path

_PG_HOLDER = text(
    "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid::bigint = :hi AND l.objid::bigint = :lo AND l.objsubid = 1"
)
PROC_LOCKS = Path("/proc/locks")


def pg_holder(conn: Connection, flow: str) -> str | None:
    """The application name (or pid) of the session holding `flow`'s advisory lock, if any."""
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    hi, lo = _halves(flow_lock_key(str(schema), flow))
    row = conn.execute(_PG_HOLDER, {"hi": hi, "lo": lo}).first()
    if row is None:
        return None
    return str(row.application_name or f"pid {row.pid}")


def _flock_holders(proc_locks: Path) -> dict[int, int] | None:
    """inode -> pid of each FLOCK in the kernel's list; None when the list cannot be read."""
    try:
        lines = proc_locks.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    holders: dict[int, int] = {}
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (blocked waiters are marked "->")
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[4].isdigit():
            inode = parts[5].rsplit(":", 1)[-1]
            if inode.isdigit():
                holders[int(inode)] = int(parts[4])
    return holders


def file_holder(database: Path, flow: str, proc_locks: Path = PROC_LOCKS) -> str | None:
    """The label of the process holding `flow`'s lock file; None when no process holds it.

    Where the kernel's list cannot be read, the label in the file is shown with "(last holder)".
    """
    path = lock_file_path(database, flow)
    try:
        inode = os.stat(path).st_ino
        label = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    holders = _flock_holders(proc_locks)
    if holders is None:
        return f"{label} (last holder)" if label else None
    pid = holders.get(inode)
    if pid is None:
        return None
    return label or f"pid {pid}"
