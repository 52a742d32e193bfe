"""In-doubt sends: a crashed worker's claim, reconciliation spacing, and the retry budget per round."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ml_connector.core.models import OutboundMessage, Status
from ml_connector.core.retry import LookupPolicy, RetryPolicy
from ml_connector.runtime.dispatcher import IN_DOUBT_DELAY, IN_DOUBT_MAX_DELAY, in_doubt_delay, round_attempt
from ml_connector.sim.twilio import FaultRule
from ml_connector.store.port import Claimed
from tests.runtime.support import Harness, enqueue, harness, notification, outcomes, view
from tests.support.pipeline import Pipeline, pipeline

LEASE = timedelta(seconds=60)


@pytest.fixture(params=[pytest.param(None, id="sqlite"),
                        pytest.param("postgres", id="postgresql", marks=pytest.mark.postgres)])
async def p(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Pipeline]:
    url = None if request.param is None else str(request.getfixturevalue("pg_schema_url"))
    async with pipeline(tmp_path, store_url=url) as running:
        yield running


def test_in_doubt_delay_grows_with_time_in_doubt_within_bounds() -> None:
    assert in_doubt_delay(timedelta(0)) == IN_DOUBT_DELAY
    assert in_doubt_delay(timedelta(minutes=2)) == timedelta(minutes=1)
    assert in_doubt_delay(timedelta(days=2)) == IN_DOUBT_MAX_DELAY


def _claimed(attempt_no: int, budget: int) -> Claimed:
    t = datetime(2024, 5, 1, tzinfo=UTC)
    return Claimed(id=1, flow="f", entity="e", record_key="1", account="main", sender="+15005550006",
                   recipient="+13125550142", body="b", attempt_no=attempt_no, max_attempts=budget,
                   in_doubt=False, in_doubt_since=None, created_at=t)


@pytest.mark.parametrize(("attempt_no", "budget", "expected"), [
    (1, 4, 1), (4, 4, 4),            # first round: the numbers match
    (5, 8, 1), (8, 8, 4),            # after one replay: 4 more, counted from 1 again
    (9, 12, 1),                      # after two
    (3, 10, 1),                      # a larger budget than the policy's: never below 1
])
def test_round_attempt_counts_within_the_replay_round(attempt_no: int, budget: int, expected: int) -> None:
    policy = RetryPolicy.immediate(max_attempts=4)
    assert round_attempt(_claimed(attempt_no, budget), policy) == expected


async def test_a_crashed_workers_send_that_reached_twilio_is_adopted(p: Pipeline) -> None:
    h = harness(p)
    [nid] = enqueue(p, notification(p.clock()))
    [row] = p.connector.store.claim_due("crashed-worker", p.clock(), LEASE, 10)
    # the crashed worker's request reached Twilio; its answer was never recorded
    sent = await p.connector.channels["main"].send(
        OutboundMessage(nid, "main", row.recipient, row.sender, row.body,
                        status_callback=p.connector.config.webhooks.status_callback_url))
    await p.sim.drain()

    await h.dispatch(p)
    assert len(view(p, nid).attempts) == 1, "the lease still holds"

    p.clock.advance(61)
    await h.dispatch(p)
    done = view(p, nid)
    assert outcomes(done) == ["in_doubt", "adopted"]
    assert done.provider_id == sent.provider_id and done.status is Status.DELIVERED
    assert len(p.sim.messages()) == 1


async def test_a_crashed_workers_send_that_never_left_is_sent_once(p: Pipeline) -> None:
    h = harness(p)
    [nid] = enqueue(p, notification(p.clock()))
    p.connector.store.claim_due("crashed-worker", p.clock(), LEASE, 10)

    p.clock.advance(61)
    await h.dispatch(p)
    done = view(p, nid)
    assert outcomes(done) == ["in_doubt", "accepted"] and done.status is Status.DELIVERED
    assert len(p.sim.messages()) == 1


async def test_look_ups_that_keep_failing_space_out_and_never_send(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        h = harness(p)
        p.sim.set_faults([FaultRule("drop_after_accept", operation="create_message", count=1),
                          FaultRule("5xx", operation="list_messages", status=500)])
        [nid] = enqueue(p, notification(p.clock()))
        await h.dispatch(p)
        first_doubt = view(p, nid).attempts[0].started_at

        gaps = []
        for _ in range(6):
            due = view(p, nid).next_attempt_at
            assert due is not None
            gaps.append(due - p.clock())
            p.clock.now = due
            await h.dispatch(p)
        assert gaps == sorted(gaps) and gaps[0] == IN_DOUBT_DELAY and gaps[-1] > IN_DOUBT_DELAY * 3
        after = view(p, nid)
        assert set(outcomes(after)) == {"in_doubt", "lookup_failed"} and after.status is Status.PENDING
        assert len(p.sim.messages()) == 1, "no blind resend while the look-up fails"

        p.sim.set_faults([])
        p.clock.now = after.next_attempt_at  # type: ignore[assignment]
        await h.dispatch(p)
        done = view(p, nid)
        assert outcomes(done)[-1] == "adopted" and done.status is Status.DELIVERED
        assert len(p.sim.messages()) == 1
        assert p.clock() - first_doubt > timedelta(seconds=60)


async def _until_settled(p: Pipeline, h: Harness, nid: int, rounds: int = 20) -> None:
    """Dispatch, then move the clock to the notification's next due time, until it has none."""
    for _ in range(rounds):
        await h.dispatch(p)
        due = view(p, nid).next_attempt_at
        if due is None:
            return
        p.clock.now = max(due, p.clock())
    raise AssertionError(f"notification {nid} did not settle in {rounds} rounds: {view(p, nid)}")


