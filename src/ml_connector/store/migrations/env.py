"""Alembic environment: runs on the connection handed over by store.migrate (online only)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from ml_connector.store import ops_tables  # noqa: F401 - registers its tables on the metadata
from ml_connector.store.tables import metadata

#: Any fixed number: PostgreSQL processes starting together migrate one at a time.
_PG_MIGRATION_LOCK = 7_400_113_021


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; use store.migrate.upgrade")

_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError("run migrations through ml_connector.store.migrate, which supplies the connection")
_run(_connection)
