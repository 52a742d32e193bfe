"""Which master keys can open this database, and the look-up key that outlives rotations.

The store keeps two entries in `store_meta`:
- `key_check`: the look-up hash of a fixed label. It proves at start that the process hashes
  phones and idempotency keys as the rows were hashed (a wrong key would silently find nothing
  and send duplicates).
- `lookup_key`: the look-up key sealed by the current master key, written by the first
  `keys rotate`. Hashes stay comparable after rotating, and only a ring holding the key that
  sealed it can open the database. Before any rotation it is absent and the look-up key is
  derived from whichever configured master key matches `key_check`.
"""

from __future__ import annotations

import base64
import hmac

from sqlalchemy import Connection, select

from ml_connector.store.crypto import KeyMismatchError, KeyRing
from ml_connector.store.tables import store_meta

KEY_CHECK = "key_check"
LOOKUP_KEY = "lookup_key"
LABEL = "ml-connector master key check v1"
_WRONG_KEY = (
    "the master key is not the one this database was created with: stored phone numbers and "
    "bodies cannot be decrypted; use the original key file or MLC_MASTER_KEY"
)


def _read(conn: Connection, name: str) -> str | None:
    value: str | None = conn.execute(select(store_meta.c.value).where(store_meta.c.name == name)).scalar_one_or_none()
    return value


def _write(conn: Connection, name: str, value: str) -> None:
    conn.execute(store_meta.delete().where(store_meta.c.name == name))
    conn.execute(store_meta.insert().values(name=name, value=value))


def open_ring(conn: Connection, keys: KeyRing) -> KeyRing:
    """`keys`, hashing with this database's look-up key; KeyMismatchError when none of them fits.

    A new database records the current key's check (in the caller's write transaction)."""
    check, sealed = _read(conn, KEY_CHECK), _read(conn, LOOKUP_KEY)
    if sealed is not None:
        try:
            ring = keys.adopting(base64.b64decode(sealed))
        except KeyMismatchError:
            raise KeyMismatchError(
                f"{_WRONG_KEY} (configured keys: {', '.join(keys.fingerprints)}; after a rotation the "
                "current key must be among them)"
            ) from None
    elif check is None:
        _write(conn, KEY_CHECK, keys.hash_lookup(LABEL))
        return keys
    else:
        found = keys.matching(check, LABEL)
        if found is None:
            raise KeyMismatchError(_WRONG_KEY)
        ring = found
    if check is not None and not hmac.compare_digest(ring.hash_lookup(LABEL), check):
        raise KeyMismatchError(f"{_WRONG_KEY} (the stored look-up key does not match the key check)")
    return ring


def seal_lookup_key(conn: Connection, ring: KeyRing) -> None:
    """Keep the ring's look-up key sealed by its current master key (the first step of a rotation)."""
    _write(conn, LOOKUP_KEY, base64.b64encode(ring.sealed_lookup_key()).decode("ascii"))


def lookup_key_current(conn: Connection, ring: KeyRing) -> bool:
    """True when the kept look-up key is sealed by the ring's current key."""
    sealed = _read(conn, LOOKUP_KEY)
    return sealed is not None and ring.sealed_by_current(base64.b64decode(sealed))
