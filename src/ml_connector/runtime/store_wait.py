"""Waiting out a store outage: every role pauses here until the database answers again.

The outage itself is logged once by the store (store.outage); waiting is silent. Each try is
one cheap round trip (`Store.ping`), spaced from `first` up to `most` seconds, so a restart of a
few seconds is noticed within a second or so of the database coming back.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ml_connector.errors import StoreUnavailable

FIRST_WAIT = 0.2
MOST_WAIT = 5.0


class _Pingable(Protocol):
    def ping(self) -> str: ...


async def wait_for_store(store: _Pingable, stop: asyncio.Event, *, first: float = FIRST_WAIT,
                         most: float = MOST_WAIT) -> bool:
    """Until the store answers (True) or `stop` is set (False)."""
    delay = first
    while not stop.is_set():
        try:
            await asyncio.to_thread(store.ping)
            return True
        except StoreUnavailable:
            pass
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        delay = min(most, delay * 2)
    return False


__all__ = ["FIRST_WAIT", "MOST_WAIT", "wait_for_store"]
