"""Shared fixtures. PostgreSQL tests read MLC_TEST_POSTGRES_URL and skip without it, except in CI,
where MLC_REQUIRE_POSTGRES=1 turns any such skip into a failure."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

PG_ENV = "MLC_TEST_POSTGRES_URL"
_pg_skips: list[str] = []


def postgres_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def require_postgres() -> str:
    url = postgres_url()
    if url is None:
        pytest.skip(f"PostgreSQL test: set {PG_ENV} to run it")
    return url


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    import psycopg

    url = require_postgres()
    schema = f"mlc_test_{uuid.uuid4().hex[:12]}"
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and (PG_ENV in str(report.longrepr) or "postgres" in report.keywords):
        _pg_skips.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("MLC_REQUIRE_POSTGRES") == "1" and _pg_skips:
        print(f"\n{len(_pg_skips)} PostgreSQL test(s) were skipped but MLC_REQUIRE_POSTGRES=1:")
        for nodeid in _pg_skips:
            print(f"  {nodeid}")
        session.exitstatus = 1
