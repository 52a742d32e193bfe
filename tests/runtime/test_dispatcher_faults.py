"""The dispatcher against the Twilio simulator under each fault of its plan.

Everything real between the outbox and the simulator (SqlStore, dispatcher, SmsChannel,
TwilioClient, the simulator's ASGI app, signed callbacks into the webhook app); time moves
only through the shared FakeClock, and pacing waits are recorded instead of slept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from ml_connector.channels.http import AsgiTransport, Headers, HttpResponse
from ml_connector.channels.sms import SmsChannel
from ml_connector.channels.twilio_api import TwilioClient
from ml_connector.compliance.pacing import MIN_FACTOR
from ml_connector.core.lifecycle import RANK
from ml_connector.core.models import Status, StatusEvent
from ml_connector.demo import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN
from ml_connector.runtime import dispatcher as dispatcher_module
from ml_connector.runtime.dispatcher import DEFER_EARLY, MAX_PACING_WAIT
from ml_connector.sim.twilio import FaultRule, Outcome
from ml_connector.store.port import ApplyResult
from tests.runtime.support import (
    PHONE,
    SENDER_KEY,
    Sleeps,
    SpyChannel,
    codes,
    enqueue,
    harness,
    notification,
    outcomes,
    view,
)
from tests.support.pipeline import Pipeline, pipeline


@pytest.fixture(params=[pytest.param(None, id="sqlite"),
                        pytest.param("postgres", id="postgresql", marks=pytest.mark.postgres)])
async def p(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Pipeline]:
    url = None if request.param is None else str(request.getfixturevalue("pg_schema_url"))
    async with pipeline(tmp_path, store_url=url) as running:
        yield running


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with pipeline(tmp_path) as running:
        yield running


CREATE = "create_message"


# -- 429 ----------------------------------------------------------------------------------------


async def test_429_with_retry_after_is_retried_no_earlier_than_it_says(p: Pipeline) -> None:
    h = harness(p)
    p.sim.set_faults([FaultRule("429", operation=CREATE, count=1, retry_after=30)])
    [nid] = enqueue(p, notification(p.clock()))

    await h.dispatch(p)
    first = view(p, nid)
    assert first.status is Status.PENDING
    assert outcomes(first) == ["transient"] and codes(first) == [20429]
    assert first.next_attempt_at == p.clock() + timedelta(seconds=30)  # jitter 0.5 s < Retry-After

    p.clock.advance(29)
    await h.dispatch(p)
    assert len(view(p, nid).attempts) == 1 and p.sim.messages() == []

    p.clock.advance(1)
    await h.dispatch(p)
    done = view(p, nid)
    assert done.status is Status.DELIVERED
    assert outcomes(done) == ["transient", "accepted"]
    assert done.attempts[1].started_at - done.attempts[0].started_at >= timedelta(seconds=30)
    assert [m.sid for m in p.sim.messages()] == [done.provider_id]


async def test_429_without_retry_after_backs_off_with_jitter_and_slows_the_sender(lite: Pipeline) -> None:
    p = lite
    jitter = iter([0.25, 0.75])
    h = harness(p, rand=lambda: next(jitter))
    p.sim.set_faults([FaultRule("429", operation=CREATE, count=2)])
    ids = enqueue(p, notification(p.clock()), notification(p.clock()))

    await h.dispatch(p)
    now = p.clock()
    delays = sorted(view(p, nid).next_attempt_at - now for nid in ids)  # type: ignore[operator]
    # full jitter over base_delay (1 s) for a first failure: 0.25 s and 0.75 s, not in lock-step
    assert delays == [timedelta(seconds=0.25), timedelta(seconds=0.75)]
    # both 429s came from one burst: the sender's rate halves once, not twice
    assert h.pacer.rate(SENDER_KEY) == pytest.approx(5.0)

    p.clock.advance(1)
    await h.dispatch(p)
    assert {view(p, nid).status for nid in ids} == {Status.DELIVERED}


# -- 5xx ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503)])
async def test_500_and_503_are_retried(lite: Pipeline, status: int, code: int) -> None:
    p = lite
    h = harness(p)
    p.sim.set_faults([FaultRule("5xx", operation=CREATE, count=1, status=status)])
    [nid] = enqueue(p, notification(p.clock()))

    await h.dispatch(p)
    assert view(p, nid).status is Status.PENDING
    p.clock.advance(1)
    await h.dispatch(p)

    done = view(p, nid)
    assert done.status is Status.DELIVERED
    assert outcomes(done) == ["transient", "accepted"] and codes(done) == [code, None]
    assert len(p.sim.messages()) == 1


async def test_502_is_in_doubt_and_looked_up_before_any_resend(p: Pipeline) -> None:
    spy = SpyChannel(p.connector.channels["main"])
    h = harness(p, channels={"main": spy})
    p.sim.set_faults([FaultRule("5xx", operation=CREATE, count=1, status=502)])
    [nid] = enqueue(p, notification(p.clock()))

    await h.dispatch(p)
    first = view(p, nid)
    assert first.status is Status.PENDING and outcomes(first) == ["in_doubt"]
    assert "HTTP 502" in (first.attempts[0].error_message or "")
    assert (spy.sends, spy.finds) == (1, 0)

    p.clock.advance(4)
    await h.dispatch(p)
    assert spy.sends == 1, "nothing happens before the in-doubt delay"

    p.clock.advance(1)
    await h.dispatch(p)
    done = view(p, nid)
    assert (spy.finds, spy.sends) == (1, 2), "looked up once, then sent again because it was not there"
    assert done.status is Status.DELIVERED and outcomes(done) == ["in_doubt", "accepted"]
    assert len(p.sim.messages()) == 1


# -- latency and timeouts -----------------------------------------------------------------------


async def test_latency_shows_in_the_attempt_timing(tmp_path: Path) -> None:
    holder: list[Pipeline] = []

    async def sim_sleep(seconds: float) -> None:
        holder[0].clock.advance(seconds)

    async with pipeline(tmp_path, sim_options={"sleep": sim_sleep}) as p:
        holder.append(p)
        h = harness(p)
        p.sim.set_faults([FaultRule("latency", operation=CREATE, seconds=3)])
        [nid] = enqueue(p, notification(p.clock()))
        await h.dispatch(p)
        done = view(p, nid)
        assert done.status is Status.DELIVERED
        [attempt] = done.attempts
        assert attempt.finished_at is not None
        assert attempt.finished_at - attempt.started_at == timedelta(seconds=3)


async def test_timeout_is_in_doubt_then_reconciled_and_sent_once(lite: Pipeline) -> None:
    p = lite
    h = harness(p)
    # in-process, a held request ends as a dropped connection after `seconds`; nothing was created
    p.sim.set_faults([FaultRule("timeout", operation=CREATE, count=1, seconds=0.01)])
    [nid] = enqueue(p, notification(p.clock()))

    await h.dispatch(p)
    assert outcomes(view(p, nid)) == ["in_doubt"] and p.sim.messages() == []

    p.clock.advance(5)
    await h.dispatch(p)
    done = view(p, nid)
    assert done.status is Status.DELIVERED and outcomes(done) == ["in_doubt", "accepted"]
    assert len(p.sim.messages()) == 1


async def test_a_send_still_hanging_when_the_lease_nears_its_end_is_in_doubt(lite: Pipeline) -> None:
    p = lite
    h = harness(p, lease=timedelta(seconds=0.5))  # the attempt gets 0.4 s of real time
    p.sim.set_faults([FaultRule("timeout", operation=CREATE, count=1, seconds=30)])
    [nid] = enqueue(p, notification(p.clock()))

    await h.dispatch(p)
    first = view(p, nid)
    assert outcomes(first) == ["in_doubt"]
    assert first.attempts[0].error_message == "no answer before the lease ran out"
    assert first.status is Status.PENDING  # not SENDING: the lease holder recorded it in time
    p.sim.release_hangs()


# -- drop after accept: adopt, never double ------------------------------------------------------


async def test_drop_after_accept_is_adopted_by_the_next_claim(p: Pipeline) -> None:
    h = harness(p)
    p.sim.set_faults([FaultRule("drop_after_accept", operation=CREATE, count=1)])
    [nid] = enqueue(p, notification(p.clock()))

    await h.dispatch(p)
    [created] = p.sim.messages()          # Twilio has it, we do not know its SID
    first = view(p, nid)
    assert first.provider_id is None and outcomes(first) == ["in_doubt"]

    p.clock.advance(5)
    await h.dispatch(p)
    done = view(p, nid)
    assert outcomes(done) == ["in_doubt", "adopted"]
    assert done.provider_id == created.sid and done.attempts[1].provider_id == created.sid
    assert len(p.sim.messages()) == 1, "exactly one message for the notification"
    # callbacks that arrived before the adoption were kept and now apply
    assert done.status is Status.DELIVERED


async def test_a_failed_look_up_keeps_the_send_in_doubt_and_never_resends(lite: Pipeline) -> None:
    p = lite
    h = harness(p)
    p.sim.set_faults([FaultRule("drop_after_accept", operation=CREATE, count=1),
                      FaultRule("5xx", operation="list_messages", count=1, status=503)])
    [nid] = enqueue(p, notification(p.clock()))
    await h.dispatch(p)

    p.clock.advance(5)
    await h.dispatch(p)
    second = view(p, nid)
    assert outcomes(second) == ["in_doubt", "lookup_failed"]
    assert second.attempts[1].error_message is not None
    assert second.attempts[1].error_message.startswith("reconciliation failed")
    assert len(p.sim.messages()) == 1

    p.clock.advance(30)
    await h.dispatch(p)
    done = view(p, nid)
    assert outcomes(done) == ["in_doubt", "lookup_failed", "adopted"]
    assert len(p.sim.messages()) == 1 and done.status is Status.DELIVERED


async def test_an_unexpected_look_up_error_is_not_a_reason_to_send(lite: Pipeline) -> None:
    p = lite
    spy = SpyChannel(p.connector.channels["main"])
    h = harness(p, channels={"main": spy})
    p.sim.set_faults([FaultRule("drop_after_accept", operation=CREATE, count=1)])
    [nid] = enqueue(p, notification(p.clock()))
    await h.dispatch(p)

    spy.find_error = RuntimeError("bug in the look-up")
    p.clock.advance(5)
    await h.dispatch(p)
    after = view(p, nid)
    assert outcomes(after) == ["in_doubt", "lookup_failed"]
    assert after.attempts[1].error_message == "internal error: RuntimeError"
    assert spy.sends == 1 and len(p.sim.messages()) == 1


# -- callbacks ----------------------------------------------------------------------------------


async def test_callbacks_out_of_order_never_move_the_status_backwards(p: Pipeline) -> None:
    h = harness(p)
    p.sim.set_faults([FaultRule("callbacks_out_of_order", operation=CREATE)])
    [nid] = enqueue(p, notification(p.clock()))
    await h.dispatch(p)

    done = view(p, nid)
    [message] = p.sim.messages()
    assert [c.status for c in message.callbacks] == ["delivered", "sent"], "Twilio reported them reversed"
    assert done.status is Status.DELIVERED and message.sid == done.provider_id
    # a report may beat the send's own commit: it waits as an orphan and applies on adoption
    results = dict(_reports(p, message.sid))
    assert results["sent"] in ("stale", "applied") and results["delivered"] == "applied"
    assert _statuses(p, nid) == sorted(_statuses(p, nid), key=RANK.__getitem__), "only forward"
    assert _statuses(p, nid)[-1] is Status.DELIVERED


async def test_duplicated_callbacks_are_recorded_once(p: Pipeline) -> None:
    h = harness(p)
    p.sim.set_faults([FaultRule("callbacks_duplicated", operation=CREATE)])
    [nid] = enqueue(p, notification(p.clock()))
    await h.dispatch(p)

    done = view(p, nid)
    [message] = p.sim.messages()
    assert [c.status for c in message.callbacks] == ["sent", "sent", "delivered", "delivered"]
    assert done.status is Status.DELIVERED
    reports = _reports(p, message.sid)
    # first copies apply (perhaps after waiting as orphans for the send's commit); second copies do nothing
    assert [r for r in reports if r[1] == "duplicate"] == [("sent", "duplicate"), ("delivered", "duplicate")]
    assert sorted(r for r in reports if r[1] == "applied") == [("delivered", "applied"), ("sent", "applied")]
    assert _statuses(p, nid).count(Status.DELIVERED) == 1


def _reports(p: Pipeline, sid: str) -> list[tuple[str, str]]:
    """(provider status, result) of each status report the store judged for `sid`, in order
    (an orphan's later adoption shows as its own entry)."""
    return [(e.detail["provider_status"], e.detail["result"]) for e in p.audit()
            if e.kind in ("status", "orphan") and e.detail.get("provider_id") == sid]


def _statuses(p: Pipeline, nid: int) -> list[Status]:
    """Every status the notification took, in order, as the audit trail shows it."""
    taken: list[Status] = []
    for e in p.audit():
        if e.notification_id == nid and e.status and (not taken or taken[-1].value != e.status):
            taken.append(Status(e.status))
    return taken


async def test_a_stale_report_does_not_rewrite_the_attempts_provider_status(lite: Pipeline) -> None:
    p = lite
    h = harness(p)
    [nid] = enqueue(p, notification(p.clock()))
    await h.dispatch(p)
    done = view(p, nid)
    assert done.status is Status.DELIVERED and done.provider_id is not None
    # Not the "sent" already received (that one is a duplicate): a report older than anything seen.
    late = StatusEvent(done.provider_id, "queued", None, p.clock(), {"MessageStatus": "queued"})
    assert p.connector.store.apply_status(late) is ApplyResult.STALE
    assert view(p, nid).attempts[0].provider_status == "delivered"


# -- permanent errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(("to", "code"), [
    ("+15005550001", 21211), ("+15005550004", 21610), ("+15005550003", 21408), ("+15005550009", 21614),
])
async def test_permanent_errors_fail_at_once_with_twilios_code_and_message(
    lite: Pipeline, to: str, code: int
) -> None:
    p = lite
    h = harness(p)
    [nid] = enqueue(p, notification(p.clock(), recipient=to))
    await h.dispatch(p)

    done = view(p, nid)
    assert done.status is Status.FAILED
    assert done.error_code == code and done.next_attempt_at is None
    [attempt] = done.attempts
    assert (attempt.outcome, attempt.error_code) == ("permanent", code)
    assert attempt.error_message and to not in attempt.error_message
    assert str(code) in done.problem
    assert p.sim.messages() == []


