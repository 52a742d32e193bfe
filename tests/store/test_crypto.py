"""Encryption at rest: keys, blobs, key files."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from ml_connector.errors import ConfigError
from ml_connector.store.crypto import KeyMismatchError, KeyRing, create_key_file, load_keyring, new_key_text


def test_round_trip_and_fresh_nonce() -> None:
    ring = KeyRing(os.urandom(32))
    first, second = ring.encrypt("+13125550142"), ring.encrypt("+13125550142")
    assert first != second
    assert first[0] == 2  # version byte (2: with the key id)
    assert ring.decrypt(first) == ring.decrypt(second) == "+13125550142"
    assert b"3125550142" not in first


def test_wrong_key_gives_a_clear_error() -> None:
    blob = KeyRing(b"a" * 32).encrypt("hello")
    with pytest.raises(KeyMismatchError, match="master key is not the one"):
        KeyRing(b"b" * 32).decrypt(blob)


def test_altered_or_unknown_blob_is_refused() -> None:
    ring = KeyRing(b"a" * 32)
    blob = bytearray(ring.encrypt("hello"))
    blob[-1] ^= 1
    with pytest.raises(KeyMismatchError):
        ring.decrypt(bytes(blob))
    with pytest.raises(KeyMismatchError, match="unknown format"):
        ring.decrypt(b"\x09" + bytes(blob[1:]))


def test_lookup_hash_is_keyed_and_stable() -> None:
    one, other = KeyRing(b"a" * 32), KeyRing(b"b" * 32)
    assert one.hash_lookup("+13125550142") == one.hash_lookup("+13125550142")
    assert one.hash_lookup("+13125550142") != other.hash_lookup("+13125550142")
    assert one.hash_lookup("+13125550142") != one.hash_lookup("+13125550143")
    assert len(one.hash_lookup("x")) == 64


def test_master_key_must_be_32_bytes() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        KeyRing(b"short")
    assert "k" * 8 not in repr(KeyRing(b"k" * 32))


def test_create_key_file_mode_0600_and_loadable(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "master.key"
    create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = load_keyring(path, {})
    assert ring.decrypt(ring.encrypt("x")) == "x"


def test_create_key_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        create_key_file(path)
    assert path.read_bytes() == before


def test_env_key_wins_over_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    env_key = new_key_text()
    from_env = load_keyring(path, {"MLC_MASTER_KEY": env_key})
    expected = KeyRing(base64.urlsafe_b64decode(env_key))
    assert from_env.hash_lookup("x") == expected.hash_lookup("x")
    assert from_env.hash_lookup("x") != load_keyring(path, {}).hash_lookup("x")


def test_missing_key_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ml-connector init"):
        load_keyring(tmp_path / "absent.key", {})
    with pytest.raises(ConfigError, match="ml-connector init"):
        load_keyring(None, {})


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        load_keyring(path, {})
    assert str(path) in str(caught.value) and "0644" in str(caught.value)


@pytest.mark.parametrize("value", ["not base64 !!", base64.urlsafe_b64encode(b"x" * 16).decode()])
def test_bad_env_key_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_keyring(None, {"MLC_MASTER_KEY": value})
    assert "MLC_MASTER_KEY" in str(caught.value)
    assert value not in str(caught.value)
