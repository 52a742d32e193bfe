"""What a poll writes: record states, new notifications and the watermark, in the caller's transaction.

Kept apart from the rest of the store because it is the poller's hot path (one call per page
of records) and has nothing to do with dispatching or provider reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, String, Table, bindparam, cast, func, select

from ml_connector.core.lifecycle import FINAL
from ml_connector.core.models import Status, require_aware
from ml_connector.store import digests, suppressions, writebacks
from ml_connector.store.auditrows import AUDIT, audit_row, audit_tuple, chunks
from ml_connector.store.bulk import Bulk, Writer
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NewNotification, PollCommit
from ml_connector.store.scrub import mask_numbers
from ml_connector.store.tables import notifications, record_state, reply_refs, watermarks
from ml_connector.store.types import UtcDateTime

InsertFactory = Callable[[Table], Any]
#: The `watermark_kind` of a commit made by closing digests (no poll: no poll audit row).
DIGEST = "digest"


def last_seen(conn: Connection, flow: str, record_keys: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """The stored state of each of `record_keys` that has one."""
    found: dict[str, Mapping[str, Any]] = {}
    for chunk in chunks(list(dict.fromkeys(record_keys))):
        rows = conn.execute(
            select(record_state.c.record_key, record_state.c.state_json).where(
                record_state.c.flow == flow, record_state.c.record_key.in_(chunk)
            )
        )
        found.update({key: json.loads(state) for key, state in rows})
    return found


def commit(conn: Connection, keys: KeyRing, insert: InsertFactory, commit: PollCommit) -> list[int]:
    """Watermark, record states and new notifications; returns the ids really inserted."""
    now = require_aware(commit.polled_at, "PollCommit.polled_at")
    first_of_key: dict[str, NewNotification] = {}
    for x in commit.notifications:
        first_of_key.setdefault(x.idempotency_key, x)
    unique = _suppressed(conn, keys, list(first_of_key.values()))
    rows = [_notification_row(keys, x, now) for x in unique]
    states = {
        (s.flow, s.record_key): {
            "flow": s.flow, "record_key": s.record_key, "changed_at": s.changed_at, "updated_at": now,
            "state_json": json.dumps(dict(s.values), sort_keys=True, default=str),
        }
        for s in commit.states
    }
    moved = commit.watermark is not None and _advance_watermark(conn, insert, commit, now)
    if states:
        stmt = insert(record_state)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[record_state.c.flow, record_state.c.record_key],
                set_={c: stmt.excluded[c] for c in ("state_json", "changed_at", "updated_at")},
            ),
            list(states.values()),
        )
    writer = Writer(conn)
    inserted = _insert_notifications(conn, writer, rows)
    ids = [(inserted[row["idempotency_key"]], x) for row, x in zip(rows, unique, strict=True)
           if row["idempotency_key"] in inserted]
    entries = [_created_audit(nid, x, now) for nid, x in ids]
    writebacks.enqueue_final(conn, [nid for nid, x in ids if x.status in FINAL], now)
    refs = [{"notification_id": nid, "reference": x.reply_reference} for nid, x in ids if x.reply_reference]
    if refs:
        conn.execute(reply_refs.insert(), refs)
    entries += [
        audit_row(now, x.status.value, nid=nid, flow=x.flow, status=x.status.value, reason=x.reason)
        for nid, x in ids
        if x.status in (Status.FAILED, Status.SUPPRESSED)
    ]
    entries += [  # held by policy (quiet hours): the journey shows why and until when
        audit_row(now, "deferred", nid=nid, flow=x.flow, status=x.status.value, reason=x.reason,
                  until=x.next_attempt_at.isoformat())
        for nid, x in ids
        if x.status is Status.DEFERRED
    ]
    if commit.digest_items:
        entries += digests.add_items(conn, keys, commit.digest_items, now)
    if (moved or ids or commit.digest_items) and commit.watermark_kind != DIGEST:
        entries.append(audit_row(
            now, "poll", nid=None, flow=commit.flow, status=None,
            watermark_kind=commit.watermark_kind,
            watermark=commit.watermark.isoformat() if moved and commit.watermark else None,
            inserted=len(ids), duplicates=len(commit.notifications) - len(ids), states=len(states),
            **({"digest_items": len(commit.digest_items)} if commit.digest_items else {}),
        ))
    writer.write(AUDIT, [audit_tuple(entry) for entry in entries])
    return [nid for nid, _ in ids]


def _suppressed(conn: Connection, keys: KeyRing, unique: list[NewNotification]) -> list[NewNotification]:
    """The notifications, with those to recipients who opted out of their sender suppressed."""
    waiting = [x for x in unique if x.status in (Status.PENDING, Status.DEFERRED)]
    if not waiting or not suppressions.any_exist(conn):
        return unique
    hashed = {id(x): keys.hash_lookup(x.recipient) for x in waiting}
    found = suppressions.matching(conn, ((hashed[id(x)], x.sender) for x in waiting))
    if not found:
        return unique
    return [replace(x, status=Status.SUPPRESSED, reason=found[(hashed[id(x)], x.sender)])
            if id(x) in hashed and (hashed[id(x)], x.sender) in found else x for x in unique]


def _notification_row(keys: KeyRing, x: NewNotification, now: datetime) -> dict[str, Any]:
    return {
        # keyed hash: keys are built from the recipient, and only their equality matters here
        "idempotency_key": keys.hash_lookup(x.idempotency_key), "flow": x.flow, "entity": x.entity,
        "record_key": x.record_key, "event_version": x.event_version, "channel": x.channel,
        "account": x.account, "sender": x.sender,
        "recipient_enc": keys.encrypt(x.recipient),
        "recipient_hash": keys.hash_lookup(x.recipient),
        "recipient_field": x.recipient_field, "body_enc": keys.encrypt(x.body),
        "status": x.status.value, "reason": mask_numbers(x.reason),
        "attempts_made": 0, "max_attempts": x.max_attempts, "attempt_budget": x.max_attempts,
        "segments": x.segments, "write_back_source": x.write_back,
        "next_attempt_at": x.next_attempt_at if x.status in (Status.PENDING, Status.DEFERRED) else None,
        "record_changed_at": x.record_changed_at, "created_at": now, "updated_at": now,
    }


#: The columns `_notification_row` fills, as bulk writes take them (store.bulk).
_NOTIFICATION_COLUMNS = (
    "idempotency_key", "flow", "entity", "record_key", "event_version", "channel", "account", "sender",
    "recipient_enc", "recipient_hash", "recipient_field", "body_enc", "status", "reason", "attempts_made",
    "max_attempts", "attempt_budget", "segments", "write_back_source", "next_attempt_at", "record_changed_at",
    "created_at", "updated_at",
)
_NOTIFICATIONS = Bulk(notifications, _NOTIFICATION_COLUMNS, unique=("idempotency_key",))
_NOTIFICATION_VALUES = itemgetter(*_NOTIFICATION_COLUMNS)


def _created_audit(nid: int, x: NewNotification, now: datetime) -> dict[str, Any]:
    return audit_row(
        now, "created", nid=nid, flow=x.flow, status=x.status.value, entity=x.entity,
        record_key=x.record_key, event_version=x.event_version, channel=x.channel,
        recipient_field=x.recipient_field, segments=x.segments,
    )


_KNOWN_KEYS_SQL = select(notifications.c.idempotency_key).where(
    notifications.c.idempotency_key.in_(bindparam("keys", expanding=True))
)
_NEW_IDS_SQL = select(notifications.c.idempotency_key, notifications.c.id).where(
    notifications.c.idempotency_key.in_(bindparam("keys", expanding=True)),
    notifications.c.created_at == bindparam("now", type_=UtcDateTime()),
)


def known_keys(conn: Connection, keys: KeyRing, idempotency_keys: Sequence[str]) -> set[str]:
    """Those of `idempotency_keys` already stored (they are kept as keyed hashes)."""
    hashed = {keys.hash_lookup(key): key for key in idempotency_keys}
    found: set[str] = set()
    for chunk in chunks(list(hashed)):
        found.update(hashed[h] for h in conn.execute(_KNOWN_KEYS_SQL, {"keys": list(chunk)}).scalars())
    return found


def _insert_notifications(conn: Connection, writer: Writer, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert, skipping idempotency keys already stored; key -> id of the rows really inserted.

    Three plain statements rather than one INSERT ... RETURNING over the batch: for RETURNING,
    SQLAlchemy renders one statement with a placeholder per value (tens of thousands per batch),
    which psycopg re-parses on every call; a bulk write (store.bulk) is one statement. The ids are read
    back by key and by this commit's own creation time, so a row another writer inserted meanwhile
    (the poll's lock makes that a misuse) is never taken for ours.
    """
    if not rows:
        return {}
    known: set[str] = set()
    for chunk in chunks([row["idempotency_key"] for row in rows]):
        known.update(conn.execute(_KNOWN_KEYS_SQL, {"keys": list(chunk)}).scalars())
    new = [row for row in rows if row["idempotency_key"] not in known]
    if not new:
        return {}
    writer.write(_NOTIFICATIONS, [_NOTIFICATION_VALUES(row) for row in new])
    ids: dict[str, int] = {}
    one_row = conn.dialect.name == "sqlite"
    for chunk in chunks([row["idempotency_key"] for row in new]):
        params = {"keys": list(chunk), "now": new[0]["created_at"]}
        if one_row and not any("," in key or ":" in key for key in chunk):
            ids.update(_split_ids(conn.execute(_NEW_IDS_ONE_ROW_SQL, params).scalar_one()))
        else:
            ids.update({key: nid for key, nid in conn.execute(_NEW_IDS_SQL, params)})
    return ids


