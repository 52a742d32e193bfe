"""Schema migrations run from code, land in the right schema and match the table definitions."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from ml_connector.errors import ConfigError
from ml_connector.store import migrate
from ml_connector.store.crypto import KeyMismatchError, KeyRing
from ml_connector.store.engine import make_engine
from ml_connector.store.sql import SqlStore
from ml_connector.store.tables import metadata

from .builders import PG_URL, libpq

TABLES = {"store_meta", "watermarks", "record_state", "notifications", "attempts", "delivery_events", "audit",
          "flow_state", "users", "api_tokens", "secrets"}


def test_upgrade_from_empty_then_again(db_url: str) -> None:
    assert migrate.current(db_url) is None
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head() == "0005"
    migrate.upgrade(db_url)  # already at head: nothing to do, no error
    engine = make_engine(db_url)
    try:
        assert TABLES | {"alembic_version"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migration_matches_table_definitions(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="MLC_TEST_POSTGRES_URL not set")
def test_postgres_tables_and_version_table_live_in_the_url_schema(pg_schema: tuple[str, str]) -> None:
    schema, url = pg_schema
    migrate.upgrade(url)
    assert PG_URL
    with psycopg.connect(libpq(PG_URL)) as conn:
        rows = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name = ANY(%s)",
            [sorted(TABLES | {"alembic_version"})],
        ).fetchall()
    # Other schemas may exist (parallel runs); ours has every table, the default schema none.
    assert {t for s, t in rows if s == schema} == TABLES | {"alembic_version"}
    assert not [t for s, t in rows if s == "public"]


def test_store_without_migrating_refuses_an_old_schema(db_url: str, keyring: KeyRing) -> None:
    with pytest.raises(ConfigError, match="run the migrations"):
        SqlStore(db_url, keyring, migrate=False)
    migrate.upgrade(db_url)
    SqlStore(db_url, keyring, migrate=False).close()


def test_another_master_key_is_refused_at_start(make_store: Callable[..., SqlStore]) -> None:
    make_store()
    with pytest.raises(KeyMismatchError, match="not the one this database was created with"):
        make_store(keyring=KeyRing(b"z" * 32))


def test_ping_names_the_database(store: SqlStore, backend: str) -> None:
    expected = {"sqlite": "sqlite 3.", "postgres": "postgresql "}[backend]
    assert store.ping().startswith(expected)
