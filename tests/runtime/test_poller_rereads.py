"""runtime.poller: record versions read again (window overlap, lookback) are not worked out again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.templates import compile_template
from ml_connector.runtime import poller as poller_module
from ml_connector.runtime.poller import LOOKBACK, FlowRuntime, Poller
from ml_connector.store.sql import SqlStore
from tests.runtime.test_poller import FLOW, T0, ListSource, SpyStore, notified, poller, started_at
from tests.runtime.test_poller import store as store  # noqa: PLC0414 - the fixture, re-exported for pytest

TRIGGER = {"field": "status", "eq": "APPROVED"}


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record keys whose recipients the poller resolved (the expensive part of an event)."""
    calls: list[str] = []
    original = poller_module.RecipientResolver.resolve

    async def counting(self: Any, recipients: Any, record: Any) -> Any:
        calls.append(record.key)
        return await original(self, recipients, record)

    monkeypatch.setattr(poller_module.RecipientResolver, "resolve", counting)
    return calls


#: Rows changed in the last minute before the pollers' clock (T0 + 1 h): inside the overlap.
RECENT = 3600 - 50


def with_lookback(source: ListSource, store: SqlStore) -> Poller:
    """`poller(...)`'s flow, with a daily lookback poll (overlap 1 min, clock at T0 + 1 h)."""
    spec = FlowSpec.model_validate({
        "source": "erp", "entity": "po", "trigger": TRIGGER, "first_sighting": "fire",
        "schedule": {"every": "1m", "overlap": "1m", "clock_skew": "0s", "baseline": "1d", "max_window": "2d",
                     "lookback": {"every": "1h", "window": "1d"}},
        "recipients": [{"static": ["+14155552671"]}], "sender": "demo.ops", "template": "PO {{ id }}",
    })
    flow = FlowRuntime(FLOW, spec, source, compile_template(FLOW, "PO {{ id }}"), "demo", "+15005550006", "US")
    return Poller(flow, SpyStore(store), lambda: T0 + timedelta(hours=1))  # type: ignore[arg-type]


def approved(source: ListSource, *keys: str) -> None:
    for i, key in enumerate(keys):
        source.add(key, RECENT + i, status="APPROVED")


async def test_a_second_poll_over_the_same_versions_skips_them(store: SqlStore, resolved: list[str]) -> None:
    source = ListSource()
    approved(source, "1", "2", "3", "4")
    await started_at(store, T0)
    flow_poller = poller(source, SpyStore(store), TRIGGER)

    first = await flow_poller.poll()
    again = await flow_poller.poll()

    assert (first.fired, first.known, first.inserted) == (4, 0, 4)
    assert (again.read, again.fired, again.known, again.inserted) == (4, 4, 4, 0)
    assert resolved == ["1", "2", "3", "4"]  # each event's recipients resolved once
    assert notified(store) == ["1", "2", "3", "4"]


async def test_a_new_version_of_a_known_record_is_an_event_again(store: SqlStore, resolved: list[str]) -> None:
    source = ListSource()
    approved(source, "1", "2")
    await started_at(store, T0)
    flow_poller = poller(source, SpyStore(store), TRIGGER)
    await flow_poller.poll()

    source.add("1", RECENT + 10, status="APPROVED", amount=5)  # changed again: another version, another event
    again = await flow_poller.poll()

    assert (again.fired, again.known, again.inserted) == (3, 2, 1)
    assert resolved == ["1", "2", "1"]


async def test_a_restarted_poller_works_again_and_the_store_deduplicates(
    store: SqlStore, resolved: list[str]
) -> None:
    source = ListSource()
    approved(source, "1", "2", "3")
    await started_at(store, T0)
    await poller(source, SpyStore(store), TRIGGER).poll()

    restarted = await poller(source, SpyStore(store), TRIGGER).poll()  # a new process: nothing remembered

    assert (restarted.fired, restarted.known, restarted.inserted) == (3, 0, 0)
    assert resolved == ["1", "2", "3"] * 2
    assert notified(store) == ["1", "2", "3"]


async def test_events_of_a_poll_that_failed_are_not_taken_as_stored(store: SqlStore, resolved: list[str]) -> None:
    source = ListSource()
    approved(source, "1", "2", "3", "4", "5", "6")
    await started_at(store, T0)
    failing = SpyStore(store, fail_commit=2)  # the second batch's commit fails
    flow_poller: Poller = poller(source, failing, TRIGGER, batch_size=3)

    with pytest.raises(RuntimeError, match="disk full"):
        await flow_poller.poll()
    assert notified(store) == ["1", "2", "3"]

    failing._fail_commit = None  # the disk has room again
    again = await flow_poller.poll()  # same poller: must not skip what was never committed

    assert again.known == 0
    assert notified(store) == ["1", "2", "3", "4", "5", "6"]


async def test_a_lookback_poll_skips_known_events_without_replacing_them(
    store: SqlStore, resolved: list[str]
) -> None:
    source = ListSource()
    approved(source, "1", "2")
    await started_at(store, T0)
    flow_poller = with_lookback(source, store)
    await flow_poller.poll()

    lookback = await flow_poller.poll(LOOKBACK)
    main = await flow_poller.poll()

    assert (lookback.known, lookback.inserted) == (2, 0)
    assert (main.known, main.inserted) == (2, 0)
    assert resolved == ["1", "2"]


async def test_only_events_the_next_main_poll_reads_again_are_remembered(
    store: SqlStore, resolved: list[str]
) -> None:
    source = ListSource()
    source.add("old", 60, status="APPROVED")  # long before the watermark less the overlap (1 min)
    approved(source, "recent")
    await started_at(store, T0)
    flow_poller = with_lookback(source, store)
    await flow_poller.poll()

    lookback = await flow_poller.poll(LOOKBACK)  # reads both again: only the recent one is known

    assert (lookback.fired, lookback.known, lookback.inserted) == (2, 1, 0)
    assert resolved == ["old", "recent", "old"]
