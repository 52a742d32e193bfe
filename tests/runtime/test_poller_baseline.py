"""runtime.poller + core.baseline: the baseline is what the baseline poll saw; late commits fire once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ml_connector.core.baseline import Baseline
from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.models import Record
from ml_connector.core.templates import compile_template
from ml_connector.runtime.poller import LOOKBACK, FlowRuntime, Poller
from ml_connector.store.crypto import KeyRing
from ml_connector.store.sql import SqlStore
from tests.runtime.test_poller import FLOW, ListSource, notified

GO_LIVE = datetime(2024, 5, 1, 12, tzinfo=UTC)
TRIGGER = {"field": "status", "becomes": "APPROVED"}


class HandClock:
    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now


def _poller(source: ListSource, store: SqlStore, clock: HandClock) -> Poller:
    template = "PO {{ id }} approved"
    spec = FlowSpec.model_validate({
        "source": "erp", "entity": "po", "trigger": TRIGGER, "first_sighting": "skip",
        "schedule": {"every": "1m", "overlap": "2m", "clock_skew": "5s", "baseline": "1d", "max_window": "2d",
                     "lookback": {"every": "1h", "window": "7d"}},
        "recipients": [{"static": ["+14155552671"]}], "sender": "demo.ops", "template": template,
    })
    flow = FlowRuntime(FLOW, spec, source, compile_template(FLOW, template), "demo", "+15005550006", "US")
    return Poller(flow, store, clock)  # type: ignore[arg-type]


def _row(key: str, at: datetime, **data: Any) -> Record:
    return Record("po", key, at, {"id": key, **data})


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))


async def test_a_record_committed_late_across_go_live_fires_once_and_baseline_records_do_not(
    store: SqlStore,
) -> None:
    source = ListSource()
    source.rows.append(_row("seen", GO_LIVE - timedelta(hours=2), status="APPROVED"))
    source.rows.append(_row("seen-open", GO_LIVE - timedelta(hours=1), status="OPEN"))
    clock = HandClock(GO_LIVE)
    poller = _poller(source, store, clock)

    await poller.poll()  # the baseline: both records are history
    assert notified(store) == []

    # A concurrent program stamped its row ten minutes before go-live and committed it after the baseline.
    # One ten minutes before go-live (only the lookback reads that far back), one a minute before
    # (the next main poll's overlap reads it).
    source.rows.append(_row("late", GO_LIVE - timedelta(minutes=10), status="APPROVED"))
    source.rows.append(_row("late-main", GO_LIVE - timedelta(minutes=1), status="APPROVED"))
    # Touching a record the baseline saw approved is no event; approving the open one is.
    source.rows.append(_row("seen", GO_LIVE + timedelta(seconds=30), status="APPROVED", note="touched"))
    source.rows.append(_row("seen-open", GO_LIVE + timedelta(seconds=40), status="APPROVED"))
    clock.now = GO_LIVE + timedelta(minutes=1)
    main = await poller.poll()
    assert main.fired == 2  # late-main and seen-open
    await poller.poll(LOOKBACK)  # the late record is read again: still one notification
    clock.now = GO_LIVE + timedelta(minutes=2)
    await poller.poll()
    await poller.poll(LOOKBACK)

    assert notified(store) == ["late", "late-main", "seen-open"]
    assert store.last_seen(FLOW, ["late"]) == {"late": {"status": "APPROVED"}}


async def test_history_older_than_the_baseline_stays_history_when_a_lookback_reads_it(store: SqlStore) -> None:
    source = ListSource()
    clock = HandClock(GO_LIVE)
    poller = _poller(source, store, clock)
    await poller.poll()
    # Approved three days before go-live: the baseline (one day) never read that range.
    source.rows.append(_row("old", GO_LIVE - timedelta(days=3), status="APPROVED"))
    clock.now = GO_LIVE + timedelta(minutes=1)

    await poller.poll(LOOKBACK)

    assert notified(store) == []


def test_the_baseline_policy_by_change_time() -> None:
    wm = GO_LIVE - timedelta(seconds=5)
    baseline = Baseline.of(GO_LIVE, timedelta(days=1), timedelta(minutes=2), wm)
    assert baseline.policy(GO_LIVE, "skip") == "fire"
    assert baseline.policy(wm - timedelta(seconds=1), "skip") == "fire"  # read before, not seen: late
    assert baseline.policy(wm, "skip") == "skip"  # the watermark instant may not have been read yet
    assert baseline.policy(GO_LIVE - timedelta(days=2), "skip") == "skip"  # before the baseline's range
    assert baseline.policy(GO_LIVE - timedelta(days=2), "fire") == "fire"
    # No main poll completed yet: every first sighting before the start is the baseline reading it.
    first = Baseline.of(GO_LIVE, timedelta(days=1), timedelta(minutes=2), None)
    assert first.policy(GO_LIVE - timedelta(minutes=10), "skip") == "skip"
    # A multi-step baseline (max_window): ranges not read yet are still baseline, even before the start.
    partial = Baseline.of(GO_LIVE, timedelta(days=1), timedelta(minutes=2), GO_LIVE - timedelta(hours=12))
    assert partial.policy(GO_LIVE - timedelta(hours=6), "skip") == "skip"
    assert partial.policy(GO_LIVE - timedelta(hours=13), "skip") == "fire"
