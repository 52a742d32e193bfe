"""Contract fixtures: every test runs once per registered harness (see harnesses.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.templates import compile_template
from ml_connector.runtime.poller import FlowRuntime, Poller
from ml_connector.sources.base import Source
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NotificationFilter
from ml_connector.store.sql import SqlStore

from .harness import SourceHarness, lookback_of, overlap_of
from .harnesses import HARNESSES


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[SourceHarness]:
    made = HARNESSES[request.param]()
    yield made
    await made.aclose()


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[[], SqlStore]]:
    """Each call opens the same SQLite file anew, as a restarted process would."""
    opened: list[SqlStore] = []

    def make() -> SqlStore:
        store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


FLOW = "contract"


def flow_spec(harness: SourceHarness) -> FlowSpec:
    """Fires once for each record never seen before (its key 'changes' from nothing)."""
    return FlowSpec.model_validate({
        "source": "erp", "entity": harness.entity,
        "schedule": {"every": "1m", "overlap": overlap_of(harness), "clock_skew": "5s",
                     "lookback": {"every": "1h", "window": lookback_of(harness)}},
        "trigger": {"field": harness.key_field, "changed": True},
        "recipients": [{"static": ["+14155552671"]}],
        "sender": "demo.ops", "template": "Record {{ record.key }} changed",
    })


def make_poller(harness: SourceHarness, source: Source, store: SqlStore, **kwargs: Any) -> Poller:
    spec = flow_spec(harness)
    flow = FlowRuntime(
        name=FLOW, spec=spec, source=source, template=compile_template(FLOW, spec.template),
        account="demo", sender="+15005550006", default_region="US",
    )
    return Poller(flow, store, harness.clock, **kwargs)


def notified(store: SqlStore, keys: list[str]) -> dict[str, int]:
    """Notifications per record key, for the given keys."""
    counts = dict.fromkeys(keys, 0)
    for view in store.list_notifications(NotificationFilter(flow=FLOW, limit=10_000)):
        if view.record_key in counts:
            counts[view.record_key] += 1
    return counts
