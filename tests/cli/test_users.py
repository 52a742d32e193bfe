"""`users add` (password asked twice, kept as an argon2 hash) and `tokens add` (printed once, kept hashed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ml_connector.config import load_config
from ml_connector.store.crypto import load_keyring
from ml_connector.store.sql import SqlStore
from ml_connector.store.users import Role, UserStore, engine_of

from .conftest import Invoke, write_config


def user_store(path: Path) -> tuple[SqlStore, UserStore]:
    config = load_config(path, {})
    store = SqlStore(config.store.url, load_keyring(config.store.key_file, {}))
    return store, UserStore(engine_of(store))


def test_users_add_asks_the_password_twice_and_keeps_only_its_argon2_hash(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path)
    result = invoke(["-c", str(path), "users", "add", "ana", "--role", "operator"],
                    input="s3cret-enough\ns3cret-enough\n")
    assert result.exit_code == 0, result.output
    assert "user ana: operator" in result.output
    store, users = user_store(path)
    try:
        who = users.authenticate("ana", "s3cret-enough")
        assert who is not None and who.role is Role.OPERATOR
        assert users.authenticate("ana", "wrong-password") is None
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "ml-connector.db") as db:
        [(stored,)] = db.execute("SELECT password_hash FROM users WHERE name = 'ana'").fetchall()
    assert stored.startswith("$argon2id$") and "s3cret-enough" not in stored


def test_users_add_refuses_a_short_password_and_a_mismatch(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path)
    short = invoke(["-c", str(path), "users", "add", "ana"], input="short\nshort\n")
    assert short.exit_code == 2 and "at least 8 characters" in short.output + short.stderr
    mismatch = invoke(["-c", str(path), "users", "add", "ana"], input="first-one-x\nsecond-one\n")
    assert mismatch.exit_code != 0


def test_tokens_add_prints_the_token_once_and_stores_its_hash(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path)
    result = invoke(["-c", str(path), "tokens", "add", "ci", "--role", "viewer"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("mlc_") and len(token) > 40
    assert "not shown again" in result.stderr
    store, users = user_store(path)
    try:
        who = users.token_principal(token)
        assert who is not None and who.name == "ci" and who.role is Role.VIEWER
        assert users.token_principal(token + "x") is None
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "ml-connector.db") as db:
        [(stored,)] = db.execute("SELECT token_hash FROM api_tokens").fetchall()
    assert token not in stored and len(stored) == 64
    again = invoke(["-c", str(path), "tokens", "add", "ci"])
    assert again.exit_code == 2 and "exists already" in again.output + again.stderr