async def test_failing_look_ups_use_none_of_the_budget_and_a_429_on_the_resend_still_delivers(p: Pipeline) -> None:
    h = harness(p)  # the flow allows 4 attempts
    p.sim.set_faults([
        FaultRule("5xx", operation="create_message", count=1, status=502),  # in doubt; nothing created
        FaultRule("429", operation="create_message", count=2),              # the re-send: one 429
        FaultRule("5xx", operation="list_messages", count=5, status=503),   # five look-ups fail
    ])
    [nid] = enqueue(p, notification(p.clock()))
    await _until_settled(p, h, nid)

    done = view(p, nid)
    assert done.status is Status.DELIVERED, done
    assert outcomes(done) == ["in_doubt", *["lookup_failed"] * 5, "transient", "accepted"]
    assert len(p.sim.messages()) == 1
    looked_up = done.attempts[1]
    assert looked_up.error_message is not None and looked_up.error_message.startswith("reconciliation failed")


async def test_a_send_in_doubt_that_is_never_found_ends_dead_once_its_sends_are_spent(p: Pipeline) -> None:
    h = harness(p)
    p.sim.set_faults([FaultRule("5xx", operation="create_message", status=502)])  # every send in doubt
    [nid] = enqueue(p, notification(p.clock()))
    await _until_settled(p, h, nid)

    dead = view(p, nid)
    assert dead.status is Status.DEAD and dead.reason == "retries exhausted"
    assert dead.error_message is not None and "does not show it" in dead.error_message
    assert outcomes(dead) == ["in_doubt"] * 4 + ["transient"], "four sends, then the look-up that ended it"
    assert p.sim.messages() == []


async def test_a_look_up_that_hangs_is_cut_short_and_stays_in_doubt(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        h = harness(p, lookups=LookupPolicy(timeout=timedelta(milliseconds=200)))
        p.sim.set_faults([FaultRule("drop_after_accept", operation="create_message", count=1),
                          FaultRule("timeout", operation="list_messages", count=1, seconds=3600)])
        [nid] = enqueue(p, notification(p.clock()))
        await h.dispatch(p)
        p.clock.advance(5)
        await h.dispatch(p)
        after = view(p, nid)
        assert outcomes(after) == ["in_doubt", "lookup_failed"] and after.status is Status.PENDING
        assert after.attempts[1].error_message == "reconciliation did not finish in time"
        assert after.max_attempts == 5, "the look-up gave its attempt back"
        assert len(p.sim.messages()) == 1