# -- retry budget -------------------------------------------------------------------------------


async def test_retries_exhaust_into_dead_and_a_replay_gets_a_full_round(p: Pipeline) -> None:
    h = harness(p)
    p.sim.set_faults([FaultRule("5xx", operation=CREATE, status=500)])
    [nid] = enqueue(p, notification(p.clock()))
    for _ in range(6):
        await h.dispatch(p)
        p.clock.advance(10)

    dead = view(p, nid)
    assert dead.status is Status.DEAD and dead.reason == "retries exhausted"
    assert outcomes(dead) == ["transient"] * 4 and codes(dead) == [20500] * 4
    assert [t.attempt_no for t in dead.attempts] == [1, 2, 3, 4]
    assert all(t.finished_at is not None for t in dead.attempts)

    assert p.connector.store.replay([nid], p.clock(), actor="test") == [nid]
    for _ in range(6):
        await h.dispatch(p)
        p.clock.advance(10)
    again = view(p, nid)
    assert again.status is Status.DEAD
    assert len(again.attempts) == 8, "the replay round has its own four attempts"

    p.sim.set_faults([])
    p.connector.store.replay([nid], p.clock(), actor="test")
    await h.dispatch(p)
    assert view(p, nid).status is Status.DELIVERED
    assert len(p.sim.messages()) == 1


