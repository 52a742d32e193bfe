"""Encryption at rest: keys, blobs, key files."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ml_connector.errors import ConfigError
from ml_connector.store import crypto
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


# -- several keys, rotation support -------------------------------------------------------------

def legacy_blob(master: bytes, text: str) -> bytes:
    """A version 1 blob as earlier versions wrote it (no key id)."""
    nonce = os.urandom(12)
    return b"\x01" + nonce + AESGCM(crypto._derive(master, b"aes-256-gcm v1")).encrypt(nonce, text.encode(), None)


def test_a_ring_reads_every_key_and_seals_with_the_first() -> None:
    old, new = KeyRing(b"o" * 32), KeyRing(b"n" * 32)
    ring = KeyRing(b"n" * 32, [b"o" * 32])
    assert ring.decrypt(old.encrypt("a")) == "a" and ring.decrypt(new.encrypt("b")) == "b"
    sealed = ring.encrypt("c")
    assert new.decrypt(sealed) == "c" and ring.sealed_by_current(sealed)
    with pytest.raises(KeyMismatchError, match=f"sealed by key {new.fingerprint}"):
        old.decrypt(sealed)
    assert ring.fingerprints == (new.fingerprint, old.fingerprint)
    assert not ring.sealed_by_current(old.encrypt("a"))


def test_version_1_blobs_are_read_with_any_key_of_the_ring() -> None:
    blob = legacy_blob(b"o" * 32, "+13125550142")
    assert KeyRing(b"n" * 32, [b"o" * 32]).decrypt(blob) == "+13125550142"
    assert not KeyRing(b"o" * 32).sealed_by_current(blob)
    with pytest.raises(KeyMismatchError, match="master key is not the one"):
        KeyRing(b"n" * 32).decrypt(blob)


def test_the_key_id_is_bound_to_the_blob() -> None:
    ring = KeyRing(b"n" * 32)
    blob = bytearray(ring.encrypt("x"))
    blob[0] = 2
    tampered = bytes(blob[:1]) + KeyRing(b"o" * 32).current_prefix[1:] + bytes(blob[9:])
    with pytest.raises(KeyMismatchError):
        KeyRing(b"n" * 32, [b"o" * 32]).decrypt(tampered)


def test_the_lookup_key_survives_a_change_of_master_key() -> None:
    old = KeyRing(b"o" * 32)
    carried = KeyRing(b"n" * 32, [b"o" * 32]).matching(old.hash_lookup("label"), "label")
    assert carried is not None and carried.hash_lookup("+1312") == old.hash_lookup("+1312")
    sealed = carried.sealed_lookup_key()
    assert KeyRing(b"n" * 32).adopting(sealed).hash_lookup("+1312") == old.hash_lookup("+1312")
    with pytest.raises(KeyMismatchError):
        KeyRing(b"o" * 32).adopting(sealed)
    assert KeyRing(b"n" * 32).matching(old.hash_lookup("label"), "label") is None


def test_several_keys_from_env_and_key_file(tmp_path: Path) -> None:
    first, second = new_key_text(), new_key_text()
    from_env = load_keyring(None, {"MLC_MASTER_KEY": f"{first}, {second}"})
    assert from_env.fingerprints == (KeyRing(base64.urlsafe_b64decode(first)).fingerprint,
                                     KeyRing(base64.urlsafe_b64decode(second)).fingerprint)
    path = tmp_path / "k.key"
    path.write_text(f"# current first\n{first}\n\n{second}\n")
    path.chmod(0o600)
    assert load_keyring(path, {}).fingerprints == from_env.fingerprints
    with pytest.raises(ConfigError, match=r"MLC_MASTER_KEY \(key 2\)") as caught:
        load_keyring(None, {"MLC_MASTER_KEY": f"{first},short"})
    assert "short" not in str(caught.value)


def test_add_and_prune_keys_in_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    before = load_keyring(path, {})
    added = crypto.add_key_to_file(path)
    after = load_keyring(path, {})
    assert after.fingerprint == added and after.fingerprints[1:] == before.fingerprints
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert crypto.prune_key_file(path) == 1
    assert load_keyring(path, {}).fingerprints == (added,)
    assert crypto.prune_key_file(path) == 0


def test_repr_shows_fingerprints_only() -> None:
    ring = KeyRing(b"k" * 32, [b"j" * 32])
    assert repr(ring) == f"KeyRing(current={ring.fingerprint}, keys=2)"
