"""The SQLite store file is private: created 0600, like the key file.

It holds ciphertext, but also keyed hashes, flow names, statuses, timestamps and the audit trail,
none of which other local users need. SQLite creates a new database with the process's umask
(0644 as a rule), and gives the -wal and -shm files the database file's own mode; so creating the
empty database file ourselves, 0600, before SQLite first opens it makes all three private. An
existing database keeps the mode its owner gave it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["PRIVATE_MODE", "create_private_database"]

PRIVATE_MODE = 0o600


def create_private_database(database: str | None) -> None:
    """Create `database` (an SQLAlchemy SQLite database path) empty and 0600 unless it exists.

    A zero-byte file is a valid empty SQLite database. Paths SQLite opens another way (":memory:",
    "file:" URIs) and paths whose directory does not exist are left for SQLite to report.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        try:
            os.fchmod(fd, PRIVATE_MODE)  # the umask only removes bits, but be explicit
        finally:
            os.close(fd)
