"""The schema as SQLAlchemy Core tables. Migrations (store/migrations) create exactly this.

Personal data lives only in the `*_enc` columns (AES-GCM blobs); look-ups by phone use
`recipient_hash` (keyed HMAC). Every instant is a UtcDateTime.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ml_connector.store.types import Sealed, UtcDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

#: Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid alias, autoincrementing) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")

store_meta = Table(
    "store_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

watermarks = Table(
    "watermarks",
    metadata,
    Column("flow", String(200), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("value", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

record_state = Table(
    "record_state",
    metadata,
    Column("flow", String(200), primary_key=True),
    Column("record_key", String(500), primary_key=True),
    Column("state_json", Text, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("flow", String(200), nullable=False),
    Column("entity", String(200), nullable=False),
    Column("record_key", String(500), nullable=False),
    Column("event_version", String(200), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("account", String(200), nullable=False),
    Column("sender", String(200), nullable=False),
    Column("recipient_enc", Sealed, nullable=False),
    Column("recipient_hash", String(64), nullable=False, index=True),
    Column("recipient_field", String(200), nullable=False),
    Column("body_enc", Sealed, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("provider_id", String(64), index=True),
    Column("error_code", Integer),
    Column("error_message", Text),
    Column("attempts_made", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),  # per round, as the flow asked
    Column("attempt_budget", Integer, nullable=False),  # attempts allowed in total so far (rounds)
    Column("segments", Integer, nullable=False),
    Column("write_back_source", String(200)),  # source to tell the final status, if any
    Column("next_attempt_at", UtcDateTime),
    Column("lease_owner", String(200)),
    Column("lease_until", UtcDateTime),
    Column("in_doubt_since", UtcDateTime),
    Column("record_changed_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "status", "next_attempt_at"),
    Index(None, "created_at"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("notification_id", Id, ForeignKey("notifications.id"), nullable=False),
    Column("attempt_no", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("outcome", String(16)),
    Column("provider_id", String(64), index=True),
    Column("provider_status", String(32)),
    Column("error_code", Integer),
    Column("error_message", Text),
    UniqueConstraint("notification_id", "attempt_no"),
)

delivery_events = Table(
    "delivery_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider_id", String(64), nullable=False, index=True),
    Column("provider_status", String(32), nullable=False),
    Column("error_code", Integer),
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("notification_id", Id, ForeignKey("notifications.id")),
    Column("result", String(16), nullable=False),
    Column("raw_enc", Sealed, nullable=False),
    Index(None, "error_code", "received_at"),  # recent push-back (30001) per sender, see reports
)

write_backs = Table(
    "write_backs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("notification_id", Id, ForeignKey("notifications.id"), nullable=False),
    Column("source", String(200), nullable=False),
    # the delivery as it was when the notification reached this final status
    Column("status", String(16), nullable=False),
    Column("provider_id", String(64)),
    Column("error_code", Integer),
    Column("error_message", Text),
    Column("finished_at", UtcDateTime, nullable=False),
    # the queue
    Column("state", String(16), nullable=False),  # pending, running, done, gave_up
    Column("attempts_made", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    Column("lease_owner", String(200)),
    Column("lease_until", UtcDateTime),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "state", "next_attempt_at"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False, index=True),
    Column("notification_id", Id),
    Column("flow", String(200)),
    Column("kind", String(32), nullable=False),
    Column("status", String(32)),
    Column("detail_json", Text, nullable=False),
)

# -- people who use the dashboard and the REST API (store.users) -----------------------------

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text),  # argon2id; NULL for people known only through the SSO proxy
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 of a 256-bit random token
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime),
)
#: Named secrets (`ml-connector secrets`, `${secret:NAME}` in the config), sealed by the master key.
secrets = Table(
    "secrets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value_enc", Sealed, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
