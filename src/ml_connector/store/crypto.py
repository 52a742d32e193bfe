"""Encryption at rest for personal data and secrets (phone numbers, bodies, raw callbacks, ERP passwords).

A master key is 32 bytes, from MLC_MASTER_KEY or a key file only its owner can read. Two keys are
derived from it with HKDF-SHA256 so that encryption and look-up hashing never share a key:

- AES-256-GCM for values we must read back. Blob layout (version 2): 0x02 | 8-byte key id |
  12-byte nonce | ciphertext+tag, the version byte and key id bound as associated data. The key
  id (derived from the key, shown as its fingerprint) says which master key sealed the blob, so
  a ring of several keys reads old and new rows alike while `keys rotate` moves rows to the
  newest. Version 1 blobs (no key id, written before rotation existed) are tried with each key.
- HMAC-SHA256 for equality look-ups (notifications by phone, idempotency keys) without storing
  the value. Hashes must stay comparable across a rotation, so the look-up key is not re-derived
  from the new master key: the store keeps it sealed by the current master key (see
  store.sql._check_key and store.rotation).

Several keys: MLC_MASTER_KEY may hold several keys separated by commas, and a key file several
lines; the first is the current key (it seals everything written), the others are only read.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ml_connector.errors import ConfigError

KEY_ENV = "MLC_MASTER_KEY"
KEY_BYTES = 32
KEY_ID_BYTES = 8
_V1, _V2 = 1, 2
_NONCE_BYTES = 12
_SALT = b"ml-connector/store"
_ENC_INFO = b"aes-256-gcm v1"
_HASH_INFO = b"hmac-sha256 lookup v1"
_ID_INFO = b"key id v1"
_HOW_TO_CREATE = (
    "create one with `ml-connector init` (writes a key file readable only by you) "
    f"or set {KEY_ENV} to the urlsafe base64 of 32 random bytes"
)


class KeyMismatchError(ConfigError):
    """Stored data was encrypted with another master key (or is corrupt): nothing can be read."""


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_SALT, info=info).derive(master)


@dataclass(frozen=True, slots=True, repr=False)
class _Key:
    id: bytes
    aead: AESGCM
    hash_key: bytes  # the look-up key this master key derives (used until the store says otherwise)


def _key(master: bytes) -> _Key:
    if len(master) != KEY_BYTES:
        raise ConfigError(f"the master key must be {KEY_BYTES} bytes, got {len(master)}")
    return _Key(_derive(master, _ID_INFO)[:KEY_ID_BYTES], AESGCM(_derive(master, _ENC_INFO)),
                _derive(master, _HASH_INFO))


def fingerprint(key_id: bytes) -> str:
    """How a key is named to people: hex of its id, which reveals nothing of the key."""
    return key_id.hex()


class KeyRing:
    """The current master key and older ones still read. Never printed: repr shows fingerprints only."""

    __slots__ = ("_by_id", "_hash_key", "_keys", "_primary")

    def __init__(self, master_key: bytes, previous: Sequence[bytes] = ()) -> None:
        keys: list[_Key] = []
        for master in (master_key, *previous):
            key = _key(master)
            if all(key.id != k.id for k in keys):
                keys.append(key)
        self._keys = tuple(keys)
        self._primary = keys[0]
        self._by_id = {k.id: k for k in keys}
        self._hash_key = self._primary.hash_key

    def __repr__(self) -> str:
        return f"KeyRing(current={self.fingerprint}, keys={len(self._keys)})"

    @property
    def fingerprint(self) -> str:
        """The current key's fingerprint (rows sealed from now on carry it)."""
        return fingerprint(self._primary.id)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(fingerprint(k.id) for k in self._keys)

    @property
    def current_prefix(self) -> bytes:
        """The first bytes of every blob the current key seals (store.rotation finds other rows by it)."""
        return bytes([_V2]) + self._primary.id

    def encrypt(self, plaintext: str) -> bytes:
        """Encrypt with the current key and a fresh random nonce: equal plaintexts give different blobs."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        head = self.current_prefix
        return head + nonce + self._primary.aead.encrypt(nonce, plaintext.encode("utf-8"), head)

    def decrypt(self, blob: bytes) -> str:
        """Decrypt a blob sealed by any key of the ring; else KeyMismatchError (wrong key, altered blob)."""
        if blob and blob[0] == _V2 and len(blob) > 1 + KEY_ID_BYTES + _NONCE_BYTES:
            head, rest = blob[: 1 + KEY_ID_BYTES], blob[1 + KEY_ID_BYTES :]
            key = self._by_id.get(head[1:])
            if key is None:
                raise KeyMismatchError(
                    "cannot decrypt stored value: the master key is not the one the data was encrypted "
                    f"with (sealed by key {fingerprint(head[1:])}; configured: {', '.join(self.fingerprints)})"
                )
            try:
                return key.aead.decrypt(rest[:_NONCE_BYTES], rest[_NONCE_BYTES:], head).decode("utf-8")
            except InvalidTag:
                raise KeyMismatchError("cannot decrypt stored value: the data was altered") from None
        if len(blob) < 1 + _NONCE_BYTES or blob[0] != _V1:
            version = blob[0] if blob else None
            raise KeyMismatchError(f"cannot decrypt stored value: unknown format (version byte {version})")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        for key in self._keys:
            try:
                return key.aead.decrypt(nonce, sealed, None).decode("utf-8")
            except InvalidTag:
                continue
        raise KeyMismatchError(
            "cannot decrypt stored value: the master key is not the one the data was "
            "encrypted with (or the data was altered)"
        )

    def sealed_by_current(self, blob: bytes) -> bool:
        """True when `blob` needs no re-encryption to the current key."""
        return blob[: 1 + KEY_ID_BYTES] == self.current_prefix

    def hash_lookup(self, value: str) -> str:
        """Keyed hash (hex) for equality look-ups; useless without the look-up key."""
        return hmac.digest(self._hash_key, value.encode("utf-8"), "sha256").hex()  # one-shot: C only

    # -- the look-up key, kept by the store across rotations ---------------------------------------

    def sealed_lookup_key(self) -> bytes:
        """The look-up key sealed by the current master key, for the store to keep."""
        return self.encrypt(base64.urlsafe_b64encode(self._hash_key).decode("ascii"))

    def adopting(self, sealed: bytes) -> KeyRing:
        """This ring hashing with the look-up key the store keeps (sealed by a key of the ring)."""
        raw = base64.urlsafe_b64decode(self.decrypt(sealed).encode("ascii"))
        return self._with_hash_key(raw)

    def matching(self, check: str, label: str) -> KeyRing | None:
        """The ring whose look-up key (derived from one of its master keys) gives `check` for
        `label`, or None: how a database from before sealed look-up keys names its key."""
        for key in self._keys:
            found = hmac.digest(key.hash_key, label.encode("utf-8"), "sha256").hex()
            if hmac.compare_digest(found, check):
                return self._with_hash_key(key.hash_key)
        return None

    def _with_hash_key(self, hash_key: bytes) -> KeyRing:
        ring = object.__new__(KeyRing)
        ring._keys, ring._primary, ring._by_id = self._keys, self._primary, self._by_id
        ring._hash_key = hash_key
        return ring


def _decode_key(text: str, where: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ConfigError(f"{where}: not valid urlsafe base64") from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(f"{where}: the key must decode to {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def _decode_keys(text: str, where: str) -> list[bytes]:
    """Keys separated by commas or lines ('#' starts a comment line); the first is current."""
    parts = [part for line in text.splitlines() if not line.strip().startswith("#")
             for part in line.split(",") if part.strip()]
    if not parts:
        raise ConfigError(f"{where}: no key in it; {_HOW_TO_CREATE}")
    return [_decode_key(part, where if len(parts) == 1 else f"{where} (key {i})")
            for i, part in enumerate(parts, start=1)]


def load_keyring(key_file: Path | None, env: Mapping[str, str]) -> KeyRing:
    """The env variable wins over the key file; the key file must not be readable by others."""
    from_env = env.get(KEY_ENV)
    if from_env:
        keys = _decode_keys(from_env, KEY_ENV)
        return KeyRing(keys[0], keys[1:])
    if key_file is None:
        raise ConfigError(f"no master key: {_HOW_TO_CREATE}")
    text = read_key_file(key_file)
    keys = _decode_keys(text, f"key file {key_file}")
    return KeyRing(keys[0], keys[1:])


def read_key_file(key_file: Path) -> str:
    """The key file's text, after checking that only its owner can read it."""
    try:
        info = key_file.stat()
    except FileNotFoundError:
        raise ConfigError(f"no master key: key file {key_file} does not exist; {_HOW_TO_CREATE}") from None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"key file {key_file} has mode {mode:04o}: it must be readable by its owner only; "
            f"run `chmod 600 {key_file}`"
        )
    return key_file.read_text(encoding="ascii", errors="replace")