# -- adaptive slow-down -------------------------------------------------------------------------


async def test_sender_queue_full_21611_slows_the_sender_and_it_recovers(lite: Pipeline) -> None:
    p = lite
    full = "+15005550008"  # the simulator answers 21611 for this From
    h = harness(p, mps={SENDER_KEY: 10.0, f"main.{full}": 4.0})
    [nid] = enqueue(p, notification(p.clock(), sender=full))
    await h.dispatch(p)

    after = view(p, nid)
    assert outcomes(after) == ["transient"] and codes(after) == [21611]
    assert h.pacer.rate(f"main.{full}") == pytest.approx(2.0)
    assert h.pacer.rate(SENDER_KEY) == pytest.approx(10.0), "other senders keep their pace"
    h.pace_clock.now += 60
    assert h.pacer.rate(f"main.{full}") == pytest.approx(4.0)


async def test_repeated_push_back_slows_down_to_the_floor(lite: Pipeline) -> None:
    p = lite
    h = harness(p)
    p.sim.set_faults([FaultRule("429", operation=CREATE)])
    [nid] = enqueue(p, notification(p.clock(), max_attempts=50))
    for _ in range(8):
        h.pace_clock.now += 1.5  # each push-back its own episode
        await h.dispatch(p)
        p.clock.advance(10)
    assert h.pacer.rate(SENDER_KEY) == pytest.approx(10.0 * MIN_FACTOR)
    assert len(view(p, nid).attempts) == 8


