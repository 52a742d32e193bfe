"""Provider status reports, applied a batch at a time with one statement per kind of write.

A batch of reports (the callbacks that reached one process meanwhile) costs a fixed handful of
statements, whatever its size: lock the provider ids, find their notifications, find the reports
already stored, then insert the new reports, move the notifications and write the audit, each as
one bulk write (store.bulk). Each report is still judged on its own, in arrival order within its
provider id, against the status the reports before it in the batch left behind, exactly as if the
reports had been stored one transaction each (tests/store holds both to the same answers). On
PostgreSQL the look-ups take their provider ids and keys as one binary array each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from ml_connector.core.lifecycle import FINAL, RANK, advances, from_provider
from ml_connector.core.models import Status, StatusEvent
from ml_connector.store import writebacks
from ml_connector.store.auditrows import AUDIT, audit_row, audit_tuple, json_text
from ml_connector.store.bulk import Bulk, Writer, fast_dialect
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import ApplyResult
from ml_connector.store.scrub import mask_numbers
from ml_connector.store.tables import attempts as a
from ml_connector.store.tables import delivery_events as de
from ml_connector.store.tables import notifications as n

_PROVIDER_LOCK_SPACE = 7_400_113  # classid of the advisory locks taken per provider id
_FAILURES = frozenset({Status.FAILED, Status.UNDELIVERED})

# Every writer about provider ids takes their locks first, all at once and in one order (the
# sorted subquery), then row locks in id order: two batches can wait for each other, never deadlock.
# Array parameters go in binary (%(name)b): psycopg writes text-format arrays element by element
# with a regular expression each, which cost more than the statements themselves.
_LOCK_SQL = (
    "SELECT count(pg_advisory_xact_lock(%(space)s, hashtext(p))) "
    "FROM (SELECT DISTINCT unnest(%(pids)b::text[]) AS p ORDER BY 1) AS ordered"
)
_MATCH_SQL = (
    select(a.c.id.label("attempt_id"), a.c.provider_id.label("pid"), n.c.id, n.c.flow, n.c.status,
           n.c.provider_id, n.c.write_back_source, n.c.channel)
    .join(n, n.c.id == a.c.notification_id)
    .where(a.c.provider_id.in_(bindparam("pids", expanding=True)))
    .order_by(n.c.id, a.c.id)
    .with_for_update(of=n)
)
_KNOWN_KEYS_SQL = select(de.c.dedupe_key).where(de.c.dedupe_key.in_(bindparam("keys", expanding=True)))
# PostgreSQL: one statement text whatever the batch size (prepared once), and the provider ids
# drive the join, so each is an index look-up even before the tables have statistics (a fresh
# or freshly loaded table otherwise gets sequential scans of attempts and notifications).
_PG_MATCH_SQL = (
    "SELECT a.id AS attempt_id, a.provider_id AS pid, n.id, n.flow, n.status, n.provider_id, "
    "n.write_back_source, n.channel "
    "FROM unnest(%(pids)b::text[]) AS p(pid) "
    "JOIN attempts AS a ON a.provider_id = p.pid JOIN notifications AS n ON n.id = a.notification_id "
    "ORDER BY n.id, a.id FOR UPDATE OF n"
)
_PG_KNOWN_KEYS_SQL = (
    "SELECT d.dedupe_key FROM unnest(%(keys)b::text[]) AS k(key) "
    "JOIN delivery_events AS d ON d.dedupe_key = k.key"
)
_ERRORS_SQL = (
    select(de.c.id, n.c.account, n.c.sender)
    .join(n, n.c.id == de.c.notification_id)
    .where(de.c.error_code.in_(bindparam("codes", expanding=True)),
           de.c.received_at >= bindparam("since"), de.c.received_at < bindparam("until"))
    .order_by(de.c.id)
)
_ADOPT_EVENT = Bulk(de, ("notification_id", "result"), keys=("id",))
_ADOPTED_ATTEMPT = Bulk(a, ("provider_status",), keys=("notification_id", "provider_id"))
_ORPHANS_SQL = (
    select(de.c.id, de.c.provider_id, de.c.provider_status, de.c.error_code)
    .where(de.c.provider_id.in_(bindparam("pids", expanding=True)), de.c.notification_id.is_(None))
    .order_by(de.c.id)
)


_EVENTS = Bulk(de, ("provider_id", "provider_status", "error_code", "dedupe_key", "received_at",
                    "notification_id", "result", "raw_enc"))
_ATTEMPT_STATUS = Bulk(a, ("provider_status",), keys=("id",))
_MOVE = Bulk(n, ("status", "updated_at"), keys=("id",))
_MOVE_FAILED = Bulk(n, ("status", "updated_at", "error_code"), keys=("id",))
_MOVE_FAILED_MESSAGE = Bulk(n, ("status", "updated_at", "error_code", "error_message"), keys=("id",))
_MOVE_SHAPES = {len(shape.names): shape for shape in (_MOVE, _MOVE_FAILED, _MOVE_FAILED_MESSAGE)}


def lock_provider_ids(conn: Connection, provider_ids: Iterable[str | None]) -> None:
    """Serialise everything about these provider ids (SQLite: BEGIN IMMEDIATE already did)."""
    pids = sorted({p for p in provider_ids if p})
    if pids and conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_LOCK_SQL, {"space": _PROVIDER_LOCK_SPACE, "pids": pids})


def dedupe_key(event: StatusEvent) -> str:
    """Same report, same key: Twilio may deliver one callback several times."""
    parts: tuple[str, ...] = (
        event.provider_id,
        event.provider_status.lower(),
        "" if event.error_code is None else str(event.error_code),
        event.raw.get("RawDlrDoneDate", ""),
    )
    if "sg_event_id" in event.raw:  # SendGrid names each event: two opens are two reports
        parts = (*parts, event.raw["sg_event_id"])
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class _Match:
    """The notification a provider id belongs to (through its latest attempt with that id)."""

    attempt_id: int
    id: int
    flow: str
    status: str
    provider_id: str | None
    write_back_source: str | None
    channel: str = "sms"


class _Moves:
    """Status moves collected over a batch, written with one bulk write per statement shape."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Any, ...]] = {}
        self._write_backs: list[tuple[int, datetime]] = []

    def add(self, nid: int, new: Status, code: int | None, message: str | None, at: datetime,
            *, writes_back: bool) -> None:
        # A later move of the same notification replaces the earlier one, keeping what a failure
        # set before it: the row ends as if each move had been its own UPDATE.
        before = self._by_id.get(nid, ())
        move: tuple[Any, ...] = (nid, new.value, at, *before[3:])
        if new in _FAILURES:
            move = (nid, new.value, at, code, *((mask_numbers(message),) if message else before[4:]))
        self._by_id[nid] = move
        if new in FINAL and writes_back:
            self._write_backs.append((nid, at))

    def write(self, conn: Connection, writer: Writer) -> None:
        shapes: dict[Bulk, list[tuple[Any, ...]]] = {}
        for move in self._by_id.values():
            shapes.setdefault(_MOVE_SHAPES[len(move)], []).append(move)
        for shape, rows in shapes.items():
            writer.write(shape, rows)
        by_time: dict[datetime, list[int]] = {}
        for nid, at in self._write_backs:
            by_time.setdefault(at, []).append(nid)
        for at, ids in by_time.items():
            writebacks.enqueue_final(conn, ids, at)


