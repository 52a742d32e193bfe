"""The SQLite store and its WAL and SHM files are created private (0600), like the key file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_connector.store import migrate
from ml_connector.store.crypto import KeyRing
from ml_connector.store.files import create_private_database
from ml_connector.store.sql import SqlStore


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most systems have (0022 gives 0644 files), whatever the test runner's."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_and_its_wal_and_shm_are_0600(tmp_path: Path) -> None:
    db = tmp_path / "ml-connector.db"
    store = SqlStore(f"sqlite:///{db}", KeyRing(b"k" * 32))
    try:
        store.ping()  # a connection is open: the -wal and -shm files exist now
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        store.close()


def test_db_upgrade_creates_it_0600_too(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    migrate.upgrade(f"sqlite:///{db}")
    assert mode(db) == 0o600


def test_an_existing_database_keeps_its_owners_mode(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    SqlStore(f"sqlite:///{db}", KeyRing(b"k" * 32)).close()
    db.chmod(0o640)  # the owner chose group read, for a backup user say
    store = SqlStore(f"sqlite:///{db}", KeyRing(b"k" * 32))
    try:
        store.ping()
        assert mode(db) == 0o640
    finally:
        store.close()


@pytest.mark.parametrize("database", [None, "", ":memory:", "file:x.db?mode=ro"])
def test_paths_sqlite_opens_otherwise_are_left_alone(database: str | None, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    create_private_database(database)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_directory_is_left_for_sqlite_to_report(tmp_path: Path) -> None:
    create_private_database(str(tmp_path / "nowhere" / "x.db"))
    assert not (tmp_path / "nowhere").exists()
