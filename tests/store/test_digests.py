"""Digests in the store: one open batch per flow + recipient + window, race-free across processes,
items after a close in the next part, closed into exactly one notification."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from ml_connector.core.models import Status
from ml_connector.store.digests import DueDigest
from ml_connector.store.port import DigestItem, NewNotification
from ml_connector.store.sql import SqlStore

from .builders import PHONE, T0, notification, poll

WINDOW_CLOSES = T0 + timedelta(hours=1)


def item(i: int, *, recipient: str = PHONE, max_items: int | None = None, window: str = "w1") -> DigestItem:
    return DigestItem(item_key=f"invoice:{i}:{recipient}", flow="po-approved", recipient=recipient, account="main",
                      sender="+13125550100", window_key=window, closes_at=WINDOW_CLOSES, max_items=max_items,
                      text=f"INV-{i}", record_key=str(i))


def add(store: SqlStore, *items: DigestItem, at: timedelta = timedelta()) -> None:
    store.commit_poll(poll(watermark=None, states=[], notifications=[], digest_items=list(items), polled_at=T0 + at))


def render(due: DueDigest) -> NewNotification:
    return notification(due.id, idempotency_key=f"digest:{due.window_key}:{due.part}:{due.recipient}",
                        recipient=due.recipient, body=f"{len(due.items)} invoices: {', '.join(due.items)}",
                        record_key=f"digest {due.window_key}#{due.part}", next_attempt_at=T0)


def test_items_wait_for_the_window_then_become_one_notification(store: SqlStore) -> None:
    add(store, item(1), item(2))
    add(store, item(3), item(1))  # item 1 read again (overlap): not added twice
    assert store.close_due_digests(T0 + timedelta(minutes=59), render) == []
    (nid,) = store.close_due_digests(WINDOW_CLOSES, render)
    view = store.get_notification(nid)
    assert view is not None and view.status is Status.PENDING
    assert view.body == "3 invoices: INV-1, INV-2, INV-3"
    assert store.close_due_digests(WINDOW_CLOSES + timedelta(hours=1), render) == []  # closed once


def test_each_recipient_gets_their_own_digest(store: SqlStore) -> None:
    add(store, item(1), item(2, recipient="+13125550199"), item(3))
    made = store.close_due_digests(WINDOW_CLOSES, render)
    texts = sorted(store.get_notification(nid).body for nid in made)  # type: ignore[union-attr]
    assert texts == ["1 invoices: INV-2", "2 invoices: INV-1, INV-3"]


def test_a_full_digest_closes_now_and_later_items_start_the_next_part(store: SqlStore) -> None:
    add(store, item(1, max_items=2), item(2, max_items=2), item(3, max_items=2))
    (full,) = store.close_due_digests(T0, render)  # full at two: due at once
    assert store.get_notification(full).body == "2 invoices: INV-1, INV-2"  # type: ignore[union-attr]
    (rest,) = store.close_due_digests(WINDOW_CLOSES, render)
    assert store.get_notification(rest).body == "1 invoices: INV-3"  # type: ignore[union-attr]


def test_items_after_a_close_go_to_the_next_part(store: SqlStore) -> None:
    add(store, item(1))
    store.close_due_digests(WINDOW_CLOSES, render)
    add(store, item(2), at=timedelta(hours=1))  # same window key, but its digest is closed
    (later,) = store.close_due_digests(WINDOW_CLOSES, render)
    assert store.get_notification(later).body == "1 invoices: INV-2"  # type: ignore[union-attr]


def test_concurrent_processes_neither_lose_nor_double_an_item(make_store: Callable[..., SqlStore]) -> None:
    stores = [make_store() for _ in range(3)]
    errors: list[BaseException] = []

    def adder(store: SqlStore, start: int) -> None:
        try:
            for i in range(start, start + 30):
                add(store, item(i, max_items=7))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def closer(store: SqlStore, made: list[int]) -> None:
        try:
            for _ in range(40):
                made += store.close_due_digests(T0, render)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    made: list[int] = []
    threads = [threading.Thread(target=adder, args=(stores[0], 0)),
               threading.Thread(target=adder, args=(stores[1], 30)),
               threading.Thread(target=closer, args=(stores[2], made))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    made += stores[2].close_due_digests(WINDOW_CLOSES, render)
    listed = [item for nid in made for item in store_body_items(stores[2], nid)]
    assert sorted(listed) == sorted(f"INV-{i}" for i in range(60))  # each exactly once


def store_body_items(store: SqlStore, nid: int) -> list[str]:
    view = store.get_notification(nid)
    assert view is not None
    return view.body.split(": ", 1)[1].split(", ")
