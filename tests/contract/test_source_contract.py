"""The source contract, run over every registered adapter/simulator pair (harnesses.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from ml_connector.core.models import Record
from ml_connector.errors import SourcePayloadError
from ml_connector.runtime.poller import LOOKBACK, MAIN
from ml_connector.sources.base import Source

from .conftest import FLOW, make_poller, notified
from .harness import SourceHarness, observes, overlap_of

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


async def read(source: Source, entity: str, since: datetime, until: datetime) -> list[Record]:
    return [record async for record in source.fetch(entity, since, until)]


def ordered(records: list[Record]) -> bool:
    order = [(r.changed_at, r.key) for r in records]
    return order == sorted(order)


async def test_check_reports_what_it_reached(harness: SourceHarness) -> None:
    result = await harness.build().check()
    assert result.system
    assert dict(result.details) | dict(harness.expected_check) == dict(result.details)
    assert "warning" not in result.details


async def test_paging_returns_each_record_once_in_order(harness: SourceHarness) -> None:
    made = harness.change(harness.page_size * 2 + 1)
    now = harness.clock()
    records = await read(harness.build(), harness.entity, now - timedelta(days=30), now + SECOND)
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)) and set(made) <= set(keys)
    assert len(records) > harness.page_size * 2
    assert ordered(records)
    assert all(r.entity == harness.entity and r.changed_at.utcoffset() == timedelta(0) for r in records)
    assert [r.key for r in records if r.key in made] == sorted(made)  # ties broken by key


async def test_window_is_half_open(harness: SourceHarness) -> None:
    if observes(harness):
        pytest.skip(f"{harness.name}: changed_at is when a poll saw the row, so separate changes "
                    "cannot be told apart by time (see test_every_record_lies_inside_its_window)")
    first = harness.change(1)
    harness.clock.advance(MINUTE)
    second = harness.change(1)
    harness.clock.advance(MINUTE)
    third = harness.change(1)
    source = harness.build()
    now = harness.clock()
    window = await read(source, harness.entity, now - timedelta(hours=1), now + SECOND)
    every = {r.key: r.changed_at for r in window}
    t1, t2, t3 = every[first[0]], every[second[0]], every[third[0]]
    assert t1 < t2 < t3
    assert [r.key for r in await read(source, harness.entity, t2, t3)] == second
    both = [r.key for r in await read(source, harness.entity, t1, t2 + SECOND)]
    assert both == first + second
    assert await read(source, harness.entity, t3 + SECOND, now + MINUTE) == []


async def test_every_record_lies_inside_its_window(harness: SourceHarness) -> None:
    """Whatever changed_at means for an ERP, a record never falls outside [since, until)."""
    made = harness.change(2)
    harness.clock.advance(MINUTE)
    source = harness.build()
    now = harness.clock()
    windows = [(now - timedelta(hours=1), now + SECOND), (now - timedelta(hours=1), now - SECOND),
               (now - SECOND, now + SECOND), (now - 2 * MINUTE, now - 2 * MINUTE + SECOND)]
    seen: set[str] = set()
    for since, until in windows:
        records = await read(source, harness.entity, since, until)
        assert all(since <= r.changed_at < until for r in records), (since, until)
        assert ordered(records)
        seen.update(r.key for r in records)
    assert set(made) <= seen
    assert await read(source, harness.entity, now, now) == []
    assert await read(source, harness.entity, now + SECOND, now) == []


async def test_consecutive_polls_read_from_watermark_minus_overlap(harness: SourceHarness,
                                                                  make_store: Any) -> None:
    store = make_store()
    poller = make_poller(harness, harness.build(), store)
    await poller.poll()
    made: list[str] = []
    for _ in range(3):
        harness.clock.advance(MINUTE)
        made += harness.change(2)
        harness.clock.advance(MINUTE)
        saved = store.get_watermark(FLOW)
        report = await poller.poll()
        assert saved is not None and report.since == saved - overlap_of(harness)
        assert store.get_watermark(FLOW) == report.until
    assert notified(store, made) == dict.fromkeys(made, 1)


async def test_session_expiry_while_paging_logs_in_once_more(harness: SourceHarness) -> None:
    source = harness.build()
    await source.check()
    if not harness.expire_sessions():
        pytest.skip(f"{harness.name}: this ERP connection has no sessions")
    made = harness.change(harness.page_size * 2 + 1)
    now = harness.clock()
    before = harness.logins()
    got: list[Record] = []
    async for record in source.fetch(harness.entity, now - SECOND, now + SECOND):
        got.append(record)
        if len(got) == 1:
            assert harness.expire_sessions()
    assert [r.key for r in got] == sorted(made)
    assert harness.logins() - before == 2  # once for the first expiry, once in the middle of paging


async def test_late_commit_within_the_overlap_is_caught_once(harness: SourceHarness, make_store: Any) -> None:
    store = make_store()
    poller = make_poller(harness, harness.build(), store)
    await poller.poll()
    harness.clock.advance(timedelta(minutes=30))
    await poller.poll()
    harness.clock.advance(MINUTE)
    late = harness.late(timedelta(minutes=3))  # changed before the saved watermark
    harness.clock.advance(MINUTE)
    await poller.poll()
    assert notified(store, [late]) == {late: 1}
    harness.clock.advance(MINUTE)
    await poller.poll()
    await poller.poll(LOOKBACK)
    assert notified(store, [late]) == {late: 1}


async def test_late_commit_older_than_the_overlap_is_caught_by_lookback(harness: SourceHarness,
                                                                        make_store: Any) -> None:
    store = make_store()
    poller = make_poller(harness, harness.build(), store)
    await poller.poll()
    harness.clock.advance(timedelta(minutes=30))
    await poller.poll()
    harness.clock.advance(MINUTE)
    late = harness.late(overlap_of(harness) * 2)
    harness.clock.advance(MINUTE)
    await poller.poll(MAIN)
    assert notified(store, [late]) == {late: 0}  # the regular overlap cannot see it
    await poller.poll(LOOKBACK)
    assert notified(store, [late]) == {late: 1}
    harness.clock.advance(MINUTE)
    await poller.poll(LOOKBACK)
    await poller.poll(MAIN)
    assert notified(store, [late]) == {late: 1}


async def test_malformed_payload_inserts_nothing_and_keeps_the_watermark(harness: SourceHarness,
                                                                         make_store: Any) -> None:
    store = make_store()
    poller = make_poller(harness, harness.build(), store)
    await poller.poll()
    harness.clock.advance(MINUTE)
    made = harness.change(2)
    harness.clock.advance(MINUTE)
    saved = store.get_watermark(FLOW)
    harness.corrupt_next()
    with pytest.raises(SourcePayloadError, match="(?i)json|payload|answer"):
        await poller.poll()
    assert store.get_watermark(FLOW) == saved
    assert notified(store, made) == dict.fromkeys(made, 0)
    await poller.poll()
    assert notified(store, made) == dict.fromkeys(made, 1)


async def test_restart_inserts_no_duplicates(harness: SourceHarness, make_store: Any) -> None:
    first = make_poller(harness, harness.build(), make_store())
    await first.poll()
    harness.clock.advance(MINUTE)
    made = harness.change(harness.page_size + 1)
    harness.clock.advance(MINUTE)
    assert (await first.poll()).inserted == len(made)
    harness.clock.advance(MINUTE)
    store = make_store()
    second = make_poller(harness, harness.build(), store)  # a new process on the same database
    report = await second.poll()
    assert report.since is not None and report.since < harness.clock() - 2 * MINUTE  # re-read them
    assert report.read >= len(made) and report.inserted == 0
    assert (await second.poll(LOOKBACK)).inserted == 0
    assert notified(store, made) == dict.fromkeys(made, 1)
