"""Initial schema: watermarks, record state, notifications, attempts, delivery events, write-backs, audit.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ml_connector.store.types import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_store_meta"),
    )
    op.create_table(
        "watermarks",
        sa.Column("flow", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("flow", "kind", name="pk_watermarks"),
    )
    op.create_table(
        "record_state",
        sa.Column("flow", sa.String(200), nullable=False),
        sa.Column("record_key", sa.String(500), nullable=False),
        sa.Column("state_json", sa.Text(), nullable=False),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("flow", "record_key", name="pk_record_state"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("flow", sa.String(200), nullable=False),
        sa.Column("entity", sa.String(200), nullable=False),
        sa.Column("record_key", sa.String(500), nullable=False),
        sa.Column("event_version", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("sender", sa.String(200), nullable=False),
        sa.Column("recipient_enc", sa.LargeBinary(), nullable=False),
        sa.Column("recipient_hash", sa.String(64), nullable=False),
        sa.Column("recipient_field", sa.String(200), nullable=False),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.String(64), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("attempts_made", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("attempt_budget", sa.Integer(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("write_back_source", sa.String(200), nullable=True),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("in_doubt_since", UtcDateTime(), nullable=True),
        sa.Column("record_changed_at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("idempotency_key", name="uq_notifications_idempotency_key"),
    )
    op.create_index("ix_notifications_recipient_hash", "notifications", ["recipient_hash"])
    op.create_index("ix_notifications_provider_id", "notifications", ["provider_id"])
    op.create_index("ix_notifications_status_next_attempt_at", "notifications", ["status", "next_attempt_at"])
    op.create_index("ix_notifications_created_at", "notifications", ["created_at"])
    op.create_table(
        "attempts",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("notification_id", Id, nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("provider_id", sa.String(64), nullable=True),
        sa.Column("provider_status", sa.String(32), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_attempts"),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["notifications.id"], name="fk_attempts_notification_id_notifications"
        ),
        sa.UniqueConstraint("notification_id", "attempt_no", name="uq_attempts_notification_id_attempt_no"),
    )
    op.create_index("ix_attempts_provider_id", "attempts", ["provider_id"])
    op.create_table(
        "delivery_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.String(64), nullable=False),
        sa.Column("provider_status", sa.String(32), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("notification_id", Id, nullable=True),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("raw_enc", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_events"),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["notifications.id"], name="fk_delivery_events_notification_id_notifications"
        ),
        sa.UniqueConstraint("dedupe_key", name="uq_delivery_events_dedupe_key"),
    )
    op.create_index("ix_delivery_events_provider_id", "delivery_events", ["provider_id"])
    op.create_table(
        "write_backs",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("notification_id", Id, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.String(64), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts_made", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_write_backs"),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["notifications.id"], name="fk_write_backs_notification_id_notifications"
        ),
    )
    op.create_index("ix_write_backs_state_next_attempt_at", "write_backs", ["state", "next_attempt_at"])
    op.create_table(
        "audit",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("notification_id", Id, nullable=True),
        sa.Column("flow", sa.String(200), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_at", "audit", ["at"])


def downgrade() -> None:
    for index, table in (
        ("ix_audit_at", "audit"),
        ("ix_write_backs_state_next_attempt_at", "write_backs"),
        ("ix_delivery_events_provider_id", "delivery_events"),
        ("ix_attempts_provider_id", "attempts"),
        ("ix_notifications_created_at", "notifications"),
        ("ix_notifications_status_next_attempt_at", "notifications"),
        ("ix_notifications_provider_id", "notifications"),
        ("ix_notifications_recipient_hash", "notifications"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("audit", "write_backs", "delivery_events", "attempts", "notifications"):
        op.drop_table(table)
    for table in ("record_state", "watermarks", "store_meta"):
        op.drop_table(table)
