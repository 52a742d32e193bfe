"""Run the schema migrations from code: no alembic.ini, works from an installed wheel.

The migrations directory ships inside the package; alembic gets a Config built here and the
live connection through `Config.attributes`, so URLs (with passwords or `%` escapes) never pass
through alembic's ini interpolation.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from ml_connector.store.engine import make_engine, reading, writing

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The revision this code expects the database to be at."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def upgrade_engine(engine: Engine) -> None:
    """Upgrade to head inside one write transaction (concurrent starters wait, then no-op)."""
    with writing(engine) as conn:
        command.upgrade(_config(conn), "head")


def current_engine(engine: Engine) -> str | None:
    """The database's revision, None when it was never migrated."""
    with reading(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest schema."""
    engine = make_engine(url)
    try:
        upgrade_engine(engine)
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The revision of the database at `url` (None: empty database)."""
    engine = make_engine(url)
    try:
        return current_engine(engine)
    finally:
        engine.dispose()
