"""A batch is judged exactly as its items one call at a time: `apply_statuses`, `finish_attempts`.

The batch methods write set-wise (one statement per kind of write for the whole batch), so these
tests hold them to the one-at-a-time answers: same results, same notifications, attempts,
delivery events and audit, including duplicates and out-of-order reports inside one batch,
reports for unknown SIDs, stale attempt results and callbacks adopted when their send lands.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_connector.core.models import StatusEvent
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.sql import SqlStore

from .builders import PHONE, T0, enqueue, notification

LEASE = timedelta(seconds=30)
SIDS = ("SM1", "SM2", "SM3", "SM9")  # SM9 belongs to no notification: an orphan
STATUSES = ("queued", "sent", "delivered", "undelivered", "failed", "read", "accepted", "receiving")


def report(sid: str, status: str, code: int | None, dlr: str, at: int) -> StatusEvent:
    raw = {"MessageSid": sid, "MessageStatus": status, "To": PHONE}
    if dlr:
        raw["RawDlrDoneDate"] = dlr
    if code is not None:
        raw["ErrorCode"] = str(code)
        raw["ErrorMessage"] = f"carrier said no to {PHONE}"
    return StatusEvent(sid, status, code, T0 + timedelta(seconds=at), raw)


def sent(store: SqlStore, count: int = 3) -> list[int]:
    ids = enqueue(store, *(notification(i) for i in range(1, count + 1)))
    claimed = store.claim_due("w", T0, LEASE, 10)
    store.finish_attempts([
        AttemptResult(c.id, c.attempt_no, Outcome.ACCEPTED, T0, T0, provider_id=f"SM{c.id}", provider_status="queued")
        for c in claimed
    ])
    return ids


def snapshot(store: SqlStore) -> dict[str, Any]:
    """Everything the batch methods write, without ids and times that differ between runs."""
    engine = store._engine  # noqa: SLF001 - a test looks at the rows themselves
    with engine.connect() as conn:
        def rows(query: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in conn.execute(sa.text(query))]

        return {
            "notifications": rows(
                "SELECT id, status, provider_id, error_code, error_message, attempts_made, next_attempt_at, "
                "in_doubt_since, lease_owner FROM notifications ORDER BY id"
            ),
            "attempts": rows(
                "SELECT notification_id, attempt_no, outcome, provider_id, provider_status, error_code, "
                "error_message FROM attempts ORDER BY notification_id, attempt_no"
            ),
            "events": rows(
                "SELECT provider_id, provider_status, error_code, dedupe_key, notification_id, result "
                "FROM delivery_events ORDER BY provider_id, dedupe_key"
            ),
            "audit": sorted(rows("SELECT notification_id, kind, status, detail_json FROM audit"), key=repr),
            "write_backs": rows("SELECT notification_id, status FROM write_backs ORDER BY notification_id"),
        }


def batch_order(batch: Sequence[StatusEvent]) -> list[StatusEvent]:
    """The order a batch is judged in: by provider id, arrival order within one."""
    return [batch[i] for i in sorted(range(len(batch)), key=lambda i: (batch[i].provider_id, i))]


def run_reports(store: SqlStore, batches: Sequence[Sequence[StatusEvent]], *, batched: bool) -> list[str]:
    results: list[str] = []
    for batch in batches:
        if batched:
            results += [r.value for r in store.apply_statuses(batch)]
        else:
            by_event = {id(e): store.apply_status(e).value for e in batch_order(batch)}
            results += [by_event[id(e)] for e in batch]
    return results


def both_ways(make: Callable[[], SqlStore], scenario: Callable[[SqlStore, bool], list[str]]) -> None:
    one_by_one, batched = make(), make()
    try:
        expected = scenario(one_by_one, False)
        got = scenario(batched, True)
        assert got == expected
        assert snapshot(batched) == snapshot(one_by_one)
    finally:
        one_by_one.close()
        batched.close()


event_lists = st.lists(
    st.builds(report, st.sampled_from(SIDS), st.sampled_from(STATUSES), st.sampled_from([None, 30003]),
              st.sampled_from(["", "2405011201"]), st.integers(0, 3)),
    min_size=1, max_size=14,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_lists, cuts=st.lists(st.integers(0, 14), max_size=3))
def test_status_reports_in_batches_match_one_at_a_time(events: list[StatusEvent], cuts: list[int]) -> None:
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
    batches = [events[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]
    with tempfile.TemporaryDirectory() as tmp:
        made = iter(range(2))

        def make() -> SqlStore:
            return SqlStore(f"sqlite:///{Path(tmp) / f'store{next(made)}.db'}", KeyRing(b"k" * 32))

        def scenario(store: SqlStore, batched: bool) -> list[str]:
            sent(store)
            return run_reports(store, batches, batched=batched)

        both_ways(make, scenario)


def test_one_batch_with_duplicates_out_of_order_and_orphans(make_store: Callable[..., SqlStore]) -> None:
    """The same, on each backend (PostgreSQL included), for one hand-picked batch."""
    batch = [
        report("SM1", "delivered", None, "2405011201", 2),
        report("SM1", "sent", None, "", 1),
        report("SM1", "delivered", None, "2405011201", 2),  # the same callback twice in one batch
        report("SM9", "sent", None, "", 1),                  # nobody's SID
        report("SM2", "undelivered", 30003, "", 3),
        report("SM2", "delivered", None, "", 4),             # no way back from undelivered
        report("SM3", "receiving", None, "", 1),             # not a message-lifecycle status
        report("SM3", "sent", None, "", 2),
    ]
    one = make_store()
    sent(one)
    expected = run_reports(one, [batch], batched=False)
    assert expected == ["applied", "stale", "duplicate", "orphan", "applied", "stale", "stale", "applied"]
    # A second copy of the same notifications in the same database gets the batch under new SIDs.
    ids = enqueue(one, *(notification(i) for i in range(11, 14)))
    claimed = one.claim_due("w", T0, LEASE, 10)
    one.finish_attempts([
        AttemptResult(c.id, c.attempt_no, Outcome.ACCEPTED, T0, T0, provider_id=f"SX{c.id - ids[0] + 1}",
                      provider_status="queued")
        for c in claimed
    ])
    renamed = [
        StatusEvent(e.provider_id.replace("SM", "SX"), e.provider_status, e.error_code, e.received_at,
                    {**e.raw, "MessageSid": e.provider_id.replace("SM", "SX")})
        for e in batch
    ]
    got = [r.value for r in one.apply_statuses(renamed)]
    assert got == expected
    views = {v.id: v for v in (one.get_notification(i) for i in [1, 2, 3, *ids]) if v is not None}
    assert [views[i].status for i in ids] == [views[i].status for i in (1, 2, 3)]
    assert [views[i].error_code for i in ids] == [views[i].error_code for i in (1, 2, 3)]
    assert [views[i].error_message for i in ids] == [views[i].error_message for i in (1, 2, 3)]
    assert [[a.provider_status for a in views[i].attempts] for i in ids] == [
        [a.provider_status for a in views[i].attempts] for i in (1, 2, 3)
    ]


def finish_scenario(store: SqlStore, batched: bool) -> list[str]:
    """Results of every outcome, a stale one and a repeated one, plus callbacks that beat their send."""
    ids = enqueue(store, *(notification(i) for i in range(1, 7)))
    claimed = {c.id: c for c in store.claim_due("w", T0, LEASE, 10)}
    store.apply_statuses([report("SM1", "sent", None, "", 1), report("SM1", "delivered", None, "d", 2)])
    at = T0 + timedelta(seconds=3)
    later = T0 + timedelta(minutes=1)
    results = [
        AttemptResult(ids[0], claimed[ids[0]].attempt_no, Outcome.ACCEPTED, T0, at, provider_id="SM1",
                      provider_status="queued"),
        AttemptResult(ids[1], claimed[ids[1]].attempt_no, Outcome.TRANSIENT, T0, at, error_code=20500,
                      error_message=f"busy, call {PHONE}", next_attempt_at=later),
        AttemptResult(ids[2], claimed[ids[2]].attempt_no, Outcome.PERMANENT, T0, at, error_code=21211,
                      error_message="Invalid 'To' Phone Number"),
        AttemptResult(ids[3], claimed[ids[3]].attempt_no, Outcome.IN_DOUBT, T0, at, error_message="read timeout"),
        AttemptResult(ids[4], claimed[ids[4]].attempt_no, Outcome.DEFERRED, T0, at, next_attempt_at=later),
        AttemptResult(ids[5], claimed[ids[5]].attempt_no + 1, Outcome.ACCEPTED, T0, at, provider_id="SM6"),
        AttemptResult(ids[0], claimed[ids[0]].attempt_no, Outcome.ACCEPTED, T0, at, provider_id="SM1"),
        AttemptResult(ids[1], claimed[ids[1]].attempt_no, Outcome.TRANSIENT, T0, at, next_attempt_at=None),
    ]
    if batched:
        return [str(ok) for ok in store.finish_attempts(results)]
    return [str(store.finish_attempts([r])[0]) for r in results]


def test_attempt_results_in_a_batch_match_one_at_a_time(make_store: Callable[..., SqlStore], backend: str,
                                                        tmp_path: Path) -> None:
    if backend == "sqlite":
        made = iter(range(3))

        def make() -> SqlStore:
            return SqlStore(f"sqlite:///{tmp_path / f'f{next(made)}.db'}", KeyRing(b"k" * 32))
    else:
        make = make_store
        # One PostgreSQL schema per test: compare two runs of the scenario against fresh tables.
        first = make_store()
        expected = finish_scenario(first, False)
        before = snapshot(first)
        with first._engine.begin() as conn:  # noqa: SLF001
            for table in ("write_backs", "audit", "delivery_events", "attempts", "notifications"):
                conn.execute(sa.text(f"DELETE FROM {table}"))
            conn.execute(sa.text("ALTER SEQUENCE notifications_id_seq RESTART WITH 1"))
        assert [str(x) for x in finish_scenario(first, True)] == expected
        assert snapshot(first) == before
        return
    both_ways(make, finish_scenario)
    expected = ["True", "True", "True", "True", "True", "False", "False", "False"]
    store = make()
    try:
        assert finish_scenario(store, True) == expected
        view = store.get_notification(1)
        assert view is not None and view.status.value == "delivered"  # the early callbacks were adopted
    finally:
        store.close()
