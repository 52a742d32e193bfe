"""Experiment, not a fix: start each keyset page's index range at the cursor, not at the window start.

    python bench/experiment_cursor_bound.py bench/polling.py --rows 1000000

The SQL source pages with `changed >= lo AND changed < hi AND (changed > c OR (changed = c AND
key > k))`. SQLite can only use `changed >= lo` to start the index range (the OR is a filter),
so every page walks the index from the window's start up to the cursor: a backfill of n rows
costs O(n^2). Here `lo` is raised to the cursor's own time for every page after the first (the
same rows qualify, since the cursor is never before `lo`; both are in the database's own
representation), wrapped at run time in this process.
"""

from __future__ import annotations

import functools
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml_connector.sources import sql


def raise_lower_bound() -> None:
    original: Callable[..., Any] = sql.SqlSource._page

    @functools.wraps(original)
    def page(self: Any, conn: Any, entity: Any, clock: Any, lo: Any, hi: Any, after: Any) -> Any:
        if after is not None:
            lo = after[0]  # the previous page's last changed_at, as stored: never before `lo`
        return original(self, conn, entity, clock, lo, hi, after)

    sql.SqlSource._page = page  # type: ignore[method-assign]


if __name__ == "__main__":
    raise_lower_bound()
    script = Path(sys.argv[1]).resolve()
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(script.parent))
    print("experiment: keyset pages start their index range at the cursor")
    runpy.run_path(str(script), run_name="__main__")
