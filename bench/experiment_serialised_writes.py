"""Experiment, not a fix: run a benchmark with every SqlStore write call behind one in-process lock.

    python bench/experiment_serialised_writes.py bench/webhooks.py --store sqlite --messages 3000
    python bench/experiment_serialised_writes.py bench/e2e.py --store sqlite --rows 3000

On SQLite every write transaction starts with BEGIN IMMEDIATE; threads that find the write
lock taken wait in SQLite's busy handler, which sleeps in growing steps (1, 2, 5, 10 ... 100
ms) instead of waking when the lock frees. Queuing the writers on a Python lock first shows
what that waiting costs. The store's code is wrapped at run time, in this process only.
"""

from __future__ import annotations

import functools
import runpy
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml_connector.store.sql import SqlStore

WRITES = ("commit_poll", "claim_due", "finish_attempt", "apply_status", "claim_write_backs", "finish_write_back")


def serialise(lock: threading.Lock) -> None:
    for name in WRITES:
        original: Callable[..., Any] = getattr(SqlStore, name)

        @functools.wraps(original)
        def locked(self: SqlStore, *args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(SqlStore, name, locked)


if __name__ == "__main__":
    serialise(threading.Lock())
    script = Path(sys.argv[1]).resolve()
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(script.parent))
    print("experiment: SqlStore writes serialised by an in-process lock")
    runpy.run_path(str(script), run_name="__main__")