def new_key_text() -> str:
    """A fresh random master key in the form load_keyring reads (urlsafe base64, 44 chars)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def create_key_file(path: Path) -> None:
    """Write a new random key with mode 0600; refuse to replace an existing key (data would be lost)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"key file {path} already exists; refusing to overwrite it "
            "(data encrypted with it would become unreadable)"
        ) from None
    try:
        os.fchmod(fd, 0o600)  # the umask may only remove bits, but be explicit
        os.write(fd, (new_key_text() + "\n").encode("ascii"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _replace_key_file(path: Path, text: str) -> None:
    """Write `text` to a new 0600 file beside `path`, then rename it over `path` (never half-written)."""
    temporary = path.with_name(f".{path.name}.new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(temporary, path)


def add_key_to_file(path: Path) -> str:
    """Put a new random key first in the key file (it becomes the current key), keeping the older
    keys after it for reading; returns the new key's fingerprint."""
    old = read_key_file(path)
    _decode_keys(old, f"key file {path}")  # refuse to build on a file that does not load
    key = new_key_text()
    _replace_key_file(path, key + "\n" + old.lstrip("\n"))
    return fingerprint(_key(base64.urlsafe_b64decode(key)).id)


def prune_key_file(path: Path) -> int:
    """Keep only the current (first) key in the key file; returns how many older keys were removed."""
    keys = [line.strip() for line in read_key_file(path).splitlines()
            if line.strip() and not line.strip().startswith("#")]
    parts = [part.strip() for line in keys for part in line.split(",") if part.strip()]
    if len(parts) <= 1:
        return 0
    _replace_key_file(path, parts[0] + "\n")
    return len(parts) - 1
