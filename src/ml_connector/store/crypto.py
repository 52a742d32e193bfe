"""Encryption at rest for personal data (phone numbers, bodies, raw callbacks).

One 32-byte master key, from MLC_MASTER_KEY or a key file only its owner can read. Two keys are
derived from it with HKDF-SHA256 so that encryption and look-up hashing never share a key:

- AES-256-GCM for values we must read back. Blob layout: version byte | 12-byte nonce | ciphertext+tag.
  The version byte lets a later key or cipher coexist with old rows.
- HMAC-SHA256 for equality look-ups (find notifications by phone) without storing the phone.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ml_connector.errors import ConfigError

KEY_ENV = "MLC_MASTER_KEY"
KEY_BYTES = 32
_VERSION = 1
_NONCE_BYTES = 12
_SALT = b"ml-connector/store"
_ENC_INFO = b"aes-256-gcm v1"
_HASH_INFO = b"hmac-sha256 lookup v1"
_HOW_TO_CREATE = (
    "create one with `ml-connector init` (writes a key file readable only by you) "
    f"or set {KEY_ENV} to the urlsafe base64 of 32 random bytes"
)


class KeyMismatchError(ConfigError):
    """Stored data was encrypted with another master key (or is corrupt): nothing can be read."""


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_SALT, info=info).derive(master)


class KeyRing:
    """The keys derived from one master key. Never printed: repr shows no key material."""

    __slots__ = ("_aead", "_hash_key")

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise ConfigError(f"the master key must be {KEY_BYTES} bytes, got {len(master_key)}")
        self._aead = AESGCM(_derive(master_key, _ENC_INFO))
        self._hash_key = _derive(master_key, _HASH_INFO)

    def __repr__(self) -> str:
        return "KeyRing(<hidden>)"

    def encrypt(self, plaintext: str) -> bytes:
        """Encrypt with a fresh random nonce: equal plaintexts give different blobs."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), None)
        return bytes([_VERSION]) + nonce + sealed

    def decrypt(self, blob: bytes) -> str:
        """Decrypt a blob from `encrypt`; a wrong key or altered blob raises KeyMismatchError."""
        if len(blob) < 1 + _NONCE_BYTES or blob[0] != _VERSION:
            version = blob[0] if blob else None
            raise KeyMismatchError(f"cannot decrypt stored value: unknown format (version byte {version})")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, None).decode("utf-8")
        except InvalidTag:
            raise KeyMismatchError(
                "cannot decrypt stored value: the master key is not the one the data was "
                "encrypted with (or the data was altered)"
            ) from None

    def hash_lookup(self, value: str) -> str:
        """Keyed hash (hex) for equality look-ups; useless without the master key."""
        return hmac.digest(self._hash_key, value.encode("utf-8"), "sha256").hex()  # one-shot: C only


def _decode_key(text: str, where: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ConfigError(f"{where}: not valid urlsafe base64") from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(f"{where}: the key must decode to {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def load_keyring(key_file: Path | None, env: Mapping[str, str]) -> KeyRing:
    """The env variable wins over the key file; the key file must not be readable by others."""
    from_env = env.get(KEY_ENV)
    if from_env:
        return KeyRing(_decode_key(from_env, KEY_ENV))
    if key_file is None:
        raise ConfigError(f"no master key: {_HOW_TO_CREATE}")
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
    text = key_file.read_text(encoding="ascii", errors="replace")
    return KeyRing(_decode_key(text, f"key file {key_file}"))


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