# -- pacing inside the dispatcher ---------------------------------------------------------------


async def test_long_pacing_waits_go_back_to_the_store_lined_up_at_the_senders_rate(lite: Pipeline) -> None:
    p = lite
    h = harness(p, mps={SENDER_KEY: 1.0})
    ids = enqueue(p, *(notification(p.clock()) for _ in range(6)))
    await h.dispatcher.run_until_idle()
    await p.sim.drain()

    assert h.sleeps.waits == [1.0, 2.0], f"waits held in a slot stay within {MAX_PACING_WAIT} s"
    views = [view(p, nid) for nid in ids]
    sent = [v for v in views if v.status is Status.DELIVERED]
    deferred = [v for v in views if v.status is Status.PENDING]
    assert (len(sent), len(deferred)) == (3, 3)
    for v in deferred:
        assert v.attempts == () and v.attempts_made == 0, "a deferral is not an attempt"
    # they come back one per second after the sends already booked (a little early), not all at once
    early = timedelta(seconds=DEFER_EARLY)
    assert sorted(v.next_attempt_at - p.clock() for v in deferred) == [  # type: ignore[operator]
        timedelta(seconds=3) - early, timedelta(seconds=4) - early, timedelta(seconds=5) - early]
    assert len(p.sim.messages()) == 3


