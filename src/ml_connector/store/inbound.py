"""Inbound texts: stored (encrypted), opt-outs and opt-ins applied, replies threaded, in one transaction.

Twilio may post the same inbound message twice (its webhook retries): the MessageSid is unique,
and a second post returns what the first one decided without doing anything again. A reply is
matched by core.threads against the notifications sent to that number from that sender within
their flow's reply window; the window is measured from the notification's creation. Matched or
not, every inbound message is kept with the reason, and audited.

Functions take the caller's connection: they are steps of SqlStore's transactions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from ml_connector.core.keywords import Intent, wants_reply, words
from ml_connector.core.threads import Inbound, Matched, Sent, match_reply
from ml_connector.store import suppressions
from ml_connector.store.auditrows import audit_row
from ml_connector.store.crypto import KeyRing
from ml_connector.store.tables import inbound_messages as im
from ml_connector.store.tables import notifications as n
from ml_connector.store.tables import reply_refs as rr


@dataclass(frozen=True, slots=True)
class InboundMessage:
    provider_id: str  # MessageSid
    account_sid: str
    sender: str  # From, E.164 (or whatsapp:+E.164)
    to: str
    messaging_service_sid: str | None
    body: str
    intent: Intent
    received_at: datetime


@dataclass(frozen=True, slots=True)
class InboundOutcome:
    id: int
    intent: Intent
    notification_id: int | None
    match_reason: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class InboundView:
    id: int
    received_at: datetime
    sender: str
    to: str
    body: str
    intent: str
    notification_id: int | None
    match_reason: str


def record(conn: Connection, keys: KeyRing, msg: InboundMessage, *, reply_windows: Mapping[str, timedelta],
           opt_out_everywhere: bool) -> tuple[InboundOutcome, list[dict[str, Any]]]:
    """Store `msg` and act on it; the outcome and the audit rows to write."""
    known = conn.execute(select(im.c.id, im.c.intent, im.c.notification_id, im.c.match_reason)
                         .where(im.c.provider_id == msg.provider_id)).first()
    if known is not None:
        return InboundOutcome(known.id, Intent(known.intent), known.notification_id, known.match_reason,
                              duplicate=True), []
    from_hash = keys.hash_lookup(msg.sender.removeprefix("whatsapp:"))
    scope = suppressions.EVERYWHERE if opt_out_everywhere else (msg.messaging_service_sid or msg.to)
    entries: list[dict[str, Any]] = []
    notification_id: int | None = None
    if msg.intent is Intent.OPT_OUT:
        keyword = next(iter(words(msg.body)), "an opt-out")  # the keyword only: the rest may be personal
        entries += suppressions.add(conn, recipient_hash=from_hash, scope=scope, source="keyword",
                                    reason=f"opted out: replied {keyword} on {msg.received_at:%Y-%m-%d}",
                                    at=msg.received_at)
        reason = "opt-out"
    elif msg.intent is Intent.HELP:
        reason = "help"
    else:
        reason = "opt-in" if msg.intent is Intent.OPT_IN else ""
        if msg.intent is Intent.OPT_IN:
            entries += suppressions.remove(conn, recipient_hash=from_hash, scopes=sorted({scope, msg.to}),
                                           at=msg.received_at)
        if wants_reply(msg.intent):
            match = match_reply(_inbound(msg, from_hash), _open_for(conn, from_hash, msg, reply_windows))
            if isinstance(match, Matched):
                notification_id, reason = match.notification_id, f"matched by {match.by}"
            else:
                reason = f"{reason}; unmatched: {match.reason}" if reason else f"unmatched: {match.reason}"
    inserted = conn.execute(im.insert().values(
        provider_id=msg.provider_id, received_at=msg.received_at, account_sid=msg.account_sid,
        from_enc=keys.encrypt(msg.sender), from_hash=from_hash, to_number=msg.to,
        messaging_service_sid=msg.messaging_service_sid, body_enc=keys.encrypt(msg.body),
        intent=msg.intent.value, notification_id=notification_id, match_reason=reason,
    ))
    key = inserted.inserted_primary_key
    assert key is not None  # an INSERT of one row always has its key
    inbound_id = int(key[0])
    flow = conn.execute(select(n.c.flow).where(n.c.id == notification_id)).scalar() if notification_id else None
    entries.append(audit_row(msg.received_at, "reply" if notification_id else "inbound", nid=notification_id,
                             flow=flow, status=None, inbound_id=inbound_id, intent=msg.intent.value,
                             provider_id=msg.provider_id, match=reason))
    return InboundOutcome(inbound_id, msg.intent, notification_id, reason), entries


def _inbound(msg: InboundMessage, from_hash: str) -> Inbound:
    return Inbound(recipient_hash=from_hash, to=msg.to, messaging_service_sid=msg.messaging_service_sid,
                   body=msg.body, received_at=msg.received_at)


def _open_for(conn: Connection, from_hash: str, msg: InboundMessage,
              reply_windows: Mapping[str, timedelta]) -> list[Sent]:
    """Notifications of reply-threading flows sent to this number from this sender, recent enough."""
    if not reply_windows:
        return []
    senders = [msg.to] + ([msg.messaging_service_sid] if msg.messaging_service_sid else [])
    oldest = msg.received_at - max(reply_windows.values())
    rows = conn.execute(
        select(n.c.id, n.c.flow, n.c.sender, n.c.created_at, rr.c.reference)
        .outerjoin(rr, rr.c.notification_id == n.c.id)
        .where(n.c.recipient_hash == from_hash, n.c.sender.in_(senders), n.c.flow.in_(sorted(reply_windows)),
               n.c.created_at >= oldest, n.c.provider_id.is_not(None))
    ).all()
    return [Sent(notification_id=r.id, recipient_hash=from_hash, sender=r.sender, sent_at=r.created_at,
                 reply_window=reply_windows[r.flow], reference=r.reference) for r in rows]