def apply(conn: Connection, keys: KeyRing, events: Sequence[StatusEvent]) -> list[ApplyResult]:
    """Store `events` and move their notifications forward; one result per event, in order."""
    order = sorted(range(len(events)), key=lambda i: (events[i].provider_id, i))
    pids = sorted({e.provider_id for e in events})
    lock_provider_ids(conn, pids)
    matches = _matches(conn, pids)
    dedupe = [dedupe_key(e) for e in events]
    known = _known_keys(conn, dedupe)
    status_now: dict[int, str] = {}
    moves = _Moves()
    stored: list[tuple[Any, ...]] = []
    attempt_status: dict[int, str] = {}
    entries: list[tuple[Any, ...]] = []
    results: list[ApplyResult] = [ApplyResult.DUPLICATE] * len(events)
    for i in order:
        event, key = events[i], dedupe[i]
        match = matches.get(event.provider_id)
        current = (status_now.get(match.id, match.status)) if match else None
        new = from_provider(event.provider_status, match.channel if match else "sms")
        result = _judge(match, current, event.provider_id, new)
        at = event.received_at
        if key in known:
            result = ApplyResult.DUPLICATE
        else:
            known.add(key)
            stored.append((
                event.provider_id, event.provider_status, event.error_code, key, at,
                match.id if match else None, result.value, keys.encrypt(json_text(dict(event.raw))),
            ))
            if match is not None and new is not None and result is ApplyResult.APPLIED:
                # Only a report that moved the status forward speaks for the attempt: a stale
                # "sent" arriving after "delivered" must not rewrite what the attempt shows.
                attempt_status[match.attempt_id] = event.provider_status
                status_now[match.id] = new.value
                moves.add(match.id, new, event.error_code, event.raw.get("ErrorMessage"), at,
                          writes_back=match.write_back_source is not None)
        results[i] = result
        status = new.value if result is ApplyResult.APPLIED and new else current
        entries.append(audit_tuple(audit_row(
            at, "orphan" if result is ApplyResult.ORPHAN else "status", nid=match.id if match else None,
            flow=match.flow if match else None, status=status, provider_id=event.provider_id,
            provider_status=event.provider_status, code=event.error_code, result=result.value,
        )))
    writer = Writer(conn)
    writer.write(_EVENTS, stored)
    writer.write(_ATTEMPT_STATUS, list(attempt_status.items()))
    moves.write(conn, writer)
    writer.write(AUDIT, entries)
    return results


