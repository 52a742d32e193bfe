"""Store fixtures: every store test runs on SQLite and, when MLC_TEST_POSTGRES_URL is set, PostgreSQL.

Each PostgreSQL test gets its own schema (through the URL's search_path option), so parallel
runs never see each other's rows; the schema is dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from ml_connector.store.crypto import KeyRing
from ml_connector.store.sql import SqlStore

from .builders import PG_URL, libpq

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason="MLC_TEST_POSTGRES_URL not set")],
    ),
]


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """A fresh schema and a URL whose connections use it; dropped after the test."""
    assert PG_URL
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(libpq(PG_URL), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    yield schema, url
    with psycopg.connect(libpq(PG_URL), autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Any, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    _, url = request.getfixturevalue("pg_schema")
    return str(url)


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing(b"k" * 32)


@pytest.fixture
def make_store(db_url: str, keyring: KeyRing) -> Iterator[Callable[..., SqlStore]]:
    """Factory: more than one store on the same database acts like more than one process."""
    opened: list[SqlStore] = []

    def make(**overrides: Any) -> SqlStore:
        args: dict[str, Any] = {"url": db_url, "keyring": keyring, **overrides}
        store = SqlStore(args.pop("url"), args.pop("keyring"), **args)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., SqlStore]) -> SqlStore:
    return make_store()
