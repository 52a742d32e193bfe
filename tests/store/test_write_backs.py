"""The write-back queue: queued with the final status, leased, retried, given up, audited."""

from __future__ import annotations

from datetime import timedelta

from ml_connector.core.models import Status, StatusEvent
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.sql import SqlStore

from .builders import T0, enqueue, notification, poll

LEASE = timedelta(seconds=60)


def sent(store: SqlStore, i: int = 1, source: str | None = "ebs") -> int:
    (nid,) = enqueue(store, notification(i, write_back=source))
    (c,) = store.claim_due("w", T0, LEASE, 10)
    store.finish_attempt(AttemptResult(nid, c.attempt_no, Outcome.ACCEPTED, T0, T0, provider_id=f"SM{i}"))
    return nid


def report(sid: str, status: str, code: int | None = None) -> StatusEvent:
    return StatusEvent(sid, status, code, T0 + timedelta(minutes=1), {"MessageSid": sid})


def test_final_status_queues_one_write_back_with_the_delivery(store: SqlStore) -> None:
    nid = sent(store)
    assert store.claim_write_backs("wb", T0 + timedelta(hours=1), LEASE, 10) == []  # queued is not final
    store.apply_status(report("SM1", "sent"))
    store.apply_status(report("SM1", "undelivered", 30003))
    store.apply_status(report("SM1", "delivered"))  # not news: no second task
    (task,) = store.claim_write_backs("wb", T0 + timedelta(minutes=1), LEASE, 10)
    d = task.delivery
    assert (task.source, task.attempt_no) == ("ebs", 1)
    assert (d.notification_id, d.flow, d.record_key, d.provider_id, d.status, d.error_code) == (
        nid,
        "po-approved",
        "1",
        "SM1",
        Status.UNDELIVERED,
        30003,
    )
    assert (d.created_at, d.finished_at) == (T0, T0 + timedelta(minutes=1))


def test_flows_without_write_back_queue_nothing(store: SqlStore) -> None:
    sent(store, source=None)
    store.apply_status(report("SM1", "delivered"))
    assert store.claim_write_backs("wb", T0 + timedelta(hours=1), LEASE, 10) == []


def test_failed_before_sending_and_dead_are_written_back(store: SqlStore) -> None:
    bad = notification(1, status=Status.FAILED, reason="no phone", write_back="ebs")
    store.commit_poll(poll(bad, notification(2, write_back="ebs")))
    (c,) = store.claim_due("w", T0, LEASE, 10)
    store.finish_attempt(AttemptResult(c.id, 1, Outcome.TRANSIENT, T0, T0, error_code=20429))
    tasks = store.claim_write_backs("wb", T0, LEASE, 10)
    assert sorted(t.delivery.status for t in tasks) == [Status.DEAD, Status.FAILED]


def test_retry_lease_and_give_up(store: SqlStore) -> None:
    sent(store)
    store.apply_status(report("SM1", "delivered"))
    now = T0 + timedelta(minutes=1)
    (task,) = store.claim_write_backs("wb", now, LEASE, 10)
    assert store.claim_write_backs("other", now + LEASE - timedelta(seconds=1), LEASE, 10) == []
    retry_at = now + timedelta(minutes=10)
    store.finish_write_back(task.id, ok=False, error="EBS down", next_attempt_at=retry_at, now=now)
    assert store.claim_write_backs("wb", retry_at - timedelta(seconds=1), LEASE, 10) == []
    (again,) = store.claim_write_backs("wb", retry_at, LEASE, 10)
    assert (again.id, again.attempt_no) == (task.id, 2)
    # the worker dies: its lease runs out and the task is handed out again
    (third,) = store.claim_write_backs("wb", retry_at + LEASE + timedelta(seconds=1), LEASE, 10)
    assert third.attempt_no == 3
    store.finish_write_back(third.id, ok=False, error="still down", next_attempt_at=None, now=retry_at)
    assert store.claim_write_backs("wb", retry_at + timedelta(days=1), LEASE, 10) == []
    outcomes = [e.status for e in store.audit(None, None) if e.kind == "write_back"]
    assert outcomes == ["retry", "gave_up"]


def test_done_is_final_and_finishing_twice_is_ignored(store: SqlStore) -> None:
    sent(store)
    store.apply_status(report("SM1", "delivered"))
    (task,) = store.claim_write_backs("wb", T0 + timedelta(minutes=1), LEASE, 10)
    store.finish_write_back(task.id, ok=True, error=None, next_attempt_at=None, now=T0)
    store.finish_write_back(task.id, ok=False, error="late", next_attempt_at=T0, now=T0)
    assert store.claim_write_backs("wb", T0 + timedelta(days=1), LEASE, 10) == []
    assert [e.status for e in store.audit(None, None) if e.kind == "write_back"] == ["done"]


def test_read_after_delivered_is_another_write_back(store: SqlStore) -> None:
    sent(store)
    store.apply_status(report("SM1", "delivered"))
    store.apply_status(report("SM1", "read"))
    tasks = store.claim_write_backs("wb", T0 + timedelta(minutes=1), LEASE, 10)
    assert [t.delivery.status for t in tasks] == [Status.DELIVERED, Status.READ]
