"""Named secrets in the store: sealed, listed without values, audited without values."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from ml_connector.errors import ConfigError
from ml_connector.store.crypto import KeyMismatchError, KeyRing
from ml_connector.store.engine import parse_url
from ml_connector.store.secrets import read_secrets
from ml_connector.store.sql import SqlStore
from ml_connector.store.tables import secrets

from .builders import T0

VALUE = "p@ss w0rd, with spaces & ünïcode"


def test_set_list_replace_delete(store: SqlStore) -> None:
    box = store.secrets()
    assert box.set("EBS_PASSWORD", VALUE, now=T0, actor="cli:ana") is True
    assert box.set("sap.token", "t1", now=T0, actor="cli:ana") is True
    assert box.set("sap.token", "t2", now=T0 + timedelta(minutes=1), actor="cli:bo") is False
    listed = box.list()
    assert [s.name for s in listed] == ["EBS_PASSWORD", "sap.token"]
    assert listed[1].created_at == T0 and listed[1].updated_at == T0 + timedelta(minutes=1)
    assert box.values(["EBS_PASSWORD", "sap.token", "absent"]) == {"EBS_PASSWORD": VALUE, "sap.token": "t2"}
    assert box.delete("sap.token", now=T0, actor="cli:bo") is True
    assert box.delete("sap.token", now=T0, actor="cli:bo") is False
    assert box.values(["sap.token"]) == {}


def test_values_are_sealed_at_rest_and_never_audited(store: SqlStore, db_url: str) -> None:
    store.secrets().set("EBS_PASSWORD", VALUE, now=T0, actor="cli:ana")
    store.secrets().delete("EBS_PASSWORD", now=T0, actor="cli:ana")
    store.secrets().set("EBS_PASSWORD", VALUE, now=T0, actor="cli:ana")
    engine = create_engine(parse_url(db_url))
    try:
        with engine.connect() as conn:
            (blob,) = conn.execute(select(secrets.c.value_enc)).scalars().all()
    finally:
        engine.dispose()
    assert VALUE.encode() not in bytes(blob) and b"w0rd" not in bytes(blob)
    entries = [e for e in store.audit(None, None) if e.kind.startswith("secret_")]
    assert [(e.kind, e.detail["secret"], e.detail["actor"]) for e in entries] == [
        ("secret_set", "EBS_PASSWORD", "cli:ana"), ("secret_deleted", "EBS_PASSWORD", "cli:ana"),
        ("secret_set", "EBS_PASSWORD", "cli:ana")]
    assert all("w0rd" not in json.dumps(e.detail) for e in entries)


@pytest.mark.parametrize("bad", ["", "1abc", "has space", "a/b", "x" * 201, "${x}"])
def test_bad_names_are_refused(store: SqlStore, bad: str) -> None:
    with pytest.raises(ConfigError, match="not usable"):
        store.secrets().set(bad, "v", now=T0, actor="t")


def test_empty_value_is_refused(store: SqlStore) -> None:
    with pytest.raises(ConfigError, match="empty"):
        store.secrets().set("X", "", now=T0, actor="t")


def test_every_process_of_the_database_sees_them(make_store: Callable[..., SqlStore]) -> None:
    make_store().secrets().set("TOKEN", "abc", now=T0, actor="t")
    assert make_store().secrets().values(["TOKEN"]) == {"TOKEN": "abc"}


def test_read_secrets_without_a_whole_store(store: SqlStore, db_url: str, keyring: KeyRing) -> None:
    store.secrets().set("TOKEN", "abc", now=T0, actor="t")
    assert read_secrets(db_url, keyring, ["TOKEN", "OTHER"]) == {"TOKEN": "abc"}
    with pytest.raises(KeyMismatchError):
        read_secrets(db_url, KeyRing(b"z" * 32), ["TOKEN"])


def test_read_secrets_of_a_store_not_created_yet_creates_nothing(tmp_path: Path, keyring: KeyRing) -> None:
    path = tmp_path / "absent.db"
    assert read_secrets(f"sqlite:///{path}", keyring, ["TOKEN"]) == {}
    assert not path.exists()
