"""Flow state (paused flows, each flow's last poll and error) and the audit index by notification.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ml_connector.store.types import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flow_state",
        sa.Column("flow", sa.String(200), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_by", sa.String(200)),
        sa.Column("paused_at", UtcDateTime()),
        sa.Column("last_poll_at", UtcDateTime()),
        sa.Column("last_poll_kind", sa.String(32)),
        sa.Column("last_poll_ok", sa.Boolean()),
        sa.Column("last_poll_read", sa.Integer()),
        sa.Column("last_poll_inserted", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("last_error_at", UtcDateTime()),
        sa.Column("polled_by", sa.String(200)),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("flow", name="pk_flow_state"),
    )
    op.create_index("ix_audit_notification_id_id", "audit", ["notification_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_notification_id_id", table_name="audit")
    op.drop_table("flow_state")
