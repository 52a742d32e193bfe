"""Audit filters and retention: pruning goes in bounded batches, each audited; filters narrow the export."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ml_connector.runtime.audit_retention import AuditPruner
from ml_connector.store.sql import SqlStore

from .builders import T0, enqueue, notification


def _fill(store: SqlStore) -> list[int]:
    return enqueue(store, notification(1), notification(2))


def test_audit_filters(store: SqlStore) -> None:
    one, two = _fill(store)
    store.set_flow_paused("other-flow", True, "alice", T0)
    assert {e.notification_id for e in store.audit(None, None, notification=one)} == {one}
    assert {e.flow for e in store.audit(None, None, flow="other-flow")} == {"other-flow"}
    kinds = {e.kind for e in store.audit(None, None, kinds=("flow_paused", "created"))}
    assert kinds == {"flow_paused", "created"}
    assert list(store.audit(None, None, notification=two, kinds=("flow_paused",))) == []


def test_prune_deletes_old_rows_in_bounded_batches_each_audited(store: SqlStore) -> None:
    _fill(store)
    old = [e for e in store.audit(None, None)]
    assert len(old) >= 3
    later = T0 + timedelta(days=500)
    store.set_flow_paused("f", True, "alice", later)  # a recent row: kept
    assert store.prune_audit(T0 + timedelta(days=1), limit=2, now=later) == 2
    left = list(store.audit(None, None))
    pruned = [e for e in left if e.kind == "audit_pruned"]
    assert len(pruned) == 1 and pruned[0].detail["deleted"] == 2
    assert len(left) == len(old) - 2 + 2
    while store.prune_audit(T0 + timedelta(days=1), limit=2, now=later):
        pass
    kinds = [e.kind for e in store.audit(None, None)]
    assert "created" not in kinds and "flow_paused" in kinds and kinds.count("audit_pruned") >= 2


def test_pruner_runs_at_most_its_batches(store: SqlStore) -> None:
    enqueue(store, *(notification(i) for i in range(1, 5)))
    total = len(list(store.audit(None, None)))
    later = T0 + timedelta(days=500)
    pruner = AuditPruner(store, timedelta(days=400), clock=lambda: later, every=timedelta(hours=1), batch=1,
                         max_batches=2)
    assert asyncio.run(pruner.prune_once()) == 2
    assert asyncio.run(pruner.prune_once()) == 2
    remaining = [e for e in store.audit(None, None) if e.kind != "audit_pruned"]
    assert len(remaining) == total - 4 > 0
    keep_all = AuditPruner(store, timedelta(days=1000), clock=lambda: later, every=timedelta(hours=1), batch=10,
                           max_batches=10)
    assert asyncio.run(keep_all.prune_once()) == 0
