"""Flow state in the store: pause and resume, watermark resets, and what each poller last did.

Paused flows live in the store, not in a process, so every process of a deployment sees the
same answer: a poller asks before each poll and skips a paused flow, keeping its watermark.
Every change an operator makes here (pause, resume, reset) writes an audit row with who did it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select, update

from ml_connector.store.auditrows import audit_row
from ml_connector.store.ops_tables import flow_state
from ml_connector.store.scrub import mask_numbers
from ml_connector.store.tables import audit, notifications, record_state, watermarks

InsertFactory = Callable[[Table], Any]

#: The watermark kinds a poller keeps (runtime.poller): when it first ran, main and lookback.
STARTED, MAIN, LOOKBACK = "started", "main", "lookback"


@dataclass(frozen=True, slots=True)
class FlowState:
    """What the store knows about one flow, for `ml-connector flows` and a dashboard."""

    flow: str
    paused: bool = False
    paused_by: str | None = None
    paused_at: datetime | None = None
    started_at: datetime | None = None     # first poll: records changed before are baseline
    watermark: datetime | None = None      # main poll's watermark
    lookback_at: datetime | None = None    # end of the last lookback poll
    last_poll_at: datetime | None = None
    last_poll_kind: str | None = None
    last_poll_ok: bool | None = None
    last_poll_read: int | None = None
    last_poll_inserted: int | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    polled_by: str | None = None           # the process that made the last poll
    events_since: int = 0                  # events fired since the `since` asked for


@dataclass(frozen=True, slots=True)
class FlowReset:
    """What a reset changed: the watermark before and after, and whether the baseline was re-taken."""

    flow: str
    previous: datetime | None
    watermark: datetime | None
    baseline: bool
    states_dropped: int


def _upsert(conn: Connection, insert: InsertFactory, flow: str, now: datetime, values: Mapping[str, Any]) -> None:
    row = {"flow": flow, "paused": False, "updated_at": now, **values}
    stmt = insert(flow_state).values(row)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[flow_state.c.flow], set_={k: stmt.excluded[k] for k in ("updated_at", *values)},
    ))


def set_paused(conn: Connection, insert: InsertFactory, flow: str, paused: bool, actor: str, now: datetime) -> bool:
    """Pause or resume `flow`; False when it already was so (nothing changed, nothing audited)."""
    current = conn.execute(select(flow_state.c.paused).where(flow_state.c.flow == flow)).scalar_one_or_none()
    if bool(current) == paused:
        return False
    _upsert(conn, insert, flow, now, {"paused": paused, "paused_by": actor if paused else None,
                                      "paused_at": now if paused else None})
    conn.execute(audit.insert().values(audit_row(
        now, "flow_paused" if paused else "flow_resumed", nid=None, flow=flow, status=None, actor=actor,
    )))
    return True


def paused(conn: Connection) -> set[str]:
    return set(conn.execute(select(flow_state.c.flow).where(flow_state.c.paused.is_(True))).scalars())


def record_poll(
    conn: Connection, insert: InsertFactory, flow: str, *, at: datetime, kind: str, error: str | None,
    read: int | None, inserted: int | None, worker: str,
) -> None:
    """A poll's outcome; an error is kept (with its time) until a later error replaces it."""
    values: dict[str, Any] = {"last_poll_at": at, "last_poll_kind": kind, "last_poll_ok": error is None,
                              "last_poll_read": read, "last_poll_inserted": inserted, "polled_by": worker}
    if error is not None:
        values |= {"last_error": mask_numbers(error), "last_error_at": at}
    _upsert(conn, insert, flow, at, values)


def states(conn: Connection, flows: list[str], events_since: datetime) -> dict[str, FlowState]:
    """Every flow named (and every flow the store knows of), with watermarks and today's events."""
    marks: dict[str, dict[str, datetime]] = {}
    for flow, kind, value in conn.execute(select(watermarks.c.flow, watermarks.c.kind, watermarks.c.value)):
        marks.setdefault(flow, {})[kind] = value
    rows = {r.flow: r for r in conn.execute(select(flow_state))}
    n = notifications
    fired: dict[str, int] = {
        flow: int(count) for flow, count in conn.execute(
            select(n.c.flow, func.count(func.distinct(n.c.record_key + "\x1f" + n.c.event_version)))
            .where(n.c.created_at >= events_since).group_by(n.c.flow)
        )
    }
    found: dict[str, FlowState] = {}
    for flow in dict.fromkeys([*flows, *sorted(set(marks) | set(rows))]):
        r, w = rows.get(flow), marks.get(flow, {})
        found[flow] = FlowState(
            flow=flow, paused=bool(r.paused) if r else False, paused_by=r.paused_by if r else None,
            paused_at=r.paused_at if r else None, started_at=w.get(STARTED), watermark=w.get(MAIN),
            lookback_at=w.get(LOOKBACK), last_poll_at=r.last_poll_at if r else None,
            last_poll_kind=r.last_poll_kind if r else None,
            last_poll_ok=r.last_poll_ok if r else None, last_poll_read=r.last_poll_read if r else None,
            last_poll_inserted=r.last_poll_inserted if r else None, last_error=r.last_error if r else None,
            last_error_at=r.last_error_at if r else None, polled_by=r.polled_by if r else None,
            events_since=int(fired.get(flow, 0)),
        )
    return found


def reset(
    conn: Connection, insert: InsertFactory, flow: str, *, to: datetime | None, baseline: bool, actor: str,
    now: datetime,
) -> FlowReset:
    """Move `flow`'s main watermark to `to` (back or forth), or re-take its baseline.

    A baseline reset forgets when the flow started, its watermarks and its last-seen values, so
    its next poll starts as a new flow's first: records changed in its baseline window are
    history, not events. Notifications already stored stay, and their keys keep re-reads from
    notifying twice.
    """
    w = watermarks
    previous = conn.execute(
        select(w.c.value).where(w.c.flow == flow, w.c.kind == MAIN).with_for_update()
    ).scalar_one_or_none()
    dropped = 0
    if baseline:
        conn.execute(delete(w).where(w.c.flow == flow))
        dropped = conn.execute(delete(record_state).where(record_state.c.flow == flow)).rowcount or 0
    if to is not None:
        stmt = insert(w).values(flow=flow, kind=MAIN, value=to, updated_at=now)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[w.c.flow, w.c.kind], set_={"value": stmt.excluded.value, "updated_at": now},
        ))
        if not baseline:  # records before `to` count as seen since the flow's start
            conn.execute(update(w).where(w.c.flow == flow, w.c.kind == STARTED, w.c.value > to).values(
                value=to, updated_at=now))
    conn.execute(audit.insert().values(audit_row(
        now, "flow_reset", nid=None, flow=flow, status=None, actor=actor,
        previous_watermark=previous.isoformat() if previous else None,
        watermark=to.isoformat() if to else None, baseline=baseline, states_dropped=dropped,
    )))
    return FlowReset(flow, previous, to, baseline, dropped)
