"""The write-back queue: final delivery statuses to record in the source ERP.

A task is queued in the same transaction that moves a notification into a final status, and
snapshots the delivery as it was then; the queue has its own leases and retries, so an ERP that
is down delays write-backs and never sending. Functions take the caller's connection: they are
steps of SqlStore's transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, literal, or_, select, update

from ml_connector.core.lifecycle import FINAL
from ml_connector.core.models import Delivery, Status
from ml_connector.store.port import WriteBackTask
from ml_connector.store.scrub import mask_numbers
from ml_connector.store.tables import notifications as n
from ml_connector.store.tables import write_backs as wb
from ml_connector.store.types import UtcDateTime

PENDING, RUNNING, DONE, GAVE_UP, SKIPPED = "pending", "running", "done", "gave_up", "skipped"
_COPIED = ("notification_id", "source", "status", "provider_id", "error_code", "error_message", "finished_at",
           "state", "attempts_made", "next_attempt_at", "created_at", "updated_at")

AuditRow = Callable[..., dict[str, Any]]


def enqueue_final(conn: Connection, ids: Sequence[int], at: datetime) -> None:
    """Queue a write-back for each of `ids` that is now final and whose flow asked for one."""
    if not ids:
        return
    stamp = literal(at, UtcDateTime())
    source = select(
        n.c.id, n.c.write_back_source, n.c.status, n.c.provider_id, n.c.error_code, n.c.error_message,
        stamp, literal(PENDING), literal(0), stamp, stamp, stamp,
    ).where(
        n.c.id.in_(list(ids)),
        n.c.write_back_source.is_not(None),
        n.c.status.in_([s.value for s in FINAL]),
    ).order_by(n.c.id)  # tasks numbered in notification order, whichever path queued them
    conn.execute(wb.insert().from_select(list(_COPIED), source))


def claim(conn: Connection, worker: str, now: datetime, lease: timedelta, limit: int) -> list[WriteBackTask]:
    """Lease due tasks (and tasks whose worker's lease ran out)."""
    due = or_(
        and_(wb.c.state == PENDING, wb.c.next_attempt_at <= now),
        and_(wb.c.state == RUNNING, wb.c.lease_until < now),
    )
    rows = conn.execute(
        select(wb, n.c.flow, n.c.entity, n.c.record_key, n.c.created_at.label("notification_created_at"))
        .join(n, n.c.id == wb.c.notification_id)
        .where(due)
        .order_by(wb.c.next_attempt_at, wb.c.id)
        .limit(limit)
        .with_for_update(of=wb, skip_locked=True)
    ).all()
    if not rows:
        return []
    conn.execute(
        update(wb).where(wb.c.id.in_([r.id for r in rows])).values(
            state=RUNNING, lease_owner=worker, lease_until=now + lease,
            attempts_made=wb.c.attempts_made + 1, updated_at=now,
        )
    )
    return [
        WriteBackTask(
            id=r.id, source=r.source, attempt_no=r.attempts_made + 1,
            delivery=Delivery(
                notification_id=r.notification_id, flow=r.flow, entity=r.entity, record_key=r.record_key,
                provider_id=r.provider_id, status=Status(r.status), error_code=r.error_code,
                error_message=r.error_message, created_at=r.notification_created_at,
                finished_at=r.finished_at,
            ),
        )
        for r in rows
    ]


def finish(
    conn: Connection, task_id: int, *, ok: bool, error: str | None, next_attempt_at: datetime | None,
    now: datetime, audit_row: AuditRow, skipped: bool = False,
) -> dict[str, Any] | None:
    """Mark a running task done, due again, given up, or skipped (the source does not record this
    status); the audit row to write, None if not running."""
    row = conn.execute(
        select(wb.c.id, wb.c.notification_id, wb.c.source, wb.c.status, wb.c.attempts_made, n.c.flow)
        .join(n, n.c.id == wb.c.notification_id)
        .where(wb.c.id == task_id, wb.c.state == RUNNING)
        .with_for_update(of=wb)
    ).first()
    if row is None:
        return None
    state = SKIPPED if skipped else DONE if ok else (PENDING if next_attempt_at is not None else GAVE_UP)
    conn.execute(
        update(wb).where(wb.c.id == bindparam("b_id")).values(
            state=state, lease_owner=None, lease_until=None, updated_at=now,
            next_attempt_at=next_attempt_at if state == PENDING else None,
            last_error=mask_numbers(error),
        ),
        {"b_id": task_id},
    )
    outcome = {DONE: "done", PENDING: "retry", GAVE_UP: "gave_up", SKIPPED: "skipped"}[state]
    return audit_row(
        now, "write_back", nid=row.notification_id, flow=row.flow, status=outcome, source=row.source,
        attempt_no=row.attempts_made, delivery_status=row.status, message=error,
        next_attempt_at=next_attempt_at.isoformat() if state == PENDING and next_attempt_at else None,
    )