async def test_a_short_lease_bounds_the_pacing_wait(lite: Pipeline) -> None:
    p = lite
    h = harness(p, mps={SENDER_KEY: 1.0}, lease=timedelta(seconds=2))  # 1.6 s for the attempt
    ids = enqueue(p, *(notification(p.clock()) for _ in range(3)))
    await h.dispatch(p)
    assert h.sleeps.waits == []  # a 1 s wait is more than half of what the lease leaves
    assert [view(p, nid).status for nid in ids] == [Status.DELIVERED, Status.PENDING, Status.PENDING]


async def test_a_slow_senders_backlog_does_not_hold_the_slots_of_others(lite: Pipeline) -> None:
    p = lite
    slow, fast = "+15005550101", "+15005550110"
    p.sim.accounts[DEMO_ACCOUNT_SID] = replace(p.sim.accounts[DEMO_ACCOUNT_SID], numbers=(slow, fast))
    sleeps = Sleeps(gate=asyncio.Event(), gate_over=0.5)  # the slow sender's waits last until shutdown
    h = harness(p, mps={f"main.{slow}": 1.0, f"main.{fast}": 100.0}, concurrency=4, sleeps=sleeps)
    enqueue(p, *(notification(p.clock(), sender=slow) for _ in range(20)))
    fast_ids = enqueue(p, *(notification(p.clock(), sender=fast) for _ in range(8)))
    stop = asyncio.Event()
    task = asyncio.create_task(h.dispatcher.run(stop))
    for _ in range(300):
        await asyncio.sleep(0.01)
        if {view(p, nid).status for nid in fast_ids} <= {Status.QUEUED, Status.SENT, Status.DELIVERED}:
            break
    stop.set()
    await asyncio.wait_for(task, 10)
    await p.sim.drain()
    assert {view(p, nid).status for nid in fast_ids} == {Status.DELIVERED}
    assert sum(m.from_ == slow for m in p.sim.messages()) == 1, "the slow sender is still paced"


