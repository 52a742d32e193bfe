"""Poller leadership locks: one holder per flow, freed when the holder dies, fencing on commit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from ml_connector.store.crypto import KeyRing
from ml_connector.store.locks import FileFlowLock, LockLost, PgFlowLock, flow_lock_key, lock_file_path
from ml_connector.store.sql import SqlStore

from .builders import PG_URL, T0, libpq, notification, poll


@pytest.fixture
def store(db_url: str, keyring: KeyRing) -> Iterator[SqlStore]:
    s = SqlStore(db_url, keyring)
    yield s
    s.close()


def test_one_holder_per_flow_until_released(store: SqlStore) -> None:
    first = store.flow_lock("po_approved", label="first")
    second = store.flow_lock("po_approved", label="second")
    other_flow = store.flow_lock("invoice_validated", label="second")
    try:
        assert first.acquire() is True
        assert first.acquire() is True          # re-checked while held
        assert second.acquire() is False
        assert other_flow.acquire() is True     # flows are independent
        first.release()
        assert second.acquire() is True
        assert first.acquire() is False
    finally:
        for lock in (first, second, other_flow):
            lock.release()


def test_fenced_commit_goes_through_only_while_the_lock_is_held(store: SqlStore) -> None:
    lock = store.flow_lock("po-approved", label="poller")
    fenced = store.fenced(lock)
    try:
        with pytest.raises(LockLost, match="does not hold"):
            fenced.commit_poll(poll(notification(1)))
        assert store.get_watermark("po-approved") is None

        assert lock.acquire()
        assert len(fenced.commit_poll(poll(notification(2)))) == 1
        assert store.get_watermark("po-approved") == T0
        # The unfenced store is unaffected by the view.
        assert len(store.commit_poll(poll(notification(3), watermark=None))) == 1
    finally:
        lock.release()


def test_release_twice_and_release_unheld_are_harmless(store: SqlStore) -> None:
    lock = store.flow_lock("f", label="x")
    lock.release()
    assert lock.acquire()
    lock.release()
    lock.release()
    assert store.flow_lock("f", label="y").acquire()


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from ml_connector.store.crypto import KeyRing
    from ml_connector.store.sql import SqlStore
    lock = SqlStore(sys.argv[1], KeyRing(b"k" * 32)).flow_lock("po_approved", label="child")
    print(lock.acquire(), flush=True)
    time.sleep(120)
    """
)


