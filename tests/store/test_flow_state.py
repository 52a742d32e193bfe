"""Flow state in the store: pause/resume for every process, resets of the watermark, last polls, holders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from ml_connector.store.flows import MAIN, STARTED
from ml_connector.store.port import RecordState
from ml_connector.store.sql import SqlStore

from .builders import T0, enqueue, notification, poll


def _kinds(store: SqlStore) -> list[tuple[str | None, str]]:
    return [(e.flow, e.kind) for e in store.audit(None, None) if e.kind.startswith("flow_")]


def test_pause_is_seen_by_every_process_and_audited(make_store: Callable[..., SqlStore]) -> None:
    one, other = make_store(), make_store()
    assert one.paused_flows() == set()
    assert one.set_flow_paused("po-approved", True, "alice", T0) is True
    assert other.paused_flows() == {"po-approved"}
    assert one.set_flow_paused("po-approved", True, "alice", T0) is False  # already paused: no audit
    state = other.flow_states(["po-approved"], T0)["po-approved"]
    assert state.paused and state.paused_by == "alice" and state.paused_at == T0
    assert other.set_flow_paused("po-approved", False, "bob", T0 + timedelta(minutes=1)) is True
    assert one.paused_flows() == set()
    assert _kinds(one) == [("po-approved", "flow_paused"), ("po-approved", "flow_resumed")]
    actors = [e.detail["actor"] for e in one.audit(None, None) if e.kind.startswith("flow_")]
    assert actors == ["alice", "bob"]


def test_pause_keeps_the_watermark_and_last_poll(store: SqlStore) -> None:
    store.commit_poll(poll(watermark=T0))
    store.record_poll("po-approved", at=T0, kind=MAIN, read=5, inserted=2, worker="host:1")
    store.set_flow_paused("po-approved", True, "alice", T0)
    state = store.flow_states([], T0)["po-approved"]
    assert state.watermark == T0 and state.last_poll_read == 5 and state.last_poll_inserted == 2
    assert state.polled_by == "host:1" and state.last_poll_ok is True and state.paused


def test_last_error_is_kept_after_a_good_poll(store: SqlStore) -> None:
    store.record_poll("f", at=T0, kind=MAIN, error="ERP down: call +13125550142", worker="w")
    store.record_poll("f", at=T0 + timedelta(seconds=5), kind=MAIN, read=0, inserted=0, worker="w")
    state = store.flow_states(["f"], T0)["f"]
    assert state.last_poll_ok is True and state.last_poll_at == T0 + timedelta(seconds=5)
    assert state.last_error is not None and "ERP down" in state.last_error and "5550142" not in state.last_error
    assert state.last_error_at == T0


def test_events_fired_count_since(store: SqlStore) -> None:
    enqueue(store, notification(1), notification(2), notification(3, recipient_field="other",
                                                                     idempotency_key="k3b", record_key="1"))
    counts = store.flow_states(["po-approved", "never-polled"], T0 - timedelta(days=1))
    assert counts["po-approved"].events_since == 2  # records 1 (two recipients) and 2
    assert counts["never-polled"].events_since == 0 and counts["never-polled"].watermark is None
    assert store.flow_states(["po-approved"], T0 + timedelta(days=1))["po-approved"].events_since == 0


def test_reset_moves_the_watermark_back(store: SqlStore) -> None:
    store.commit_poll(poll(watermark=T0))
    store.commit_poll(poll(watermark_kind=STARTED, watermark=T0 - timedelta(hours=1), states=[]))
    back = T0 - timedelta(days=2)
    result = store.reset_flow("po-approved", to=back, baseline=False, actor="alice", now=T0)
    assert result.previous == T0 and result.watermark == back
    assert store.get_watermark("po-approved") == back
    assert store.get_watermark("po-approved", STARTED) == back  # records after `to` are events again
    assert store.last_seen("po-approved", ["1"]) == {}  # no states were stored by these polls
    entry = [e for e in store.audit(None, None) if e.kind == "flow_reset"][0]
    assert entry.detail["previous_watermark"] == T0.isoformat() and entry.detail["actor"] == "alice"


def test_reset_forward_and_of_a_flow_never_polled(store: SqlStore) -> None:
    ahead = T0 + timedelta(hours=3)
    result = store.reset_flow("new-flow", to=ahead, baseline=False, actor="a", now=T0)
    assert result.previous is None and store.get_watermark("new-flow") == ahead


def test_reset_baseline_forgets_start_watermarks_and_states(store: SqlStore) -> None:
    store.commit_poll(poll(watermark=T0, states=[RecordState("po-approved", "9", {"STATUS": "X"}, T0)]))
    store.commit_poll(poll(watermark_kind=STARTED, watermark=T0 - timedelta(hours=1), states=[]))
    result = store.reset_flow("po-approved", to=None, baseline=True, actor="alice", now=T0)
    assert result.baseline and result.states_dropped == 1 and result.previous == T0
    assert store.get_watermark("po-approved") is None
    assert store.get_watermark("po-approved", STARTED) is None
    assert store.last_seen("po-approved", ["9"]) == {}


def test_lock_holder_is_named_while_held(store: SqlStore) -> None:
    assert store.flow_lock_holder("po-approved") is None
    lock = store.flow_lock("po-approved", label="ml-connector host:42")
    assert lock.acquire()
    try:
        assert store.flow_lock_holder("po-approved") == "ml-connector host:42"
    finally:
        lock.release()
    assert store.flow_lock_holder("po-approved") is None