async def test_a_multi_segment_message_holds_the_sender_for_its_segments(lite: Pipeline) -> None:
    p = lite
    h = harness(p, mps={SENDER_KEY: 1.0})
    long_body = "x" * 300  # GSM-7, 2 segments
    enqueue(p, notification(p.clock(), body=long_body), notification(p.clock()))
    await h.dispatch(p)
    assert h.sleeps.waits == [2.0]
    assert sorted(m.resource["num_segments"] for m in p.sim.messages()) == ["1", "2"]


async def test_concurrency_bounds_sends_in_flight(lite: Pipeline) -> None:
    p = lite
    spy = SpyChannel(p.connector.channels["main"])
    spy.gate = asyncio.Event()
    h = harness(p, channels={"main": spy}, concurrency=2, mps={SENDER_KEY: 1000.0})
    ids = enqueue(p, *(notification(p.clock()) for _ in range(5)))
    task = asyncio.create_task(h.dispatcher.run_until_idle())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if spy.sending == 2:
            break
    sending = [v for v in (view(p, nid) for nid in ids) if v.status is Status.SENDING]
    assert len(sending) == 2, "no row is claimed without a free slot"
    spy.gate.set()
    await asyncio.wait_for(task, 10)
    await p.sim.drain()
    assert spy.most_sending == 2
    assert {view(p, nid).status for nid in ids} == {Status.DELIVERED}


async def test_shutdown_finishes_sends_under_way_and_hands_back_paced_ones(lite: Pipeline) -> None:
    p = lite
    sleeps = Sleeps(gate=asyncio.Event())  # pacing waits never end by themselves
    h = harness(p, mps={SENDER_KEY: 1.0}, sleeps=sleeps)
    ids = enqueue(p, *(notification(p.clock()) for _ in range(3)))
    stop = asyncio.Event()
    task = asyncio.create_task(h.dispatcher.run(stop))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if len(p.sim.messages()) == 1 and len(sleeps.waits) == 2:
            break
    stop.set()
    await asyncio.wait_for(task, 10)
    await p.sim.drain()

    views = sorted((view(p, nid) for nid in ids), key=lambda v: v.id)
    assert [v.status for v in views] == [Status.DELIVERED, Status.PENDING, Status.PENDING]
    for v in views[1:]:
        assert v.attempts == () and v.next_attempt_at == p.clock()
    assert len(p.sim.messages()) == 1


async def test_a_sender_missing_from_the_configuration_fails_with_a_clear_reason(lite: Pipeline) -> None:
    p = lite
    h = harness(p)
    [nid] = enqueue(p, notification(p.clock(), sender="+15005550010"))
    await h.dispatch(p)
    done = view(p, nid)
    assert done.status is Status.FAILED
    assert done.problem.startswith("sender '+") and done.problem.endswith("is not configured for account 'main'")
    assert p.sim.messages() == []


