"""Digests in the store: items joined to one open batch per flow + recipient + window, then closed
into one notification.

Race-free by construction: a digest row is unique per (flow, recipient_hash, window_key, part);
a poll adds its items in its own transaction (so an item exists exactly when the poll's watermark
moved past it), taking the open digest row FOR UPDATE or inserting it; closing takes the same row
FOR UPDATE, so a poll and a closer in two processes never both see it open. An item whose window
was closed meanwhile (full by count) opens the window's next part. Items are keyed like the
notification they replace, so a window read twice (overlap, lookback, a restart) adds nothing.

Functions take the caller's connection: they are steps of SqlStore's transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from ml_connector.store.auditrows import audit_row
from ml_connector.store.bulk import DIALECT_INSERTS
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import DigestItem
from ml_connector.store.tables import digest_items as di
from ml_connector.store.tables import digests as dg

OPEN, CLOSED = "open", "closed"
#: Rounds of "find the open part, else insert the next one" before giving up (each lost race
#: means another process committed a part meanwhile, so a handful always suffices).
_RACES = 8


@dataclass(frozen=True, slots=True)
class DueDigest:
    id: int
    flow: str
    recipient: str
    account: str
    sender: str
    window_key: str
    part: int
    items: list[str]  # in arrival order


def add_items(conn: Connection, keys: KeyRing, items: Sequence[DigestItem], now: datetime) -> list[dict[str, Any]]:
    """Attach `items` to their open digests (creating them); the audit rows. Known items are skipped."""
    entries: list[dict[str, Any]] = []
    for item in items:
        item_hash = keys.hash_lookup(item.item_key)
        if conn.execute(select(di.c.id).where(di.c.item_key == item_hash)).first() is not None:
            continue
        recipient_hash = keys.hash_lookup(item.recipient)
        digest_id, count = _open_digest(conn, keys, item, recipient_hash, now)
        conn.execute(di.insert().values(digest_id=digest_id, item_key=item_hash, record_key=item.record_key,
                                        text_enc=keys.encrypt(item.text), created_at=now))
        count += 1
        full = item.max_items is not None and count >= item.max_items
        conn.execute(update(dg).where(dg.c.id == digest_id).values(
            item_count=count, updated_at=now, **({"closes_at": now} if full else {})))
        entries.append(audit_row(now, "digest_item", nid=None, flow=item.flow, status=None, digest_id=digest_id,
                                 record_key=item.record_key, window=item.window_key, items=count))
    return entries


def _open_digest(conn: Connection, keys: KeyRing, item: DigestItem, recipient_hash: str,
                 now: datetime) -> tuple[int, int]:
    """The open digest of this flow, recipient and window with room left (locked), or a new part.

    A full digest stays open until the closer takes it (its close time is now): the next item
    opens the next part instead of joining it."""
    same = (dg.c.flow == item.flow, dg.c.recipient_hash == recipient_hash, dg.c.window_key == item.window_key)
    room = dg.c.item_count < item.max_items if item.max_items is not None else dg.c.item_count >= 0
    insert = DIALECT_INSERTS[conn.dialect.name]
    for _ in range(_RACES):
        row = conn.execute(select(dg.c.id, dg.c.item_count).where(*same, dg.c.state == OPEN, room)
                           .with_for_update()).first()
        if row is not None:
            return int(row.id), int(row.item_count)
        part = conn.execute(select(func.coalesce(func.max(dg.c.part), -1)).where(*same)).scalar_one() + 1
        # Another process may insert this part first: it waits for that one's commit, then does
        # nothing, and the next round finds that row (or its successor) instead.
        conn.execute(insert(dg).values(
            flow=item.flow, recipient_hash=recipient_hash, recipient_enc=keys.encrypt(item.recipient),
            account=item.account, sender=item.sender, window_key=item.window_key, part=part, state=OPEN,
            item_count=0, closes_at=item.closes_at, created_at=now, updated_at=now, notification_id=None,
        ).on_conflict_do_nothing())
    raise RuntimeError(f"digest of flow {item.flow}: no open part after {_RACES} tries")


def due(conn: Connection, keys: KeyRing, now: datetime, limit: int) -> list[DueDigest]:
    """Open digests whose window closed (or that filled up), locked, with their items."""
    rows = conn.execute(
        select(dg).where(dg.c.state == OPEN, dg.c.closes_at <= now, dg.c.item_count > 0)
        .order_by(dg.c.closes_at, dg.c.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    found = []
    for r in rows:
        texts = conn.execute(select(di.c.text_enc).where(di.c.digest_id == r.id).order_by(di.c.id)).scalars()
        found.append(DueDigest(id=r.id, flow=r.flow, recipient=keys.decrypt(r.recipient_enc), account=r.account,
                               sender=r.sender, window_key=r.window_key, part=r.part,
                               items=[keys.decrypt(t) for t in texts]))
    return found


def mark_closed(conn: Connection, digest_id: int, notification_id: int | None, now: datetime) -> None:
    conn.execute(update(dg).where(dg.c.id == digest_id).values(state=CLOSED, notification_id=notification_id,
                                                              updated_at=now))

