"""Conversations: suppressions (opt-outs by keyed phone hash), inbound messages, reply references, digests.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ml_connector.store.types import UtcDateTime

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("recipient_hash", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("recipient_hash", "scope", name="pk_suppressions"),
    )
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.String(64), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("account_sid", sa.String(64), nullable=False),
        sa.Column("from_enc", sa.LargeBinary(), nullable=False),
        sa.Column("from_hash", sa.String(64), nullable=False),
        sa.Column("to_number", sa.String(64), nullable=False),
        sa.Column("messaging_service_sid", sa.String(64), nullable=True),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("intent", sa.String(16), nullable=False),
        sa.Column("notification_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("match_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["notification_id"], ["notifications.id"],
                                name="fk_inbound_messages_notification_id_notifications"),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_messages"),
        sa.UniqueConstraint("provider_id", name="uq_inbound_messages_provider_id"),
    )
    op.create_index("ix_inbound_messages_received_at", "inbound_messages", ["received_at"])
    op.create_index("ix_inbound_messages_from_hash", "inbound_messages", ["from_hash"])
    op.create_index("ix_inbound_messages_notification_id", "inbound_messages", ["notification_id"])
    op.create_table(
        "reply_refs",
        sa.Column("notification_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["notification_id"], ["notifications.id"],
                                name="fk_reply_refs_notification_id_notifications"),
        sa.PrimaryKeyConstraint("notification_id", name="pk_reply_refs"),
    )
    op.create_table(
        "digests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(200), nullable=False),
        sa.Column("recipient_hash", sa.String(64), nullable=False),
        sa.Column("recipient_enc", sa.LargeBinary(), nullable=False),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("sender", sa.String(200), nullable=False),
        sa.Column("window_key", sa.String(64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("closes_at", UtcDateTime(), nullable=False),
        sa.Column("notification_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["notification_id"], ["notifications.id"],
                                name="fk_digests_notification_id_notifications"),
        sa.PrimaryKeyConstraint("id", name="pk_digests"),
        sa.UniqueConstraint("flow", "recipient_hash", "window_key", "part",
                            name="uq_digests_flow_recipient_hash_window_key_part"),
    )
    op.create_index("ix_digests_state_closes_at", "digests", ["state", "closes_at"])
    op.create_table(
        "digest_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("digest_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_key", sa.String(64), nullable=False),
        sa.Column("record_key", sa.String(500), nullable=False),
        sa.Column("text_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["digest_id"], ["digests.id"], name="fk_digest_items_digest_id_digests"),
        sa.PrimaryKeyConstraint("id", name="pk_digest_items"),
        sa.UniqueConstraint("item_key", name="uq_digest_items_item_key"),
    )
    op.create_index("ix_digest_items_digest_id", "digest_items", ["digest_id"])


def downgrade() -> None:
    op.drop_table("digest_items")
    op.drop_table("digests")
    op.drop_table("reply_refs")
    op.drop_table("inbound_messages")
    op.drop_table("suppressions")
