"""Operations' schema: the `flow_state` table (what operators set about a flow, what its poller
last did) and the audit index by notification (one notification's timeline, store.journey).

Kept apart from store.tables (the pipeline's own tables); both register on the same metadata, so
migrations and the schema comparison see them.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from ml_connector.store.tables import audit, metadata
from ml_connector.store.types import UtcDateTime

flow_state = Table(
    "flow_state",
    metadata,
    Column("flow", String(200), primary_key=True),
    Column("paused", Boolean, nullable=False),
    Column("paused_by", String(200)),
    Column("paused_at", UtcDateTime),
    Column("last_poll_at", UtcDateTime),
    Column("last_poll_kind", String(32)),
    Column("last_poll_ok", Boolean),
    Column("last_poll_read", Integer),
    Column("last_poll_inserted", Integer),
    Column("last_error", Text),
    Column("last_error_at", UtcDateTime),
    Column("polled_by", String(200)),
    Column("updated_at", UtcDateTime, nullable=False),
)

#: A notification's audit rows, in order, without reading the whole trail.
audit_by_notification = Index("ix_audit_notification_id_id", audit.c.notification_id, audit.c.id)