#: `_NEW_IDS_SQL` as one row of "key:id,key:id...": SQLite's driver releases and retakes the GIL
#: for every row it steps, and each retake waits for the poller's busy main thread (see
#: store.bulk); one row is one wait. Keys are keyed-hash hex, free of "," and ":".
_NEW_IDS_ONE_ROW_SQL = select(
    func.group_concat(notifications.c.idempotency_key + ":" + cast(notifications.c.id, String))
).where(
    notifications.c.idempotency_key.in_(bindparam("keys", expanding=True)),
    notifications.c.created_at == bindparam("now", type_=UtcDateTime()),
)


def _split_ids(text: str | None) -> dict[str, int]:
    pairs = (item.rpartition(":") for item in text.split(",")) if text else ()
    return {key: int(nid) for key, _, nid in pairs}


def _advance_watermark(conn: Connection, insert: InsertFactory, commit: PollCommit, now: datetime) -> bool:
    """Upsert the watermark unless the stored one is later: watermarks never go backwards."""
    params = {"w_flow": commit.flow, "w_kind": commit.watermark_kind, "w_value": commit.watermark, "w_now": now}
    return conn.execute(_watermark_upsert(insert), params).first() is not None


#: insert factory (one per dialect) -> the watermark upsert, built once: with its values inline
#: it was built, and its cache key computed, on every commit (a tenth of a commit's Python work).
_WATERMARK_UPSERTS: dict[InsertFactory, Any] = {}


def _watermark_upsert(insert: InsertFactory) -> Any:
    stmt = _WATERMARK_UPSERTS.get(insert)
    if stmt is None:
        c = watermarks.c
        values = insert(watermarks).values(
            flow=bindparam("w_flow", type_=c.flow.type), kind=bindparam("w_kind", type_=c.kind.type),
            value=bindparam("w_value", type_=c.value.type), updated_at=bindparam("w_now", type_=c.updated_at.type),
        )
        stmt = _WATERMARK_UPSERTS[insert] = values.on_conflict_do_update(
            index_elements=[c.flow, c.kind],
            set_={"value": values.excluded.value, "updated_at": values.excluded.updated_at},
            where=c.value < values.excluded.value,
        ).returning(c.flow)
    return stmt
