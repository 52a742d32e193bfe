"""runtime.poller: judging batches (with and without last-seen state) and committing them in order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.models import CheckResult, Record
from ml_connector.core.templates import compile_template
from ml_connector.errors import TemplateError
from ml_connector.runtime.poller import MAIN, FlowRuntime, Poller
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NotificationFilter, PollCommit
from ml_connector.store.sql import SqlStore

FLOW = "po"
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


@dataclass
class ListSource:
    """The ERP as a list of row versions, yielded oldest first like a real source."""

    rows: list[Record] = field(default_factory=list)

    def add(self, key: str, seconds: float, **data: Any) -> None:
        self.rows.append(Record("po", key, T0 + timedelta(seconds=seconds), {"id": key, **data}))

    async def check(self) -> CheckResult:
        return CheckResult(system="list")

    async def fetch(self, entity: str, since: datetime, until: datetime) -> AsyncIterator[Record]:
        for row in sorted(self.rows, key=lambda r: (r.changed_at, r.key)):
            if since <= row.changed_at < until:
                yield row

    async def lookup(self, entity: str, key: str) -> Record | None:
        return None


class SpyStore:
    """The real SQLite store, recording what the poller asks of it; can fail the n-th commit."""

    def __init__(self, inner: SqlStore, fail_commit: int | None = None) -> None:
        self.inner = inner
        self.commits: list[PollCommit] = []
        self.last_seen_calls = 0
        self._fail_commit = fail_commit

    def get_watermark(self, flow: str, kind: str = MAIN) -> datetime | None:
        return self.inner.get_watermark(flow, kind)

    def last_seen(self, flow: str, record_keys: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        self.last_seen_calls += 1
        return self.inner.last_seen(flow, record_keys)

    def commit_poll(self, commit: PollCommit) -> list[int]:
        if commit.watermark_kind != "started":
            if self._fail_commit is not None and len(self.commits) + 1 == self._fail_commit:
                raise RuntimeError("disk full")
            self.commits.append(commit)
        return self.inner.commit_poll(commit)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
    yield opened
    opened.close()


def poller(source: ListSource, store: SpyStore, trigger: dict[str, Any], *, template: str = "PO {{ id }}",
           batch_size: int = 3, first_sighting: str = "fire") -> Poller:
    spec = FlowSpec.model_validate({
        "source": "erp", "entity": "po", "trigger": trigger, "first_sighting": first_sighting,
        "schedule": {"every": "1m", "overlap": "1m", "clock_skew": "0s", "baseline": "1d", "max_window": "2d"},
        "recipients": [{"static": ["+14155552671"]}], "sender": "demo.ops", "template": template,
    })
    flow = FlowRuntime(FLOW, spec, source, compile_template(FLOW, template), "demo", "+15005550006", "US")
    # The flow started before every row: each row is an event, judged by the trigger alone.
    return Poller(flow, store, lambda: T0 + timedelta(hours=1), batch_size=batch_size)  # type: ignore[arg-type]


def notified(store: SqlStore) -> list[str]:
    return sorted(v.record_key for v in store.list_notifications(NotificationFilter(flow=FLOW, limit=1000)))


async def started_at(store: SqlStore, at: datetime) -> None:
    """Mark the flow as started at `at` (what its first poll would have stored)."""
    store.commit_poll(PollCommit(FLOW, "started", at, (), (), at))


async def test_a_trigger_without_transitions_reads_and_stores_no_state(store: SqlStore) -> None:
    source = ListSource()
    for i in range(10):
        source.add(str(i), i, status="APPROVED" if i % 3 == 0 else "OPEN")
    spy = SpyStore(store)
    await started_at(store, T0)

    report = await poller(source, spy, {"field": "status", "eq": "APPROVED"}).poll()

    assert (report.read, report.fired, report.inserted) == (10, 4, 4)
    assert notified(store) == ["0", "3", "6", "9"]
    assert spy.last_seen_calls == 0
    assert all(not c.states for c in spy.commits)
    assert store.last_seen(FLOW, [str(i) for i in range(10)]) == {}
    # Batches of three, committed in order, each watermark covering only its own batch.
    assert [len(c.notifications) for c in spy.commits] == [1, 1, 1, 1]
    marks = [c.watermark for c in spy.commits]
    assert marks[:3] == [T0 + timedelta(seconds=s) for s in (2, 5, 8)]
    assert marks == sorted(marks)

    again = await poller(source, SpyStore(store), {"field": "status", "eq": "APPROVED"}).poll()
    assert again.inserted == 0  # a re-read inserts nothing (idempotency keys)


async def test_transitions_are_judged_against_the_last_seen_state_within_a_batch(store: SqlStore) -> None:
    source = ListSource()
    source.add("A", 1, status="OPEN")
    source.add("B", 2, status="APPROVED")
    source.add("A", 3, status="APPROVED")  # same batch as its earlier version: a transition
    source.add("C", 4, status="OPEN")
    source.add("B", 5, status="APPROVED")  # no change: no event
    spy = SpyStore(store)
    await started_at(store, T0)

    report = await poller(source, spy, {"field": "status", "becomes": "APPROVED"}, batch_size=3).poll()

    assert report.fired == 2
    assert notified(store) == ["A", "B"]
    assert store.last_seen(FLOW, ["A", "B", "C"]) == {
        "A": {"status": "APPROVED"}, "B": {"status": "APPROVED"}, "C": {"status": "OPEN"},
    }
    # Batch 1 stores the newest state of A and B; batch 2 only C (B's state is unchanged).
    assert [sorted((s.record_key, s.values["status"]) for s in c.states) for c in spy.commits] == [
        [("A", "APPROVED"), ("B", "APPROVED")], [("C", "OPEN")],
    ]

    replay = SpyStore(store)
    again = await poller(source, replay, {"field": "status", "becomes": "APPROVED"}).poll()
    assert (again.fired, again.inserted) == (0, 0)
    assert all(not c.states for c in replay.commits)  # nothing changed: no state rewritten


async def test_first_sighting_policy_applies_to_records_changed_before_the_flow_started(store: SqlStore) -> None:
    source = ListSource()
    source.add("old", 1, status="APPROVED")
    source.add("new", 20, status="APPROVED")
    await started_at(store, T0 + timedelta(seconds=10))

    await poller(source, SpyStore(store), {"field": "status", "becomes": "APPROVED"}, first_sighting="skip").poll()

    assert notified(store) == ["new"]
    assert store.last_seen(FLOW, ["old"]) == {"old": {"status": "APPROVED"}}


async def test_a_failed_commit_stops_the_poll_and_later_batches_are_not_committed(store: SqlStore) -> None:
    source = ListSource()
    for i in range(12):
        source.add(f"{i:02d}", i, status="APPROVED")
    spy = SpyStore(store, fail_commit=2)
    await started_at(store, T0)

    with pytest.raises(RuntimeError, match="disk full"):
        await poller(source, spy, {"field": "status", "eq": "APPROVED"}).poll()

    assert len(spy.commits) == 1
    assert notified(store) == ["00", "01", "02"]
    assert store.get_watermark(FLOW, MAIN) == T0 + timedelta(seconds=2)


async def test_a_template_error_stops_the_flow_after_the_batches_before_it(store: SqlStore) -> None:
    source = ListSource()
    for i in range(9):
        source.add(f"{i:02d}", i, status="APPROVED", **({} if i == 7 else {"amount": i}))
    spy = SpyStore(store)
    await started_at(store, T0)

    with pytest.raises(TemplateError):
        await poller(source, spy, {"field": "status", "eq": "APPROVED"}, template="{{ amount }}").poll()

    assert notified(store) == ["00", "01", "02", "03", "04", "05"]
    assert store.get_watermark(FLOW, MAIN) == T0 + timedelta(seconds=5)
