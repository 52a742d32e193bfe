"""One notification's whole journey, read in one go: why it exists, what was tried, what came back.

The record and the poll that made it, the recipients of the same event that could not be used,
every attempt with Twilio's code and message, every status report with what it did (applied,
duplicate, stale, orphan), write-backs to the ERP and replays, in time order. `notifications show`
prints it, a dashboard can render the same value. Nothing personal leaves unmasked: recipients are
masked, bodies stay with the notification view.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ml_connector.store.tables import audit, notifications, write_backs

#: Where Twilio documents each error code.
TWILIO_ERROR_DOCS = "https://www.twilio.com/docs/api/errors/{code}"


def error_link(code: int | None) -> str | None:
    return TWILIO_ERROR_DOCS.format(code=code) if code is not None else None


@dataclass(frozen=True, slots=True)
class Step:
    """One audit row of the notification, with a line for people."""

    at: datetime
    kind: str          # created, failed, claimed, attempt, status, write_back, replay, ...
    status: str | None
    summary: str
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Sibling:
    """Another notification of the same event (same flow, record and version): another recipient."""

    id: int
    recipient_field: str
    status: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class WriteBackView:
    source: str
    delivery_status: str
    state: str
    attempts_made: int
    last_error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Journey:
    """Everything the store knows about one notification, oldest first."""

    notification_id: int
    flow: str
    entity: str
    record_key: str
    event_version: str
    record_changed_at: datetime
    created_at: datetime
    poll: Mapping[str, Any] | None               # the poll audit row that committed it
    siblings: Sequence[Sibling] = ()             # other recipients of the event; failed ones were skipped
    steps: Sequence[Step] = ()
    write_backs: Sequence[WriteBackView] = ()
    replays: Sequence[Step] = field(default_factory=tuple)
    callbacks: Sequence[Step] = field(default_factory=tuple)

    @property
    def skipped(self) -> list[Sibling]:
        """Recipients of the same event that could not be used (no usable phone, and such)."""
        return [s for s in self.siblings if s.reason and s.status in ("failed", "suppressed")]


def _summary(kind: str, status: str | None, d: Mapping[str, Any]) -> str:
    code = d.get("code")
    coded = f" [{code}]" if code is not None else ""
    if kind == "created":
        return f"created from {d.get('entity')} {d.get('record_key')} for {d.get('recipient_field')}"
    if kind in ("failed", "suppressed"):
        return f"{kind} before sending: {d.get('reason')}"
    if kind == "claimed":
        doubt = " (in doubt: reconciled before any resend)" if d.get("in_doubt") else ""
        return f"claimed by {d.get('worker')} for attempt {d.get('attempt_no')}{doubt}"
    if kind == "attempt":
        sid = f" {d['provider_id']}" if d.get("provider_id") else ""
        message = f" {d['message']}" if d.get("message") else ""
        return f"attempt {d.get('attempt_no')}: {d.get('outcome')}{sid}{coded}{message} -> {status}"
    if kind in ("status", "orphan"):
        adopted = " (arrived before its send was recorded)" if d.get("adopted_orphan") else ""
        return f"callback {d.get('provider_status')}{coded} from {d.get('provider_id')}: {d.get('result')}{adopted}"
    if kind == "write_back":
        message = f": {d['message']}" if d.get("message") else ""
        return f"write-back to {d.get('source')} of {d.get('delivery_status')}: {status}{message}"
    if kind == "replay":
        mode = "re-resolved" if d.get("re_resolved") else "stored message resent"
        was = f" was {d.get('previous_status')}"
        why = d.get("previous_reason") or d.get("previous_error_message")
        pcode = d.get("previous_error_code")
        reason = f" ({f'[{pcode}] ' if pcode is not None else ''}{why or ''})".replace(" ()", "") \
            if why or pcode is not None else ""
        force = ", forced" if d.get("forced") else ""
        return f"replayed by {d.get('actor')} ({mode}{force});{was}{reason}"
    if kind == "stale_finish":
        return f"late outcome of attempt {d.get('attempt_no')} ignored ({d.get('outcome')})"
    return f"{kind}" + (f" -> {status}" if status else "")


def journey(conn: Connection, notification_id: int) -> Journey | None:
    """The journey of one notification, or None when there is no such notification."""
    n = notifications
    row = conn.execute(select(n.c.id, n.c.flow, n.c.entity, n.c.record_key, n.c.event_version,
                              n.c.record_changed_at, n.c.created_at).where(n.c.id == notification_id)).first()
    if row is None:
        return None
    steps = [
        Step(r.at, r.kind, r.status, _summary(r.kind, r.status, detail), detail)
        for r in conn.execute(select(audit).where(audit.c.notification_id == notification_id).order_by(audit.c.id))
        for detail in (json.loads(r.detail_json),)
    ]
    poll_row = conn.execute(
        select(audit.c.at, audit.c.detail_json)
        .where(audit.c.at == row.created_at, audit.c.flow == row.flow, audit.c.kind == "poll",
               audit.c.notification_id.is_(None))
        .order_by(audit.c.id).limit(1)
    ).first()
    poll = {"at": poll_row.at, **json.loads(poll_row.detail_json)} if poll_row else None
    siblings = [
        Sibling(s.id, s.recipient_field, s.status, s.reason)
        for s in conn.execute(
            select(n.c.id, n.c.recipient_field, n.c.status, n.c.reason)
            .where(n.c.flow == row.flow, n.c.record_key == row.record_key, n.c.event_version == row.event_version,
                   n.c.id != notification_id)
            .order_by(n.c.id)
        )
    ]
    wb = write_backs
    backs = [
        WriteBackView(w.source, w.status, w.state, w.attempts_made, w.last_error, w.updated_at)
        for w in conn.execute(select(wb).where(wb.c.notification_id == notification_id).order_by(wb.c.id))
    ]
    return Journey(
        notification_id=row.id, flow=row.flow, entity=row.entity, record_key=row.record_key,
        event_version=row.event_version, record_changed_at=row.record_changed_at, created_at=row.created_at,
        poll=poll, siblings=siblings, steps=steps, write_backs=backs,
        replays=tuple(s for s in steps if s.kind == "replay"),
        callbacks=tuple(s for s in steps if s.kind in ("status", "orphan")),
    )