def test_a_killed_holder_frees_the_lock(store: SqlStore, db_url: str) -> None:
    """SIGKILL: no release runs, yet the kernel (flock) or PostgreSQL (socket closed) frees the lock."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, db_url], stdout=subprocess.PIPE, text=True
    )
    mine = store.flow_lock("po_approved", label="parent")
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "True"
        assert mine.acquire() is False
        child.kill()
        child.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not mine.acquire():
            assert time.monotonic() < deadline, "the dead holder's lock was not freed"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
        mine.release()


# -- SQLite -------------------------------------------------------------------------------------


def test_sqlite_lock_is_a_file_next_to_the_database(tmp_path: Path, keyring: KeyRing) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'mlc.db'}", keyring)
    try:
        lock = store.flow_lock("po approved/EU", label="host:123")
        assert isinstance(lock, FileFlowLock)
        assert lock.acquire()
        assert lock.path.parent == tmp_path
        assert lock.path.name.startswith("mlc.db.poller-po_approved_EU-")
        assert lock.path.read_text() == "host:123\n"
        lock.release()
        assert lock.path.exists()  # kept, so a concurrent opener never locks a deleted file
    finally:
        store.close()


def test_lock_file_names_are_stable_and_distinct() -> None:
    db = Path("/data/mlc.db")
    assert lock_file_path(db, "po_approved") == Path("/data/mlc.db.poller-po_approved.lock")
    assert lock_file_path(db, "a/b") != lock_file_path(db, "a b")
    assert lock_file_path(db, "a/b") == lock_file_path(db, "a/b")


# -- PostgreSQL ---------------------------------------------------------------------------------


def test_keys_are_stable_64_bit_and_depend_on_schema_and_flow() -> None:
    key = flow_lock_key("public", "po_approved")
    assert key == flow_lock_key("public", "po_approved")
    assert -(2**63) <= key < 2**63
    assert len({key, flow_lock_key("other", "po_approved"), flow_lock_key("public", "invoice")}) == 3


@pytest.fixture
def pg_store(pg_schema: tuple[str, str], keyring: KeyRing) -> Iterator[tuple[str, SqlStore]]:
    schema, url = pg_schema
    s = SqlStore(url, keyring)
    yield schema, s
    s.close()


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    assert PG_URL
    return psycopg.connect(libpq(PG_URL), autocommit=True)


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="MLC_TEST_POSTGRES_URL not set")
def test_pg_lock_is_visible_to_admins_under_its_key(pg_store: tuple[str, SqlStore]) -> None:
    schema, store = pg_store
    lock = store.flow_lock("po_approved", label="ml-connector host:4242")
    assert isinstance(lock, PgFlowLock)
    try:
        assert lock.acquire()
        assert lock.key == flow_lock_key(schema, "po_approved")
        with _admin() as admin:
            row = admin.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
                (lock.key,),
            ).fetchone()
        assert row == ("ml-connector host:4242",)
    finally:
        lock.release()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="MLC_TEST_POSTGRES_URL not set")
def test_pg_same_flow_in_two_schemas_does_not_collide(
    pg_store: tuple[str, SqlStore], keyring: KeyRing
) -> None:
    _, store = pg_store
    assert PG_URL
    other_schema = f"t_{uuid.uuid4().hex[:16]}"
    with _admin() as admin:
        admin.execute(f'CREATE SCHEMA "{other_schema}"')
    sep = "&" if "?" in PG_URL else "?"
    other = SqlStore(f"{PG_URL}{sep}options={quote(f'-csearch_path={other_schema}')}", keyring)
    here, there = store.flow_lock("po_approved", label="a"), other.flow_lock("po_approved", label="b")
    assert isinstance(here, PgFlowLock) and isinstance(there, PgFlowLock)
    try:
        assert here.acquire() and there.acquire()
        assert here.key != there.key
    finally:
        here.release()
        there.release()
        other.close()
        with _admin() as admin:
            admin.execute(f'DROP SCHEMA "{other_schema}" CASCADE')


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="MLC_TEST_POSTGRES_URL not set")
def test_pg_holder_whose_session_ends_stops_and_commits_nothing(pg_store: tuple[str, SqlStore]) -> None:
    """The session is cut (as by a network failure or a server restart): the holder must notice."""
    _, store = pg_store
    label = f"holder-{uuid.uuid4().hex[:8]}"
    holder = store.flow_lock("po-approved", label=label)
    assert isinstance(holder, PgFlowLock)
    standby = store.flow_lock("po-approved", label="standby")
    fenced = store.fenced(holder)
    try:
        assert holder.acquire()
        assert standby.acquire() is False
        with _admin() as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (label,)
            ).fetchall()
            assert killed == [(True,)]
            deadline = time.monotonic() + 10
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", (label,)).fetchone():
                assert time.monotonic() < deadline  # termination is asynchronous on the server
                time.sleep(0.02)
        # The old holder has not noticed yet; its commit is refused all the same (fencing).
        with pytest.raises(LockLost, match="session ended"):
            fenced.commit_poll(poll(notification(1)))
        assert store.get_watermark("po-approved") is None
        assert standby.acquire()
        assert holder.acquire() is False   # notices, gives up, and cannot win it back
        with pytest.raises(LockLost):
            fenced.commit_poll(poll(notification(1)))
        assert store.get_watermark("po-approved") is None
    finally:
        holder.release()
        standby.release()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="MLC_TEST_POSTGRES_URL not set")
def test_pg_lock_session_survives_a_short_idle_session_timeout(
    pg_schema: tuple[str, str], keyring: KeyRing
) -> None:
    """The lock session sits idle between polls by design: a site-wide idle timeout must not end it."""
    schema, _ = pg_schema
    assert PG_URL
    sep = "&" if "?" in PG_URL else "?"
    SqlStore(f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}", keyring).close()  # migrated
    # Migrating under the timeout would test alembic's pauses on a busy machine, not the lock.
    url = f"{PG_URL}{sep}options={quote(f'-csearch_path={schema} -cidle_session_timeout=300')}"
    store = SqlStore(url, keyring, migrate=False)
    holder, standby = store.flow_lock("po_approved", label="h"), store.flow_lock("po_approved", label="s")
    try:
        assert holder.acquire()
        time.sleep(1.0)  # well past the 300 ms idle timeout every other session of this URL gets
        assert standby.acquire() is False
        assert holder.acquire() is True
    finally:
        holder.release()
        standby.release()
        store.close()
