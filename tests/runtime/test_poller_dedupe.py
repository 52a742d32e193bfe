"""The poller with `dedupe_on` and a routing table: business duplicates notify once; routed
recipients are resolved per record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.templates import compile_template
from ml_connector.runtime.poller import FlowRuntime, Poller
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NotificationFilter, PollCommit
from ml_connector.store.sql import SqlStore

from .test_poller import FLOW, T0, ListSource

AP, MANAGER = "+14155550111", "+14155550199"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
    opened.commit_poll(PollCommit(FLOW, "started", T0, (), (), T0))
    yield opened
    opened.close()


def poller(source: ListSource, store: SqlStore, **flow: Any) -> Poller:
    raw = {"source": "erp", "entity": "po", "trigger": {"field": "Rbstat", "eq": "5"},
           "schedule": {"every": "1m", "overlap": "1m", "clock_skew": "0s", "baseline": "1d", "max_window": "2d"},
           "recipients": [{"static": [AP]}], "sender": "demo.ops", "template": "Invoice {{ Xblnr }}", **flow}
    spec = FlowSpec.model_validate(raw)
    runtime = FlowRuntime(FLOW, spec, source, compile_template(FLOW, spec.template), "demo", "+15005550006", "US")
    return Poller(runtime, store, lambda: T0 + timedelta(hours=1), batch_size=2)


def sent(store: SqlStore) -> list[tuple[str, str]]:
    views = store.list_notifications(NotificationFilter(flow=FLOW, limit=100))
    return sorted((v.record_key, v.recipient) for v in views)


def invoice(source: ListSource, belnr: str, seconds: float, lifnr: str = "0000100000", xblnr: str = "INV-77",
            **data: Any) -> None:
    source.add(belnr, seconds, Lifnr=lifnr, Xblnr=xblnr, Bukrs="1000", Rbstat="5", **data)


DEDUPE = ["Lifnr", "Xblnr", "Bukrs"]


async def test_an_invoice_entered_twice_notifies_once(store: SqlStore) -> None:
    source = ListSource()
    invoice(source, "5105600001", 1)
    invoice(source, "5105600002", 600)   # keyed in again ten minutes later, same reference
    invoice(source, "5105600003", 601)   # reversed and re-entered: a third document
    report = await poller(source, store, dedupe_on=DEDUPE).poll()
    assert report.inserted == 1
    assert sent(store) == [("5105600001", AP)]
    assert (await poller(source, store, dedupe_on=DEDUPE).poll()).inserted == 0


async def test_without_dedupe_each_document_notifies(store: SqlStore) -> None:
    source = ListSource()
    invoice(source, "5105600001", 1)
    invoice(source, "5105600002", 600)
    assert (await poller(source, store).poll()).inserted == 2


async def test_two_suppliers_with_the_same_reference_notify_twice(store: SqlStore) -> None:
    source = ListSource()
    invoice(source, "5105600001", 1, lifnr="0000100000")
    invoice(source, "5105600002", 2, lifnr="0000200000")
    assert (await poller(source, store, dedupe_on=DEDUPE).poll()).inserted == 2


async def test_invoices_without_a_reference_are_not_merged(store: SqlStore) -> None:
    source = ListSource()
    invoice(source, "5105600001", 1, xblnr="")
    invoice(source, "5105600002", 2, xblnr="")
    assert (await poller(source, store, dedupe_on=DEDUPE).poll()).inserted == 2


async def test_routing_adds_recipients_by_amount(store: SqlStore) -> None:
    source = ListSource()
    invoice(source, "5105600001", 1, xblnr="A", Rmwwr="75000.00")
    invoice(source, "5105600002", 2, xblnr="B", Rmwwr="120.00")
    routing = {"rules": [{"when": {"field": "Rmwwr", "gte": 50000}, "recipients": [{"static": [MANAGER]}]}]}
    await poller(source, store, routing=routing).poll()
    assert sent(store) == [("5105600001", AP), ("5105600001", MANAGER), ("5105600002", AP)]
