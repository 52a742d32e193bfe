"""The fast bulk writes (store/bulk.py: reports, attempt results, claims) store what SQLAlchemy would.

On SQLite the reports are written with the driver's executemany and values converted by the
columns' own types; on PostgreSQL with one `unnest` statement per kind of write, and read with
statements of their own. Each scenario runs twice on the same database (emptied in between,
ids restarted), once through each path, and every column of every row written must be equal:
timestamps, masked messages and the decrypted raw callbacks included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_connector.core.models import StatusEvent
from ml_connector.store import bulk
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.sql import SqlStore

from .builders import PHONE, T0, enqueue, notification
from .test_batches import SIDS, STATUSES, finish_scenario, report, sent

_TABLES = ("digest_items", "digests", "reply_refs", "inbound_messages", "write_backs", "audit", "delivery_events",
           "attempts", "notifications")
_ROWS = {
    "notifications": "SELECT id, idempotency_key, flow, entity, record_key, event_version, channel, account, "
                     "sender, recipient_hash, recipient_field, status, reason, provider_id, error_code, "
                     "error_message, attempts_made, max_attempts, attempt_budget, segments, write_back_source, "
                     "lease_owner, lease_until, in_doubt_since, next_attempt_at, record_changed_at, created_at, "
                     "updated_at, recipient_enc, body_enc FROM notifications ORDER BY id",
    "attempts": "SELECT id, notification_id, attempt_no, outcome, provider_id, provider_status, error_code, "
                "error_message, started_at, finished_at FROM attempts ORDER BY id",
    "events": "SELECT id, provider_id, provider_status, error_code, dedupe_key, received_at, notification_id, "
              "result, raw_enc FROM delivery_events ORDER BY id",
    "audit": "SELECT id, at, notification_id, flow, kind, status, detail_json FROM audit ORDER BY id",
    "write_backs": "SELECT id, notification_id, source, status, provider_id, error_code, error_message, "
                   "finished_at, state FROM write_backs ORDER BY id",
}


@contextmanager
def general_path() -> Iterator[None]:
    """Every database takes SQLAlchemy's executemany, as one without a fast path would."""
    fast = bulk.FAST_DIALECTS
    bulk.FAST_DIALECTS = frozenset()
    try:
        yield
    finally:
        bulk.FAST_DIALECTS = fast


def empty(store: SqlStore) -> None:
    """No rows and ids from 1 again, so two runs of a scenario give the same ids."""
    engine = store._engine  # noqa: SLF001 - a test resets the tables themselves
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY"))
        else:
            for table in _TABLES:  # rowid ids: an empty table starts again at 1
                conn.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names


def rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every column the writes touch; raw callbacks decrypted (their nonces differ by design)."""
    keys = store._keys  # noqa: SLF001
    with store._engine.connect() as conn:  # noqa: SLF001
        found = {name: [tuple(r) for r in conn.execute(sa.text(query))] for name, query in _ROWS.items()}
    found["events"] = [(*r[:-1], keys.decrypt(bytes(r[-1]))) for r in found["events"]]
    found["notifications"] = [(*r[:-2], keys.decrypt(bytes(r[-2])), keys.decrypt(bytes(r[-1])))
                              for r in found["notifications"]]
    return found


def both_paths(store: SqlStore, scenario: Callable[[SqlStore], list[str]]) -> None:
    empty(store)
    with general_path():
        expected = scenario(store)
    written = rows(store)
    empty(store)
    assert scenario(store) == expected
    assert rows(store) == written
    assert written["events"] or written["notifications"]  # the scenario wrote something to compare


# Reports at times in other zones too: each instant is converted once per batch and reused.
_ZONES = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7, minutes=-30)))


def reports_in(events: Sequence[StatusEvent], zones: Sequence[int]) -> list[StatusEvent]:
    return [
        StatusEvent(e.provider_id, e.provider_status, e.error_code, e.received_at.astimezone(_ZONES[z]), e.raw)
        for e, z in zip(events, zones, strict=False)
    ] + list(events[len(zones):])


event_lists = st.lists(
    st.builds(report, st.sampled_from(SIDS), st.sampled_from(STATUSES), st.sampled_from([None, 30003]),
              st.sampled_from(["", "2405011201"]), st.integers(0, 3)),
    min_size=1, max_size=16,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(events=event_lists, cuts=st.lists(st.integers(0, 16), max_size=3),
       zones=st.lists(st.integers(0, len(_ZONES) - 1), max_size=16), write_back=st.booleans())
def test_status_reports_store_the_same_rows_both_ways(
    store: SqlStore, events: list[StatusEvent], cuts: list[int], zones: list[int], write_back: bool
) -> None:
    events = reports_in(events, zones)
    bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
    batches = [events[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]

    def scenario(store: SqlStore) -> list[str]:
        ids = enqueue(store, *(notification(i, write_back="erp" if write_back else None) for i in (1, 2, 3)))
        claimed = store.claim_due("w", T0, timedelta(seconds=30), 10)
        store.finish_attempts([
            AttemptResult(c.id, c.attempt_no, Outcome.ACCEPTED, T0, T0, provider_id=f"SM{c.id}",
                          provider_status="queued")
            for c in claimed
        ])
        assert ids == [1, 2, 3]
        return [r.value for batch in batches for r in store.apply_statuses(batch)]

    both_paths(store, scenario)


def test_failures_with_messages_then_later_moves(store: SqlStore) -> None:
    """Every move shape in one batch: plain, failed with a code, failed with a masked message."""
    batch = [
        report("SM1", "sent", None, "", 1),
        report("SM1", "undelivered", 30003, "", 2),       # code and a message quoting the number
        StatusEvent("SM2", "failed", 30005, T0, {"MessageSid": "SM2", "MessageStatus": "failed"}),  # no message
        report("SM3", "sent", None, "", 1),
        report("SM3", "delivered", None, "2405011201", 2),
        report("SM9", "delivered", None, "", 3),          # an orphan
        report("SM3", "delivered", None, "2405011201", 2),  # a duplicate
    ]

    def scenario(store: SqlStore) -> list[str]:
        sent(store)
        return [r.value for r in store.apply_statuses(batch)]

    both_paths(store, scenario)
    assert PHONE not in repr([(r[12], r[15]) for r in rows(store)["notifications"]])  # reason, error_message


def test_callbacks_adopted_when_their_send_lands(store: SqlStore) -> None:
    """adopt_orphans (the dispatcher's batch) moves notifications through the same writes."""
    both_paths(store, lambda s: finish_scenario(s, True))


def test_claims_and_every_outcome_then_a_lease_that_ran_out(store: SqlStore) -> None:
    """Claims (lease, attempt, audit) and each finish plan, then rows re-claimed in doubt."""
    lease = timedelta(seconds=30)

    def scenario(store: SqlStore) -> list[str]:
        enqueue(store, *(notification(i) for i in range(1, 8)))
        claimed = store.claim_due("w1", T0, lease, 10)
        at = T0 + timedelta(seconds=1)
        outcomes = [
            AttemptResult(claimed[0].id, claimed[0].attempt_no, Outcome.ACCEPTED, T0, at, provider_id="SM1",
                          provider_status="queued"),
            AttemptResult(claimed[1].id, claimed[1].attempt_no, Outcome.TRANSIENT, T0, at, error_code=20429,
                          error_message=f"Too many requests for {PHONE}", next_attempt_at=at),
            AttemptResult(claimed[2].id, claimed[2].attempt_no, Outcome.TRANSIENT, T0, at, next_attempt_at=None),
            AttemptResult(claimed[3].id, claimed[3].attempt_no, Outcome.PERMANENT, T0, at, error_code=21211),
            AttemptResult(claimed[4].id, claimed[4].attempt_no, Outcome.IN_DOUBT, T0, at,
                          error_message="read timeout", next_attempt_at=at),
            AttemptResult(claimed[5].id, claimed[5].attempt_no, Outcome.DEFERRED, T0, at, next_attempt_at=at),
        ]  # the seventh is never finished: its lease runs out
        recorded = store.finish_attempts(outcomes)
        later = T0 + lease + timedelta(seconds=5)
        again = store.claim_due("w2", later, lease, 10)
        done = store.finish_attempts([
            AttemptResult(c.id, c.attempt_no, Outcome.ADOPTED if c.in_doubt else Outcome.ACCEPTED, later, later,
                          provider_id=f"SM{c.id}x", provider_status="sent")
            for c in again
        ])
        return [str(r) for r in recorded + done] + [f"{c.id}:{c.in_doubt}:{c.in_doubt_since}" for c in again]

    both_paths(store, scenario)
    assert PHONE not in repr(rows(store)["attempts"])


def test_a_poll_larger_than_one_statement_keeps_its_order_and_ids(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notifications and audit rows in several multi-row INSERTs, some keys already stored."""
    monkeypatch.setattr(bulk, "MOST_ROWS", 7)

    def scenario(store: SqlStore) -> list[str]:
        first = enqueue(store, *(notification(i) for i in range(0, 40, 3)))
        again = enqueue(store, *(notification(i, reason=f"call {PHONE}" if i % 5 else None) for i in range(40)))
        return [str(first), str(again)]

    both_paths(store, scenario)