def _known_keys(conn: Connection, dedupe: Sequence[str]) -> set[str]:
    if not dedupe:
        return set()
    keys = {"keys": sorted(set(dedupe))}
    if fast_dialect(conn) == "postgresql":
        return set(conn.exec_driver_sql(_PG_KNOWN_KEYS_SQL, keys).scalars())
    return set(conn.execute(_KNOWN_KEYS_SQL, keys).scalars())


def _matches(conn: Connection, pids: Sequence[str]) -> dict[str, _Match]:
    """provider id -> its notification, through the latest attempt that carries that id."""
    if not pids:
        return {}
    found: dict[str, _Match] = {}
    params = {"pids": list(pids)}
    rows = (conn.exec_driver_sql(_PG_MATCH_SQL, params) if fast_dialect(conn) == "postgresql"
            else conn.execute(_MATCH_SQL, params))
    for r in rows:
        if r.pid not in found or found[r.pid].attempt_id < r.attempt_id:
            found[r.pid] = _Match(r.attempt_id, r.id, r.flow, r.status, r.provider_id, r.write_back_source,
                                  r.channel)
    return found


def _judge(match: _Match | None, current: str | None, provider_id: str, new: Status | None) -> ApplyResult:
    if match is None or current is None:
        return ApplyResult.ORPHAN
    if match.provider_id != provider_id or new is None:  # an older attempt's SID, or not a status
        return ApplyResult.STALE
    return ApplyResult.APPLIED if advances(Status(current), new) else ApplyResult.STALE


@dataclass(slots=True)
class Adopted:
    """What adopting early callbacks did: audit rows per provider id, and the statuses it left."""

    entries: dict[str, list[dict[str, Any]]]
    statuses: dict[int, Status]


def _precedence(channel: str) -> Callable[[Any], tuple[int, int]]:
    """Early callbacks are applied lowest status first (in `channel`'s table), then in arrival order."""
    def key(ev: Any) -> tuple[int, int]:
        mapped = from_provider(ev.provider_status, channel)
        return (RANK[mapped] if mapped else -1, ev.id)

    return key


def adopt_orphans(
    conn: Connection, writer: Writer, taken: Mapping[str, tuple[int, str, Status, datetime, str]]
) -> Adopted:
    """Apply callbacks that arrived before their sends were committed, lowest status first.

    `taken` maps each provider id the provider just took to (notification id, flow, the status
    the send left it in, when, channel). The audit rows are returned, not written, so that the caller
    can place them right after the attempt they follow.
    """
    adopted = Adopted({}, {})
    if not taken:
        return adopted
    waiting: dict[str, list[Any]] = {}
    for ev in conn.execute(_ORPHANS_SQL, {"pids": sorted(taken)}):
        waiting.setdefault(ev.provider_id, []).append(ev)
    moves = _Moves()
    claimed: list[tuple[Any, ...]] = []
    attempt_status: dict[tuple[int, str], str] = {}
    for provider_id, events in waiting.items():
        nid, flow, status, at, channel = taken[provider_id]
        entries = adopted.entries.setdefault(provider_id, [])
        for ev in sorted(events, key=_precedence(channel)):
            new = from_provider(ev.provider_status, channel)
            outcome = ApplyResult.APPLIED if new and advances(status, new) else ApplyResult.STALE
            claimed.append((ev.id, nid, outcome.value))
            if new and outcome is ApplyResult.APPLIED:
                moves.add(nid, new, ev.error_code, None, at, writes_back=True)
                # The attempt shows what Twilio last said of it, as when the callback is on time.
                attempt_status[(nid, provider_id)] = ev.provider_status
                status = new
            entries.append(audit_row(
                at, "status", nid=nid, flow=flow, status=status.value, provider_id=provider_id,
                provider_status=ev.provider_status, code=ev.error_code, result=outcome.value,
                adopted_orphan=True,
            ))
        adopted.statuses[nid] = status
    writer.write(_ADOPT_EVENT, claimed)
    writer.write(_ADOPTED_ATTEMPT, [(nid, pid, ps) for (nid, pid), ps in attempt_status.items()])
    moves.write(conn, writer)
    return adopted


def errors_reported(
    conn: Connection, codes: Sequence[int], since: datetime, until: datetime
) -> list[tuple[int, str, str]]:
    """(report id, account, sender) of each report with one of `codes` received in [since, until)."""
    if not codes:
        return []
    rows = conn.execute(_ERRORS_SQL, {"codes": list(codes), "since": since, "until": until})
    return [(r.id, r.account, r.sender) for r in rows]
