"""Concurrent claimers never get the same row (threads sharing a store, and separate stores)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from ml_connector.store.sql import SqlStore

from .builders import T0, notification, poll

ROWS = 60


def run_claimers(stores: list[SqlStore]) -> list[list[int]]:
    start = threading.Barrier(len(stores))
    got: list[list[int]] = [[] for _ in stores]
    errors: list[BaseException] = []

    def claimer(i: int) -> None:
        try:
            start.wait(timeout=10)
            for _ in range(ROWS):  # bounded: each round claims at least one row or stops
                batch = stores[i].claim_due(f"w{i}", T0, timedelta(minutes=5), 3)
                if not batch:
                    return
                got[i].extend(c.id for c in batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    return got


@pytest.mark.parametrize("separate", [False, True], ids=["shared-store", "separate-stores"])
def test_two_claimers_never_share_a_row(make_store: Callable[..., SqlStore], separate: bool) -> None:
    first = make_store()
    ids = first.commit_poll(poll(*(notification(i) for i in range(ROWS))))
    stores = [first, make_store() if separate else first]
    got = run_claimers(stores)
    claimed = got[0] + got[1]
    assert len(claimed) == len(set(claimed)) == ROWS
    assert set(claimed) == set(ids)
