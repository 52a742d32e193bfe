"""Attempt outcomes, recorded a batch at a time with one statement per kind of write.

The dispatcher hands over the outcomes of the sends that finished meanwhile. Each is judged on
its own (store.finish decides what it does to the notification) against the notification as the
outcomes before it in the batch left it, and stale ones (a newer claim owns the notification by
now) are audited and change nothing; the writes are then grouped so that a batch costs a fixed
handful of statements instead of five per outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, select

from ml_connector.core.lifecycle import FINAL
from ml_connector.core.models import Status
from ml_connector.store import finish, reports, suppressions, writebacks
from ml_connector.store.auditrows import AUDIT, audit_row, audit_tuple
from ml_connector.store.bulk import Bulk, Writer
from ml_connector.store.port import AttemptResult
from ml_connector.store.scrub import mask_numbers
from ml_connector.store.tables import attempts as a
from ml_connector.store.tables import notifications as n

_ROWS_SQL = (
    select(n.c.id, n.c.flow, n.c.status, n.c.attempts_made, n.c.attempt_budget, n.c.in_doubt_since,
           n.c.write_back_source, n.c.channel)
    .where(n.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(n.c.id)
    .with_for_update()
)
_THIS_ATTEMPT = and_(a.c.notification_id == bindparam("nid"), a.c.attempt_no == bindparam("no"))
_DROP_ATTEMPT_SQL = delete(a).where(_THIS_ATTEMPT)
_FINISH_ATTEMPT = Bulk(a, ("finished_at", "outcome", "provider_id", "provider_status", "error_code",
                           "error_message"), keys=("notification_id", "attempt_no"))
#: Every finish sets these on the notification, then the columns its plan names.
_FINISH_COLUMNS = ("status", "lease_owner", "lease_until", "updated_at", "attempts_made")


@cache
def _notification_update(columns: tuple[str, ...]) -> Bulk:
    """UPDATE notifications for a plan that sets `columns`, one per shape of plan."""
    return Bulk(n, (*_FINISH_COLUMNS, *columns), keys=("id",))


@dataclass(slots=True)
class _Row:
    flow: str
    status: str
    attempts_made: int
    attempt_budget: int
    in_doubt_since: datetime | None
    write_back_source: str | None
    channel: str


def finish_all(conn: Connection, results: Sequence[AttemptResult]) -> list[bool]:
    """Record `results`; True for each one recorded, False for each stale one."""
    reports.lock_provider_ids(conn, (r.provider_id for r in results))
    ids = sorted({r.notification_id for r in results})
    rows = {
        r.id: _Row(r.flow, r.status, r.attempts_made, r.attempt_budget, r.in_doubt_since, r.write_back_source,
                   r.channel)
        for r in conn.execute(_ROWS_SQL, {"ids": ids})
    } if ids else {}
    updates: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    drops: list[dict[str, Any]] = []
    finished: list[tuple[Any, ...]] = []
    write_backs: dict[datetime, list[int]] = {}
    entries: list[dict[str, Any] | str] = []  # a str: where the early callbacks of that SID go
    stale_after_finish: dict[int, list[dict[str, Any]]] = {}
    sent_here: set[int] = set()  # notifications this batch recorded as taken by the provider
    taken: dict[str, tuple[int, str, Status, datetime, str]] = {}
    recorded: list[bool] = []
    unsubscribed: list[int] = []  # refused with 21610: their recipients opted out of the sender
    for result in results:
        at, nid = result.finished_at, result.notification_id
        row = rows.get(nid)
        if row is None or row.status != Status.SENDING.value or row.attempts_made != result.attempt_no:
            stale = audit_row(
                at, "stale_finish", nid=nid, flow=row.flow if row else None,
                status=row.status if row else None, attempt_no=result.attempt_no,
                outcome=result.outcome.value, provider_id=result.provider_id,
            )
            entries.append(stale)
            if nid in sent_here:  # judged after this batch's own send of nid: adoption may move it on
                stale_after_finish.setdefault(nid, []).append(stale)
            recorded.append(False)
            continue
        plan = finish.plan_finish(result, row.in_doubt_since, row.channel)
        values = dict(plan.notification)
        if plan.budget_delta:
            row.attempt_budget += plan.budget_delta
            values["attempt_budget"] = row.attempt_budget
        columns = tuple(sorted(values))
        # The row is locked (FOR UPDATE / BEGIN IMMEDIATE): its count can be set, not incremented.
        row.status, row.attempts_made = plan.status.value, row.attempts_made + plan.attempts_delta
        updates.setdefault(columns, []).append((
            nid, plan.status.value, None, None, at, row.attempts_made, *(values[c] for c in columns),
        ))
        if "in_doubt_since" in plan.notification:
            row.in_doubt_since = plan.notification["in_doubt_since"]
        if result.error_code == suppressions.UNSUBSCRIBED and plan.status is Status.FAILED:
            unsubscribed.append(nid)
        if plan.status in FINAL and row.write_back_source is not None:
            write_backs.setdefault(at, []).append(nid)
        if plan.drop_attempt:
            drops.append({"nid": nid, "no": result.attempt_no})
        else:
            finished.append((
                nid, result.attempt_no, at, plan.attempt_outcome, result.provider_id, result.provider_status,
                result.error_code, mask_numbers(result.error_message),
            ))
        entries.append(audit_row(
            at, "attempt", nid=nid, flow=row.flow, status=plan.status.value,
            attempt_no=result.attempt_no, outcome=result.outcome.value, code=result.error_code,
            message=result.error_message, provider_id=result.provider_id,
        ))
        if plan.provider_took_it and result.provider_id:
            taken[result.provider_id] = (nid, row.flow, plan.status, at, row.channel)
            sent_here.add(nid)
            entries.append(result.provider_id)
        recorded.append(True)
    writer = Writer(conn)
    for columns, params in updates.items():
        writer.write(_notification_update(columns), params)
    for at, nids in write_backs.items():
        writebacks.enqueue_final(conn, nids, at)
    if drops:
        conn.execute(_DROP_ATTEMPT_SQL, drops)
    writer.write(_FINISH_ATTEMPT, finished)
    if unsubscribed:
        entries += suppressions.unsubscribed_by_twilio(conn, unsubscribed, max(r.finished_at for r in results))
    adopted = reports.adopt_orphans(conn, writer, taken)
    for nid, status in adopted.statuses.items():  # a stale result after this batch finished nid
        for stale in stale_after_finish.get(nid, ()):
            stale["status"] = status.value
    writer.write(AUDIT, [
        audit_tuple(row) for e in entries for row in (adopted.entries.get(e, []) if isinstance(e, str) else [e])
    ])
    return recorded
