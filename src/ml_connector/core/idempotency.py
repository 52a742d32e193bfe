"""Deterministic notification keys: the unique constraint that stops a notification being doubled.

Re-polls, overlapping windows and lookback polls read the same record version again; the store's
unique index on this key turns those re-reads into no-ops. Each part is length-prefixed before
hashing, so no two different tuples encode to the same bytes (("a", "bc") vs ("ab", "c")).
"""

from __future__ import annotations

import hashlib

#: Bumped only if the encoding changes (which would also change every key).
KEY_VERSION = b"mlc-notification-v1"


def _length_prefixed(parts: tuple[str, ...]) -> bytes:
    encoded = [part.encode("utf-8") for part in parts]
    return KEY_VERSION + b"".join([len(data).to_bytes(8, "big") + data for data in encoded])


def notification_key(
    flow: str, entity: str, record_key: str, event_version: str, recipient: str, channel: str
) -> str:
    """sha256 hex of the length-prefixed parts. `recipient` should be normalised (E.164) first."""
    parts = (flow, entity, record_key, event_version, recipient, channel)
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(f"notification_key parts must be str, got {type(part).__name__}")
    return hashlib.sha256(_length_prefixed(parts)).hexdigest()
