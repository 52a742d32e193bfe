"""Read-only questions the dashboard and the REST API ask: overview figures, pages of
notifications, one notification's journey, and what a flow's polls left behind.

Kept apart from SqlStore (the runtime's port) because none of this is on a hot path and all
of it is for people: results are plain dataclasses, phone numbers are decrypted here and
masked by the caller, and look-ups by phone go through the keyed hash only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, or_, select

from ml_connector.core.lifecycle import REPLAYABLE
from ml_connector.core.models import Status, require_aware
from ml_connector.store.crypto import KeyRing
from ml_connector.store.engine import reading
from ml_connector.store.port import AttemptView, NotificationView
from ml_connector.store.tables import attempts as a
from ml_connector.store.tables import audit, watermarks, write_backs
from ml_connector.store.tables import delivery_events as de
from ml_connector.store.tables import notifications as n

__all__ = ["FlowFigures", "Insights", "JourneyData", "Overview", "Page", "PageQuery"]

_DELIVERED = (Status.DELIVERED.value, Status.READ.value)
_FAILED = (Status.FAILED.value, Status.UNDELIVERED.value, Status.DEAD.value)
_QUEUED = (Status.PENDING.value, Status.DEFERRED.value, Status.SENDING.value)
#: Rows the chart and the callback-lag figure look at, at most (the newest).
_SAMPLE = 20_000
#: id, at, notification id, flow, kind, status, detail
AuditTuple = tuple[int, datetime, int | None, str | None, str, str | None, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class PageQuery:
    """A filter over notifications plus a cursor (`before`: ids below it), newest first."""

    flow: str | None = None
    statuses: Sequence[Status] = ()
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    recipient_hash: str | None = None
    before: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Page:
    items: Sequence[NotificationView]
    next_cursor: int | None  # pass as `before` for the next page; None on the last one


@dataclass(frozen=True, slots=True)
class Overview:
    now: datetime
    last_hour: Mapping[str, int]
    last_day: Mapping[str, int]
    by_flow: Mapping[str, Mapping[str, int]]       # last day: flow -> status -> count
    failures_by_code: Sequence[tuple[int | None, int]]  # last day, most frequent first
    delivery_rate: float | None                      # delivered / (delivered + failed), last day
    callback_lag_p50: float | None                    # seconds from send to its first callback
    callback_lag_p95: float | None
    queue_depth: int                                   # pending, deferred and sending now
    oldest_queued: datetime | None
    hourly: Sequence[tuple[datetime, int, int, int]]  # hour start, created, delivered, failed


@dataclass(frozen=True, slots=True)
class JourneyData:
    notification: NotificationView
    audit: Sequence[tuple[datetime, str, str | None, Mapping[str, Any]]]  # at, kind, status, detail
    callbacks: Sequence[tuple[datetime, str, str, int | None, str]]  # at, sid, status, code, result
    write_backs: Sequence[Mapping[str, Any]]
    siblings: Sequence[NotificationView]  # the other recipients of the same event
    record_changed_at: datetime
    event_version: str


@dataclass(frozen=True, slots=True)
class FlowFigures:
    """What the store knows of a flow's polls (a process adds what only it saw: runtime.flow_activity)."""

    flow: str
    watermark: datetime | None
    lookback_watermark: datetime | None
    last_commit: datetime | None     # the last poll that stored something
    events_day: int                   # notifications created in the last day
    failed_day: int
    last_detail: Mapping[str, Any] = field(default_factory=dict)