async def test_delivery_failure_reported_later_keeps_twilios_code(lite: Pipeline) -> None:
    p = lite
    h = harness(p)
    p.sim.set_outcome(PHONE, Outcome(status="undelivered", error_code=30003))
    [nid] = enqueue(p, notification(p.clock()))
    await h.dispatch(p)
    done = view(p, nid)
    assert done.status is Status.UNDELIVERED and done.error_code == 30003
    [attempt] = done.attempts
    assert attempt.outcome == "accepted" and attempt.provider_id == done.provider_id


class GatewayTimeout:
    """A proxy in front of the simulator that forwards the first create, then answers 504 itself."""

    def __init__(self, inner: AsgiTransport) -> None:
        self.inner = inner
        self.tripped = False

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None, timeout: float  # noqa: ASYNC109
    ) -> HttpResponse:
        response = await self.inner.request(method, url, headers=headers, body=body, timeout=timeout)
        if method == "POST" and url.endswith("/Messages.json") and not self.tripped:
            self.tripped = True
            page = b"<html><body><h1>504 Gateway Time-out</h1></body></html>"
            return HttpResponse(504, Headers([("content-type", "text/html")]), page)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_504_after_twilio_took_the_message_is_adopted_not_resent(lite: Pipeline) -> None:
    p = lite
    client = TwilioClient(DEMO_ACCOUNT_SID, auth_token=DEMO_AUTH_TOKEN, base_url="http://127.0.0.1:1",
                          transport=GatewayTimeout(AsgiTransport(p.sim.create_app())))
    spy = SpyChannel(SmsChannel(client))
    try:
        h = harness(p, channels={"main": spy})
        [nid] = enqueue(p, notification(p.clock()))
        await h.dispatch(p)
        first = view(p, nid)
        assert outcomes(first) == ["in_doubt"] and "504" in (first.attempts[0].error_message or "")
        [created] = p.sim.messages()

        p.clock.advance(5)
        await h.dispatch(p)
        done = view(p, nid)
        assert outcomes(done) == ["in_doubt", "adopted"] and done.provider_id == created.sid
        assert (spy.sends, spy.finds) == (1, 1)
        assert len(p.sim.messages()) == 1 and done.status is Status.DELIVERED
    finally:
        await client.aclose()


# -- queue overflow reported after the create succeeded (30001) ------------------------------------


async def test_queue_overflow_reported_by_callback_slows_the_sender_once(
    p: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatcher_module, "PUSH_BACK_CHECK", timedelta(milliseconds=20))
    h = harness(p)
    [nid, other] = enqueue(p, notification(p.clock()), notification(p.clock()))
    await h.dispatch(p)
    sid = view(p, nid).provider_id
    assert sid is not None and h.pacer.rate(SENDER_KEY) == pytest.approx(10.0)
    # Twilio accepted the message, then its Messaging Service queue overflowed: a failed callback.
    raw = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "30001"}
    report = StatusEvent(sid, "failed", 30001, p.clock() - timedelta(seconds=1), raw)
    assert p.connector.store.apply_statuses([report]) == [ApplyResult.STALE]  # delivered already: kept, no move
    assert p.connector.store.errors_reported((30001,), p.clock() - timedelta(minutes=1), p.clock())

    async def run_for(seconds: float) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(h.dispatcher.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait_for(task, 10)

    await run_for(0.2)  # several looks: the one report slows the sender once
    assert h.pacer.rate(SENDER_KEY) == pytest.approx(5.0)
    assert view(p, other).status is Status.DELIVERED
    h.pace_clock.now += 2  # recovered 2 x 2% meanwhile
    await run_for(0.1)  # a restarted dispatcher looks back PUSH_BACK_LATE: the same report counts once more
    assert h.pacer.rate(SENDER_KEY) == pytest.approx(10.0 * (0.5 + 0.04) / 2)
