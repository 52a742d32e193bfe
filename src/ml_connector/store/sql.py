"""SqlStore: the storage port on SQLite (one process) and PostgreSQL (many), with SQLAlchemy Core.

Every method is one short transaction. Writers that read-then-update lock what they read:
on PostgreSQL with `FOR UPDATE` (claims `SKIP LOCKED`, so dispatchers never wait on each other),
on SQLite by starting the transaction with BEGIN IMMEDIATE (see store.engine). Reports for one
provider id are serialised with a transaction-scoped advisory lock, so a callback racing the
commit of its own send is either seen by that commit or sees it, never neither.

Phone numbers, bodies and raw callbacks are AES-GCM encrypted; only keyed hashes and masked
text are stored in clear.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)

from ml_connector.core.models import Status, StatusEvent, require_aware
from ml_connector.errors import ConfigError
from ml_connector.store import attempts as attempt_results
from ml_connector.store import (
    digests,
    inbound,
    keymeta,
    lock_holders,
    polls,
    replays,
    reports,
    retention,
    suppressions,
    writebacks,
)
from ml_connector.store import flows as flowstate
from ml_connector.store import journey as journeys
from ml_connector.store import migrate as migrations
from ml_connector.store.auditrows import AUDIT, CHUNK, audit_row, audit_tuple
from ml_connector.store.bulk import DIALECT_INSERTS, Bulk, Writer
from ml_connector.store.crypto import KeyRing
from ml_connector.store.digests import DueDigest
from ml_connector.store.engine import health, make_engine, reading, writing
from ml_connector.store.inbound import InboundMessage, InboundOutcome, InboundView
from ml_connector.store.locks import FileFlowLock, FlowLock, PgFlowLock
from ml_connector.store.port import (
    ApplyResult,
    AttemptResult,
    AttemptView,
    AuditEntry,
    Claimed,
    NewNotification,
    NotificationFilter,
    NotificationView,
    PollCommit,
    Revision,
    Store,
    WriteBackTask,
)
from ml_connector.store.rotation import Rotation
from ml_connector.store.scrub import mask_numbers
from ml_connector.store.secrets import SecretBox
from ml_connector.store.tables import (
    attempts,
    audit,
    delivery_events,
    notifications,
    store_meta,
    watermarks,
)
from ml_connector.store.tables import inbound_messages as im
from ml_connector.store.types import UtcDateTime

n, a, de = notifications, attempts, delivery_events

#: Due rows (and rows whose worker's lease ran out: those come back in doubt), oldest first;
#: built once, as a claim runs several times a second.
_CLAIM_SQL = (
    select(n.c.id, n.c.flow, n.c.entity, n.c.record_key, n.c.account, n.c.sender, n.c.recipient_enc,
           n.c.body_enc, n.c.status, n.c.attempts_made, n.c.attempt_budget, n.c.in_doubt_since,
           n.c.lease_owner, n.c.created_at, n.c.channel)
    .where(or_(
        and_(n.c.status.in_([Status.PENDING.value, Status.DEFERRED.value]),
             n.c.next_attempt_at <= bindparam("now", type_=UtcDateTime())),
        and_(n.c.status == Status.SENDING.value, n.c.lease_until < bindparam("now", type_=UtcDateTime())),
    ))
    .order_by(n.c.next_attempt_at, n.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_LEASE = Bulk(n, ("status", "lease_owner", "lease_until", "attempts_made", "updated_at", "in_doubt_since"),
              keys=("id",))
_ATTEMPT_STARTED = Bulk(a, ("notification_id", "attempt_no", "started_at"))
_HOLD_PREFIX = "account_hold:"
#: A result row of any shape.
AnyRow = Row[*tuple[Any, ...]]


class SqlStore:
    """The Store port over one database URL (sqlite:///file.db or postgresql://...)."""

    def __init__(self, url: str, keyring: KeyRing, *, migrate: bool = True) -> None:
        self._engine = make_engine(url)
        self._keys = keyring
        self._dialect = self._engine.dialect.name
        self._insert = DIALECT_INSERTS[self._dialect]
        self._fence: FlowLock | None = None
        try:
            if migrate:
                migrations.upgrade_engine(self._engine)
            else:
                self._require_current_schema()
            self._check_key()
        except BaseException:
            self._engine.dispose()
            raise

    def outage(self) -> str | None:
        """None while the database answers; else what the last failed transaction met (for /readyz)."""
        state = health(self._engine)
        return None if state.available else (state.problem or "unavailable")

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    # -- setup -----------------------------------------------------------------------------

    def _require_current_schema(self) -> None:
        found, wanted = migrations.current_engine(self._engine), migrations.head()
        if found != wanted:
            raise ConfigError(
                f"the database schema is at revision {found or 'none (empty database)'}, this version "
                f"needs {wanted}: run the migrations (ml_connector.store.migrate.upgrade) first"
            )

    def _check_key(self) -> None:
        """Refuse to start with master keys that cannot read this database (store.keymeta)."""
        with writing(self._engine) as conn:
            self._keys = keymeta.open_ring(conn, self._keys)

    def secrets(self) -> SecretBox:
        """The named secrets kept in this store (store.secrets)."""
        return SecretBox(self._engine, self._keys)

    def rotation(self) -> Rotation:
        """Re-encryption to the current master key (store.rotation)."""
        return Rotation(self._engine, self._keys)

    def ping(self) -> str:
        """Dialect and server version, e.g. 'postgresql 16.2' (for `ml-connector check`)."""
        query = "SELECT sqlite_version()" if self._dialect == "sqlite" else "SHOW server_version"
        with reading(self._engine) as conn:
            version = conn.execute(text(query)).scalar_one()
        return f"{self._dialect} {version}"

    # -- accounts whose sending is held (runtime.account_hold) -----------------------------

    def record_account_hold(self, account: str, reason: str | None, at: datetime) -> None:
        """Note (reason) or clear (None) a held account for `check`, with an audit row either way."""
        require_aware(at, "record_account_hold(at)")
        name = (_HOLD_PREFIX + account)[:64]
        with writing(self._engine) as conn:
            conn.execute(store_meta.delete().where(store_meta.c.name == name))
            if reason is not None:
                value = json.dumps({"account": account, "reason": mask_numbers(reason), "since": at.isoformat()})
                conn.execute(store_meta.insert().values(name=name, value=value))
            conn.execute(audit.insert(), [audit_row(
                at, "account_held" if reason is not None else "account_resumed", nid=None, flow=None,
                status=None, account=account, reason=mask_numbers(reason),
            )])

    def account_holds(self) -> dict[str, Mapping[str, Any]]:
        """Accounts a running connector holds: account -> {"reason", "since"}."""
        with reading(self._engine) as conn:
            rows = conn.execute(
                select(store_meta.c.value).where(store_meta.c.name.like(_HOLD_PREFIX + "%"))
            ).scalars().all()
        holds = [json.loads(value) for value in rows]
        return {str(h["account"]): h for h in holds}

    # -- poller leadership (see store.locks) -----------------------------------------------

    def flow_lock(self, flow: str, *, label: str) -> FlowLock:
        """The lock that makes this process `flow`'s only poller; `label` names the holder for admins."""
        if self._dialect == "sqlite":
            return FileFlowLock(Path(str(self._engine.url.database)), flow, label=label)
        return PgFlowLock(self._engine.url, flow, label=label)

    def fenced(self, lock: FlowLock) -> SqlStore:
        """This store, except that `commit_poll` commits only while `lock` is held (else LockLost).

        The view shares the engine: close the original, not the view.
        """
        view = copy.copy(self)
        view._fence = lock
        return view

    # -- flow state: pause, resume, reset, last poll (store.flows) ---------------------------

    def set_flow_paused(self, flow: str, paused: bool, actor: str, now: datetime | None = None) -> bool:
        """Pause (or resume) `flow` for every process; False when it already was so."""
        with writing(self._engine) as conn:
            return flowstate.set_paused(conn, self._insert, flow, paused, actor, now or datetime.now(UTC))

    def paused_flows(self) -> set[str]:
        """The flows no process may poll now."""
        with reading(self._engine) as conn:
            return flowstate.paused(conn)

    def record_poll(self, flow: str, *, at: datetime, kind: str, error: str | None = None,
                    read: int | None = None, inserted: int | None = None, worker: str = "") -> None:
        """What a poll of `flow` did (or the error it met), for `ml-connector flows`."""
        require_aware(at, "record_poll(at)")
        with writing(self._engine) as conn:
            flowstate.record_poll(conn, self._insert, flow, at=at, kind=kind, error=error, read=read,
                                    inserted=inserted, worker=worker)

    def flow_states(self, flows: Sequence[str], events_since: datetime) -> dict[str, flowstate.FlowState]:
        """Each flow's pause, watermarks, last poll and events fired since `events_since`."""
        with reading(self._engine) as conn:
            return flowstate.states(conn, list(flows), events_since)

    def reset_flow(self, flow: str, *, to: datetime | None, baseline: bool, actor: str,
                   now: datetime | None = None) -> flowstate.FlowReset:
        """Move `flow`'s watermark to `to`, and with `baseline` re-take its baseline (audited)."""
        if to is not None:
            require_aware(to, "reset_flow(to)")
        with writing(self._engine) as conn:
            return flowstate.reset(conn, self._insert, flow, to=to, baseline=baseline, actor=actor,
                                     now=now or datetime.now(UTC))

    def flow_lock_holder(self, flow: str) -> str | None:
        """The process polling `flow` now (the holder of its poller lock), if any."""
        if self._dialect == "sqlite":
            return lock_holders.file_holder(Path(str(self._engine.url.database)), flow)
        with reading(self._engine) as conn:
            return lock_holders.pg_holder(conn, flow)

    # -- polling ---------------------------------------------------------------------------

    def get_watermark(self, flow: str, kind: str = "main") -> datetime | None:
        with reading(self._engine) as conn:
            value: datetime | None = conn.execute(
                select(watermarks.c.value).where(watermarks.c.flow == flow, watermarks.c.kind == kind)
            ).scalar_one_or_none()
        return value

    def last_seen(self, flow: str, record_keys: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        with reading(self._engine) as conn:
            return polls.last_seen(conn, flow, record_keys)

    def known_notifications(self, idempotency_keys: Sequence[str]) -> set[str]:
        """The keys among these already stored: what a poll would skip (runtime.preview)."""
        with reading(self._engine) as conn:
            return polls.known_keys(conn, self._keys, idempotency_keys)

    def commit_poll(self, commit: PollCommit) -> list[int]:
        """Watermark, record states and new notifications in ONE transaction (invariant 1)."""
        with writing(self._engine) as conn:
            if self._fence is not None:
                self._fence.assert_held(conn)
            return polls.commit(conn, self._keys, self._insert, commit)

    # -- suppressions (opt-outs) -----------------------------------------------------------

    def suppress(self, recipient: str, scope: str, *, source: str, reason: str, at: datetime) -> int:
        """Suppress `recipient` (E.164) for sender `scope` (or "*"); returns how many waiting
        notifications that suppressed."""
        require_aware(at, "suppress(at)")
        with writing(self._engine) as conn:
            entries = suppressions.add(conn, recipient_hash=self._keys.hash_lookup(recipient), scope=scope,
                                       source=source, reason=mask_numbers(reason) or reason, at=at)
            Writer(conn).write(AUDIT, [audit_tuple(e) for e in entries])
        return sum(e["kind"] == "suppressed" for e in entries)

    def lift_suppression(self, recipient: str, scopes: Sequence[str], *, at: datetime) -> None:
        require_aware(at, "lift_suppression(at)")
        with writing(self._engine) as conn:
            entries = suppressions.remove(conn, recipient_hash=self._keys.hash_lookup(recipient), scopes=scopes,
                                          at=at)
            Writer(conn).write(AUDIT, [audit_tuple(e) for e in entries])

    def is_suppressed(self, recipient: str, sender: str) -> str | None:
        """The reason `recipient` may not be texted from `sender`, or None."""
        key = (self._keys.hash_lookup(recipient), sender)
        with reading(self._engine) as conn:
            return suppressions.matching(conn, [key]).get(key)

    def record_inbound(self, msg: InboundMessage, *, reply_windows: Mapping[str, timedelta],
                       opt_out_everywhere: bool = False) -> InboundOutcome:
        """Store an inbound text, apply its opt-out or opt-in, thread it to what it answers."""
        require_aware(msg.received_at, "InboundMessage.received_at")
        with writing(self._engine) as conn:
            outcome, entries = inbound.record(conn, self._keys, msg, reply_windows=reply_windows,
                                              opt_out_everywhere=opt_out_everywhere)
            Writer(conn).write(AUDIT, [audit_tuple(e) for e in entries])
        return outcome

    def inbound_messages(self, *, limit: int = 100) -> list[InboundView]:
        """The newest inbound texts, decrypted (for the operator's eyes; callers mask phones)."""
        with reading(self._engine) as conn:
            rows = conn.execute(select(im).order_by(im.c.id.desc()).limit(limit)).all()
        return [InboundView(id=r.id, received_at=r.received_at, sender=self._keys.decrypt(r.from_enc),
                            to=r.to_number, body=self._keys.decrypt(r.body_enc), intent=r.intent,
                            notification_id=r.notification_id, match_reason=r.match_reason) for r in rows]

    def close_due_digests(self, now: datetime, render: Callable[[DueDigest], NewNotification | None],
                          limit: int = 50) -> list[int]:
        """Close the digests due at `now` into one notification each (`render`: pure, no I/O; None
        leaves a digest open), in one transaction with their closing."""
        require_aware(now, "close_due_digests(now)")
        with writing(self._engine) as conn:
            made: list[tuple[DueDigest, NewNotification]] = []
            for due in digests.due(conn, self._keys, now, limit):
                note = render(due)
                if note is not None:
                    made.append((due, note))
            ids: list[int] = []
            for due, note in made:  # one commit each: the notification id belongs to its digest
                inserted = polls.commit(conn, self._keys, self._insert, PollCommit(
                    flow=due.flow, watermark_kind=polls.DIGEST, watermark=None, states=[], notifications=[note],
                    polled_at=now))
                digests.mark_closed(conn, due.id, inserted[0] if inserted else None, now)
                ids += inserted
        return ids

    # -- dispatching -----------------------------------------------------------------------

    def claim_due(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        """Lease due rows (and rows whose worker's lease ran out: those come back in doubt)."""
        require_aware(now, "claim_due(now)")
        if limit <= 0:
            return []
        with writing(self._engine) as conn:
            rows = conn.execute(_CLAIM_SQL, {"now": now, "limit": limit}).all()
            if not rows:
                return []
            since = self._in_doubt_since(conn, rows)
            until, sending = now + lease, Status.SENDING.value
            writer = Writer(conn)  # the rows are locked: their counts can be set, not incremented
            writer.write(_LEASE, [
                (r.id, sending, worker, until, r.attempts_made + 1, now, since.get(r.id)) for r in rows
            ])
            writer.write(_ATTEMPT_STARTED, [(r.id, r.attempts_made + 1, now) for r in rows])
            writer.write(AUDIT, [
                audit_tuple(audit_row(
                    now, "claimed", nid=r.id, flow=r.flow, status=sending, worker=worker,
                    attempt_no=r.attempts_made + 1, in_doubt=r.id in since,
                    lease_expired_for=r.lease_owner if r.status == sending else None,
                ))
                for r in rows
            ])
        return [self._claimed(r, since.get(r.id)) for r in rows]

    def _in_doubt_since(self, conn: Connection, rows: Sequence[AnyRow]) -> dict[int, datetime]:
        """For rows whose earlier attempt never finished: when that attempt started.

        Marks those attempts `in_doubt`; the dispatcher reconciles with the provider before resending.
        """
        doubtful = [r for r in rows if r.status == Status.SENDING.value or r.in_doubt_since is not None]
        if not doubtful:
            return {}
        ids = [r.id for r in doubtful]
        unfinished = and_(a.c.notification_id.in_(ids), a.c.finished_at.is_(None))
        open_since: dict[int, datetime] = {
            nid: started
            for nid, started in conn.execute(
                select(a.c.notification_id, func.min(a.c.started_at))
                .where(unfinished)
                .group_by(a.c.notification_id)
            )
        }
        conn.execute(update(a).where(unfinished, a.c.outcome.is_(None)).values(outcome="in_doubt"))
        since: dict[int, datetime] = {}
        for r in doubtful:
            known = [t for t in (r.in_doubt_since, open_since.get(r.id)) if t is not None]
            since[r.id] = min(known) if known else r.created_at
        return since

    def _claimed(self, r: AnyRow, in_doubt_since: datetime | None) -> Claimed:
        return Claimed(
            id=r.id, flow=r.flow, entity=r.entity, record_key=r.record_key, account=r.account,
            sender=r.sender, recipient=self._keys.decrypt(r.recipient_enc),
            body=self._keys.decrypt(r.body_enc),
            attempt_no=r.attempts_made + 1, max_attempts=r.attempt_budget,
            in_doubt=in_doubt_since is not None, in_doubt_since=in_doubt_since, created_at=r.created_at,
            channel=r.channel,
        )

    def finish_attempt(self, result: AttemptResult) -> None:
        """Record an attempt's outcome, unless a newer claim owns the notification by now."""
        self.finish_attempts([result])

    def finish_attempts(self, results: Sequence[AttemptResult]) -> list[bool]:
        """Several attempts' outcomes in ONE transaction; True for each one recorded (not stale)."""
        for result in results:
            require_aware(result.finished_at, "AttemptResult.finished_at")
        if not results:
            return []
        with writing(self._engine) as conn:
            return attempt_results.finish_all(conn, results)

    # -- provider reports ------------------------------------------------------------------

    def apply_status(self, event: StatusEvent) -> ApplyResult:
        """Store one status report and move the notification forward if it is news."""
        return self.apply_statuses([event])[0]

    def apply_statuses(self, events: Sequence[StatusEvent]) -> list[ApplyResult]:
        """Several status reports in ONE transaction, each judged as `apply_status` would."""
        if not events:
            return []
        with writing(self._engine) as conn:
            return reports.apply(conn, self._keys, events)

    def errors_reported(
        self, codes: Sequence[int], since: datetime, until: datetime
    ) -> list[tuple[int, str, str]]:
        """(report id, account, sender) of status reports with one of `codes` (e.g. 30001) received
        in [since, until): how dispatchers learn that Twilio pushed back after accepting."""
        require_aware(since, "errors_reported(since)")
        require_aware(until, "errors_reported(until)")
        with reading(self._engine) as conn:
            return reports.errors_reported(conn, codes, since, until)

    # -- write-back to the ERP --------------------------------------------------------------

    def claim_write_backs(
        self, worker: str, now: datetime, lease: timedelta, limit: int
    ) -> list[WriteBackTask]:
        """Lease due write-backs; a task whose worker's lease ran out is handed out again."""
        require_aware(now, "claim_write_backs(now)")
        if limit <= 0:
            return []
        with writing(self._engine) as conn:
            return writebacks.claim(conn, worker, now, lease, limit)

    def finish_write_back(
        self, task_id: int, *, ok: bool, error: str | None, next_attempt_at: datetime | None, now: datetime,
        skipped: bool = False,
    ) -> None:
        """Done, retry at `next_attempt_at`, give up (None), or skipped (the source does not record
        this status); ignored unless the task is running."""
        require_aware(now, "finish_write_back(now)")
        with writing(self._engine) as conn:
            entry = writebacks.finish(conn, task_id, ok=ok, error=error, next_attempt_at=next_attempt_at,
                                      now=now, audit_row=audit_row, skipped=skipped)
            if entry is not None:
                conn.execute(audit.insert().values(entry))

    # -- people ----------------------------------------------------------------------------

    def list_notifications(self, flt: NotificationFilter) -> list[NotificationView]:
        """Newest first, at most `flt.limit`."""
        conditions: list[ColumnElement[bool]] = []
        if flt.flow is not None:
            conditions.append(n.c.flow == flt.flow)
        if flt.statuses:
            conditions.append(n.c.status.in_([s.value for s in flt.statuses]))
        if flt.since is not None:
            conditions.append(n.c.created_at >= flt.since)
        if flt.until is not None:
            conditions.append(n.c.created_at < flt.until)
        if flt.recipient is not None:
            conditions.append(n.c.recipient_hash == self._keys.hash_lookup(flt.recipient))
        if flt.ids:
            conditions.append(n.c.id.in_(list(flt.ids)))
        query = select(n).where(*conditions).order_by(n.c.id.desc()).limit(flt.limit)
        with reading(self._engine) as conn:
            return [self._view(r, ()) for r in conn.execute(query)]

    def get_notification(self, notification_id: int) -> NotificationView | None:
        with reading(self._engine) as conn:
            row = conn.execute(select(n).where(n.c.id == notification_id)).first()
            if row is None:
                return None
            tried = conn.execute(
                select(a).where(a.c.notification_id == notification_id).order_by(a.c.attempt_no)
            ).all()
        return self._view(row, [
            AttemptView(attempt_no=t.attempt_no, outcome=t.outcome, started_at=t.started_at,
                        finished_at=t.finished_at, provider_id=t.provider_id,
                        provider_status=t.provider_status,
                        error_code=t.error_code, error_message=t.error_message)
            for t in tried
        ])

    def prune_audit(self, before: datetime, limit: int, now: datetime | None = None) -> int:
        """Delete up to `limit` audit rows older than `before` (one transaction, audited itself)."""
        require_aware(before, "prune_audit(before)")
        with writing(self._engine) as conn:
            return retention.prune(conn, before, limit, now or datetime.now(UTC))

    def journey(self, notification_id: int) -> journeys.Journey | None:
        """The notification's whole journey (store.journey), None when there is no such notification."""
        with reading(self._engine) as conn:
            return journeys.journey(conn, notification_id)

    def _view(self, r: AnyRow, tried: Sequence[AttemptView]) -> NotificationView:
        return NotificationView(
            id=r.id, flow=r.flow, entity=r.entity, record_key=r.record_key, channel=r.channel,
            account=r.account, sender=r.sender, recipient=self._keys.decrypt(r.recipient_enc),
            recipient_field=r.recipient_field, body=self._keys.decrypt(r.body_enc), status=Status(r.status),
            reason=r.reason, provider_id=r.provider_id, error_code=r.error_code,
            error_message=r.error_message, attempts_made=r.attempts_made,
            max_attempts=r.attempt_budget, segments=r.segments, created_at=r.created_at,
            updated_at=r.updated_at, next_attempt_at=r.next_attempt_at, attempts=tuple(tried),
            event_version=r.event_version,
        )

    def replay(self, ids: Sequence[int], now: datetime, actor: str, *,
               revisions: Mapping[int, Revision] | None = None, forced: Sequence[int] = ()) -> list[int]:
        """Reopen failed/dead/undelivered notifications for a new round of attempts; old attempts stay.

        `revisions` re-address and re-render some of them (store.replays); `forced` marks those
        replayed over a permanent failure. The replay's audit row keeps what it replaced.
        """
        require_aware(now, "replay(now)")
        with writing(self._engine) as conn:
            return replays.replay(conn, self._keys, ids, now, actor, revisions or {}, set(forced))

    def audit(self, since: datetime | None, until: datetime | None, *, notification: int | None = None,
              flow: str | None = None, kinds: Sequence[str] = ()) -> Iterator[AuditEntry]:
        """Audit rows with since <= at < until (and of one notification, flow or kinds), in id order,
        streamed (holds a connection until exhausted)."""
        conditions: list[ColumnElement[bool]] = []
        if since is not None:
            conditions.append(audit.c.at >= since)
        if until is not None:
            conditions.append(audit.c.at < until)
        if notification is not None:
            conditions.append(audit.c.notification_id == notification)
        if flow is not None:
            conditions.append(audit.c.flow == flow)
        if kinds:
            conditions.append(audit.c.kind.in_(list(kinds)))
        query = select(audit).where(*conditions).order_by(audit.c.id)
        with self._engine.connect() as conn:
            rows = conn.execution_options(yield_per=CHUNK).execute(query)
            try:
                for r in rows:
                    yield AuditEntry(
                        id=r.id, at=r.at, notification_id=r.notification_id, flow=r.flow, kind=r.kind,
                        status=r.status, detail=json.loads(r.detail_json),
                    )
            finally:
                rows.close()  # a server-side cursor on PostgreSQL: close it even when abandoned


if TYPE_CHECKING:  # mypy proves SqlStore implements the whole port
    _conforms: type[Store] = SqlStore
