"""The suppression list: recipients who opted out, and what that does to their notifications.

A suppression is keyed by the recipient's keyed phone hash and a scope: the sender they opted
out of (the E.164 number, or the Messaging Service SID when the number belongs to one, since
Twilio blocks the whole service) or "*" for every sender. Adding one suppresses, in the same
transaction, the recipient's notifications that are still waiting (pending or deferred) from
that sender; a poll checks new notifications against the list in its own transaction. A
suppressed notification is never sent, never retried and not replayable (core.lifecycle).

Functions take the caller's connection: they are steps of SqlStore's transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, select, update

from ml_connector.core.models import Status
from ml_connector.store.auditrows import audit_row
from ml_connector.store.tables import notifications as n
from ml_connector.store.tables import suppressions as s

EVERYWHERE = "*"
#: Twilio's "Attempt to send to unsubscribed recipient": the recipient texted STOP to that sender.
UNSUBSCRIBED = 21610
_WAITING = (Status.PENDING.value, Status.DEFERRED.value)


def any_exist(conn: Connection) -> bool:
    """One cheap read, so that polls of deployments without opt-outs pay nothing more."""
    return conn.execute(select(exists().where(s.c.recipient_hash.is_not(None)))).scalar() is True


def matching(conn: Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """For each (recipient_hash, sender) that is suppressed, the suppression's reason."""
    wanted = set(pairs)
    if not wanted:
        return {}
    hashes = sorted({h for h, _ in wanted})
    rows = conn.execute(select(s.c.recipient_hash, s.c.scope, s.c.reason).where(s.c.recipient_hash.in_(hashes)))
    by_hash: dict[str, list[tuple[str, str]]] = {}
    for recipient_hash, scope, reason in rows:
        by_hash.setdefault(recipient_hash, []).append((scope, reason))
    found: dict[tuple[str, str], str] = {}
    for recipient_hash, sender in wanted:
        for scope, reason in by_hash.get(recipient_hash, ()):
            if scope in (sender, EVERYWHERE):
                found[(recipient_hash, sender)] = reason
                break
    return found


def add(conn: Connection, *, recipient_hash: str, scope: str, source: str, reason: str,
        at: datetime) -> list[dict[str, Any]]:
    """Record the suppression (idempotent) and suppress what is still waiting; the audit rows."""
    known = conn.execute(select(s.c.reason).where(s.c.recipient_hash == recipient_hash, s.c.scope == scope)).first()
    if known is None:
        conn.execute(s.insert().values(recipient_hash=recipient_hash, scope=scope, source=source, reason=reason,
                                       created_at=at))
    entries = [audit_row(at, "opt_out", nid=None, flow=None, status=None, scope=scope, source=source,
                         reason=reason, recipient_hash=recipient_hash[:12], already=known is not None)]
    sender_matches = n.c.sender == scope if scope != EVERYWHERE else n.c.sender.is_not(None)
    waiting = and_(n.c.recipient_hash == recipient_hash, n.c.status.in_(_WAITING), sender_matches)
    held = conn.execute(select(n.c.id, n.c.flow).where(waiting).with_for_update()).all()
    if held:
        conn.execute(update(n).where(n.c.id.in_([r.id for r in held])).values(
            status=Status.SUPPRESSED.value, reason=reason, next_attempt_at=None, updated_at=at))
        entries += [audit_row(at, "suppressed", nid=r.id, flow=r.flow, status=Status.SUPPRESSED.value,
                              reason=reason) for r in held]
    return entries


def remove(conn: Connection, *, recipient_hash: str, scopes: Sequence[str], at: datetime) -> list[dict[str, Any]]:
    """Lift the suppressions of these scopes (an opt-in); what was suppressed stays suppressed."""
    gone = conn.execute(delete(s).where(s.c.recipient_hash == recipient_hash, s.c.scope.in_(list(scopes)))).rowcount
    return [audit_row(at, "opt_in", nid=None, flow=None, status=None, scopes=list(scopes),
                      recipient_hash=recipient_hash[:12], lifted=gone)]


def unsubscribed_by_twilio(conn: Connection, notification_ids: Sequence[int], at: datetime) -> list[dict[str, Any]]:
    """Twilio refused these sends with 21610: their recipients opted out of that sender."""
    if not notification_ids:
        return []
    rows = conn.execute(select(n.c.recipient_hash, n.c.sender).where(n.c.id.in_(list(notification_ids)))).all()
    entries: list[dict[str, Any]] = []
    for recipient_hash, sender in sorted(set(rows)):
        entries += add(conn, recipient_hash=recipient_hash, scope=sender, source="twilio_21610",
                       reason=f"opted out: Twilio refused the send with {UNSUBSCRIBED} (the recipient texted STOP "
                              "to this sender)", at=at)
    return entries