def _percentile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class Insights:
    """The dashboard's read-only queries over the connector's database."""

    def __init__(self, engine: Engine, keys: KeyRing) -> None:
        self._engine = engine
        self._keys = keys

    def recipient_hash(self, e164: str) -> str:
        """The keyed hash the store indexes phones by: what a page puts in its URL, never the phone."""
        return self._keys.hash_lookup(e164)

    # -- overview ----------------------------------------------------------------------------

    def overview(self, now: datetime) -> Overview:
        require_aware(now, "overview(now)")
        hour, day = now - timedelta(hours=1), now - timedelta(days=1)
        with reading(self._engine) as conn:
            last_hour = self._by_status(conn, hour)
            by_flow: dict[str, dict[str, int]] = {}
            for flow, status, count in conn.execute(
                select(n.c.flow, n.c.status, func.count()).where(n.c.created_at >= day)
                .group_by(n.c.flow, n.c.status)
            ):
                by_flow.setdefault(flow, {})[status] = count
            last_day: dict[str, int] = {}
            for per in by_flow.values():
                for status, count in per.items():
                    last_day[status] = last_day.get(status, 0) + count
            codes = conn.execute(
                select(n.c.error_code, func.count()).where(n.c.created_at >= day, n.c.status.in_(_FAILED))
                .group_by(n.c.error_code).order_by(func.count().desc())
            ).all()
            queue_depth, oldest = conn.execute(
                select(func.count(), func.min(n.c.created_at)).where(n.c.status.in_(_QUEUED))
            ).one()
            lags = self._callback_lags(conn, day)
            hourly = self._hourly(conn, now)
        delivered = sum(last_day.get(s, 0) for s in _DELIVERED)
        failed = sum(last_day.get(s, 0) for s in _FAILED)
        return Overview(
            now=now, last_hour=last_hour, last_day=last_day, by_flow=by_flow,
            failures_by_code=[(code, count) for code, count in codes],
            delivery_rate=delivered / (delivered + failed) if delivered + failed else None,
            callback_lag_p50=_percentile(lags, 0.5), callback_lag_p95=_percentile(lags, 0.95),
            queue_depth=int(queue_depth), oldest_queued=oldest, hourly=hourly,
        )

    @staticmethod
    def _by_status(conn: Connection, since: datetime) -> dict[str, int]:
        rows = conn.execute(select(n.c.status, func.count()).where(n.c.created_at >= since).group_by(n.c.status))
        return {status: count for status, count in rows}

    @staticmethod
    def _callback_lags(conn: Connection, since: datetime) -> list[float]:
        """Seconds from each attempt's start to the first callback about its SID, sorted."""
        first = (
            select(de.c.provider_id, func.min(de.c.received_at).label("first_at"))
            .where(de.c.received_at >= since).group_by(de.c.provider_id).subquery()
        )
        rows = conn.execute(
            select(a.c.started_at, first.c.first_at).join(first, first.c.provider_id == a.c.provider_id)
            .order_by(a.c.id.desc()).limit(_SAMPLE)
        )
        return sorted(max(0.0, (got - started).total_seconds()) for started, got in rows)

    @staticmethod
    def _hourly(conn: Connection, now: datetime) -> list[tuple[datetime, int, int, int]]:
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
        buckets = {start + timedelta(hours=i): [0, 0, 0] for i in range(24)}
        rows = conn.execute(
            select(n.c.created_at, n.c.status).where(n.c.created_at >= start)
            .order_by(n.c.id.desc()).limit(_SAMPLE)
        )
        for created, status in rows:
            bucket = buckets.get(created.replace(minute=0, second=0, microsecond=0))
            if bucket is None:
                continue
            bucket[0] += 1
            bucket[1] += status in _DELIVERED
            bucket[2] += status in _FAILED
        return [(hour, *counts) for hour, counts in sorted(buckets.items())]  # type: ignore[misc]

    # -- notifications -----------------------------------------------------------------------

    def page(self, query: PageQuery) -> Page:
        conditions: list[ColumnElement[bool]] = []
        if query.flow:
            conditions.append(n.c.flow == query.flow)
        if query.statuses:
            conditions.append(n.c.status.in_([s.value for s in query.statuses]))
        if query.channel:
            conditions.append(n.c.channel == query.channel)
        if query.since is not None:
            conditions.append(n.c.created_at >= query.since)
        if query.until is not None:
            conditions.append(n.c.created_at < query.until)
        if query.recipient_hash:
            conditions.append(n.c.recipient_hash == query.recipient_hash)
        if query.before is not None:
            conditions.append(n.c.id < query.before)
        stmt = select(n).where(*conditions).order_by(n.c.id.desc()).limit(query.limit + 1)
        with reading(self._engine) as conn:
            rows = conn.execute(stmt).all()
        items = [self._view(r) for r in rows[: query.limit]]
        more = len(rows) > query.limit
        return Page(items=items, next_cursor=items[-1].id if more and items else None)

    def replayable_ids(self, query: PageQuery, cap: int) -> list[int]:
        """Ids of the replayable notifications the filter matches, newest first, at most `cap`."""
        statuses = [s for s in query.statuses if s in REPLAYABLE] if query.statuses else sorted(REPLAYABLE)
        if not statuses:
            return []
        found: list[int] = []
        cursor = query.before
        while len(found) < cap:
            page = self.page(PageQuery(
                flow=query.flow, statuses=statuses, channel=query.channel, since=query.since, until=query.until,
                recipient_hash=query.recipient_hash, before=cursor, limit=min(500, cap - len(found)),
            ))
            found += [v.id for v in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return found

    def _view(self, r: Any, tried: Sequence[AttemptView] = ()) -> NotificationView:
        return NotificationView(
            id=r.id, flow=r.flow, entity=r.entity, record_key=r.record_key, channel=r.channel,
            account=r.account, sender=r.sender, recipient=self._keys.decrypt(r.recipient_enc),
            recipient_field=r.recipient_field, body=self._keys.decrypt(r.body_enc), status=Status(r.status),
            reason=r.reason, provider_id=r.provider_id, error_code=r.error_code,
            error_message=r.error_message, attempts_made=r.attempts_made,
            max_attempts=r.attempt_budget, segments=r.segments, created_at=r.created_at,
            updated_at=r.updated_at, next_attempt_at=r.next_attempt_at, attempts=tuple(tried),
        )

    # -- one notification's journey -------------------------------------------------------------

    def journey(self, notification_id: int) -> JourneyData | None:
        with reading(self._engine) as conn:
            row = conn.execute(select(n).where(n.c.id == notification_id)).first()
            if row is None:
                return None
            tried = [
                AttemptView(attempt_no=t.attempt_no, outcome=t.outcome, started_at=t.started_at,
                            finished_at=t.finished_at, provider_id=t.provider_id, provider_status=t.provider_status,
                            error_code=t.error_code, error_message=t.error_message)
                for t in conn.execute(select(a).where(a.c.notification_id == notification_id).order_by(a.c.attempt_no))
            ]
            sids = sorted({t.provider_id for t in tried if t.provider_id})
            # Orphans are stored before their send commits; they name the SID, not the notification.
            about = audit.c.notification_id == notification_id
            if sids:
                about = or_(about, (audit.c.kind == "orphan") & audit.c.notification_id.is_(None)
                            & or_(*(audit.c.detail_json.contains(f'"provider_id":"{sid}"') for sid in sids)))
            entries = [
                (r.at, r.kind, r.status, json.loads(r.detail_json))
                for r in conn.execute(select(audit).where(about).order_by(audit.c.id))
            ]
            callbacks = [
                (r.received_at, r.provider_id, r.provider_status, r.error_code, r.result)
                for r in conn.execute(
                    select(de).where(or_(de.c.notification_id == notification_id,
                                         de.c.provider_id.in_(sids) if sids else de.c.id < 0))
                    .order_by(de.c.id)
                )
            ]
            wbs = [
                {"source": r.source, "status": r.status, "state": r.state, "attempts": r.attempts_made,
                 "last_error": r.last_error, "updated_at": r.updated_at}
                for r in conn.execute(select(write_backs).where(write_backs.c.notification_id == notification_id)
                                      .order_by(write_backs.c.id))
            ]
            siblings = [
                self._view(s) for s in conn.execute(
                    select(n).where(n.c.flow == row.flow, n.c.entity == row.entity, n.c.record_key == row.record_key,
                                    n.c.event_version == row.event_version, n.c.id != row.id)
                    .order_by(n.c.id).limit(50)
                )
            ]
        return JourneyData(
            notification=self._view(row, tried), audit=entries, callbacks=callbacks, write_backs=wbs,
            siblings=siblings, record_changed_at=row.record_changed_at, event_version=row.event_version,
        )

    # -- flows -------------------------------------------------------------------------------

    def flow_figures(self, flows: Sequence[str], now: datetime) -> dict[str, FlowFigures]:
        day = now - timedelta(days=1)
        with reading(self._engine) as conn:
            marks: dict[tuple[str, str], datetime] = {
                (f, k): v for f, k, v in conn.execute(select(watermarks.c.flow, watermarks.c.kind, watermarks.c.value))
            }
            counts: dict[str, list[int]] = {}
            for flow, status, count in conn.execute(
                select(n.c.flow, n.c.status, func.count()).where(n.c.created_at >= day).group_by(n.c.flow, n.c.status)
            ):
                per = counts.setdefault(flow, [0, 0])
                per[0] += count
                per[1] += count if status in _FAILED else 0
            last: dict[str, tuple[datetime, Mapping[str, Any]]] = {}
            for flow in flows:
                found = conn.execute(
                    select(audit.c.at, audit.c.detail_json).where(audit.c.kind == "poll", audit.c.flow == flow)
                    .order_by(audit.c.id.desc()).limit(1)
                ).first()
                if found is not None:
                    last[flow] = (found.at, json.loads(found.detail_json))
        return {
            flow: FlowFigures(
                flow=flow, watermark=marks.get((flow, "main")), lookback_watermark=marks.get((flow, "lookback")),
                last_commit=last[flow][0] if flow in last else None,
                events_day=counts.get(flow, [0, 0])[0], failed_day=counts.get(flow, [0, 0])[1],
                last_detail=last[flow][1] if flow in last else {},
            )
            for flow in flows
        }

    def audit_rows(self, since: datetime | None, until: datetime | None, after_id: int | None,
                   limit: int) -> list[AuditTuple]:
        """A page of audit rows in id order (id > after_id)."""
        conditions: list[ColumnElement[bool]] = []
        if since is not None:
            conditions.append(audit.c.at >= since)
        if until is not None:
            conditions.append(audit.c.at < until)
        if after_id is not None:
            conditions.append(audit.c.id > after_id)
        with reading(self._engine) as conn:
            return [
                (r.id, r.at, r.notification_id, r.flow, r.kind, r.status, json.loads(r.detail_json))
                for r in conn.execute(select(audit).where(*conditions).order_by(audit.c.id).limit(limit))
            ]
