"""Replays in the store: reopen notifications for a new round of attempts, optionally re-addressed.

A replay keeps every earlier attempt and writes one audit row per notification with what it
replaced: the status, provider id, reason, code and message it had, so the original failure
stays in the notification's history. A re-resolved replay (`Revision`) also takes the recipient,
body and idempotency key a poll would give the event now; the audit row shows both versions,
masked (numbers) and keyed-hashed (bodies), never in clear. A revision whose key another
notification already has (that recipient was notified of this event) is not applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from ml_connector.core.lifecycle import REPLAYABLE
from ml_connector.core.models import Status
from ml_connector.core.redact import mask_phone
from ml_connector.store.auditrows import audit_row, chunks
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import Revision
from ml_connector.store.scrub import mask_numbers
from ml_connector.store.tables import audit
from ml_connector.store.tables import notifications as n

_REOPEN = {
    "status": Status.PENDING.value, "provider_id": None, "error_code": None, "error_message": None,
    "reason": None, "in_doubt_since": None, "lease_owner": None, "lease_until": None,
}


def _version(keys: KeyRing, recipient: str, field: str, body: str) -> dict[str, Any]:
    return {"recipient": mask_phone(recipient) if recipient.startswith("+") else "(none)",
            "recipient_field": field, "body_hash": keys.hash_lookup(body)[:16]}


def replay(conn: Connection, keys: KeyRing, ids: Sequence[int], now: datetime, actor: str,
           revisions: Mapping[int, Revision], forced: set[int]) -> list[int]:
    """Reopen the replayable ones of `ids`; returns those reopened, in the order asked."""
    wanted = list(dict.fromkeys(ids))
    replayed: set[int] = set()
    for chunk in chunks(wanted):
        rows = conn.execute(
            select(n.c.id, n.c.flow, n.c.status, n.c.provider_id, n.c.reason, n.c.error_code, n.c.error_message,
                   n.c.recipient_enc, n.c.recipient_field, n.c.body_enc)
            .where(n.c.id.in_(chunk), n.c.status.in_([s.value for s in REPLAYABLE]))
            .order_by(n.c.id)
            .with_for_update()
        ).all()
        entries: list[dict[str, Any]] = []
        for r in rows:
            values: dict[str, Any] = {**_REOPEN, "next_attempt_at": now, "updated_at": now,
                                      "attempt_budget": n.c.attempts_made + n.c.max_attempts}
            detail: dict[str, Any] = {
                "actor": actor, "previous_status": r.status, "previous_provider_id": r.provider_id,
                "previous_reason": mask_numbers(r.reason), "previous_error_code": r.error_code,
                "previous_error_message": mask_numbers(r.error_message), "forced": r.id in forced,
                "re_resolved": r.id in revisions,
            }
            revision = revisions.get(r.id)
            if revision is not None:
                key = keys.hash_lookup(revision.idempotency_key)
                taken = conn.execute(select(n.c.id).where(n.c.idempotency_key == key, n.c.id != r.id)).first()
                if taken is not None:
                    entries.append(audit_row(
                        now, "replay_refused", nid=r.id, flow=r.flow, status=r.status, actor=actor,
                        reason=f"notification {taken.id} already has this event for this recipient",
                    ))
                    continue
                before = _version(keys, keys.decrypt(r.recipient_enc), r.recipient_field, keys.decrypt(r.body_enc))
                after = _version(keys, revision.recipient, revision.recipient_field, revision.body)
                values |= {
                    "idempotency_key": key, "recipient_enc": keys.encrypt(revision.recipient),
                    "recipient_hash": keys.hash_lookup(revision.recipient),
                    "recipient_field": revision.recipient_field, "body_enc": keys.encrypt(revision.body),
                    "segments": revision.segments,
                }
                detail |= {"before": before, "after": after,
                           "changed": sorted(k for k in before if before[k] != after[k])}
            conn.execute(update(n).where(n.c.id == r.id).values(values))
            entries.append(audit_row(now, "replay", nid=r.id, flow=r.flow, status=Status.PENDING.value, **detail))
            replayed.add(r.id)
        if entries:
            conn.execute(audit.insert(), entries)
    return [i for i in wanted if i in replayed]
