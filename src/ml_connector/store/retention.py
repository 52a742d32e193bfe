"""Audit retention: delete audit rows older than a cutoff, one bounded batch per transaction.

Each batch is a short transaction (a long DELETE would hold locks and bloat the WAL), and each
leaves an `audit_pruned` row with how many rows before which instant went, so the trail says
it was shortened, when and how far.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select

from ml_connector.store.auditrows import audit_row
from ml_connector.store.tables import audit


def prune(conn: Connection, before: datetime, limit: int, now: datetime) -> int:
    """Delete up to `limit` of the oldest audit rows with `at < before`; the count deleted."""
    oldest = select(audit.c.id).where(audit.c.at < before).order_by(audit.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)  # two processes pruning share the work
    ids = list(conn.execute(oldest).scalars())
    if not ids:
        return 0
    deleted = conn.execute(delete(audit).where(audit.c.id.in_(ids))).rowcount or 0
    conn.execute(audit.insert().values(audit_row(
        now, "audit_pruned", nid=None, flow=None, status=None, before=before.isoformat(), deleted=deleted,
        first_id=ids[0], last_id=ids[-1],
    )))
    return int(deleted)
