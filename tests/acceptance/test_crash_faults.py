"""Many SIGKILLs at random moments while Twilio misbehaves and the ERP keeps changing.

The connector is killed 18 times (MLC_CRASH_KILLS), each time at a moment picked by a seeded RNG:
while starting and polling, between enqueue and send, mid-send, or while status callbacks arrive.
The Twilio simulator plays a fault plan meanwhile (5xx, 429 with and without Retry-After, latency,
answers lost after the message was accepted, hanging requests, failing reconciliation lists,
duplicate and out-of-order callbacks). After a last clean run (no kills, no faults) lets everything
settle, every ERP event has exactly one message accepted by the simulator or a recorded permanent
failure, no message was accepted twice, and every status the simulator reported is in the audit
export.

Replay a run with MLC_CRASH_SEED=<the printed seed>.
"""

from __future__ import annotations

import collections
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ml_connector.core.models import Status
from ml_connector.sim.twilio_faults import FaultRule
from tests.support.processes import EventMaker, Rig, crash_seed, judge

FAULTS = (
    FaultRule("latency", probability=0.3, seconds=0.3),
    FaultRule("5xx", "create_message", probability=0.05, status=500),
    FaultRule("5xx", "create_message", probability=0.03, status=502),
    FaultRule("5xx", "create_message", probability=0.03, status=503),
    FaultRule("429", "create_message", probability=0.05, retry_after=1),
    FaultRule("429", "create_message", probability=0.05),
    FaultRule("drop_after_accept", "create_message", probability=0.08),
    FaultRule("timeout", "create_message", probability=0.02, seconds=1.0),
    FaultRule("5xx", "list_messages", probability=0.1, status=503),
    FaultRule("callbacks_out_of_order", "create_message", probability=0.2),
    FaultRule("callbacks_duplicated", "create_message", probability=0.2),
)
#: How long to wait for a chosen moment before killing anyway.
MOMENT_WAIT = 4.0


def _produce(maker: EventMaker, stop: threading.Event, errors: list[BaseException]) -> None:
    """The ERP at work: a business action every 0.1-0.4 s until told to stop."""
    pace = random.Random(maker.rng.random())
    try:
        while not stop.wait(pace.uniform(0.1, 0.4)):
            maker.step()
    except BaseException as exc:  # surfaced by the test after join()
        errors.append(exc)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _moments(rig: Rig, since: datetime, webhook_port: int) -> dict[str, Callable[[], bool]]:
    """Named moments to kill at; each says whether the connector started after `since` is there now."""

    def fresh(status: Status) -> bool:
        return any(n.status is status and n.updated_at >= since for n in rig.notifications())

    return {
        "polling": lambda: True,  # right away: while starting up and polling (after a random pause)
        "between enqueue and send": lambda: fresh(Status.PENDING),
        "mid-send": lambda: fresh(Status.SENDING),
        "while webhooks arrive": lambda: _listening(webhook_port) and rig.sim.pending() > 0,
    }


@pytest.mark.slow
def test_many_sigkills_under_twilio_faults_lose_nothing_and_send_nothing_twice(tmp_path: Path) -> None:
    seed = crash_seed()
    rng = random.Random(seed)
    kills = int(os.environ.get("MLC_CRASH_KILLS", "18"))
    began = time.monotonic()
    with Rig.open(tmp_path, lease="PT4S", max_attempts=12) as rig:
        rig.start_simulator()
        rig.sim.set_faults(FAULTS, seed=seed)
        rig.start_connector()
        rig.wait_polling()
        maker = EventMaker(rig.erp, seed)
        stop, errors = threading.Event(), list[BaseException]()
        producer = threading.Thread(target=_produce, args=(maker, stop, errors), daemon=True)
        producer.start()
        seen: collections.Counter[str] = collections.Counter()
        try:
            for kill in range(kills):
                if kill:
                    rig.start_connector()
                since = datetime.now(UTC)
                moments = _moments(rig, since, rig.webhook_port)
                name = rng.choice(sorted(moments))
                time.sleep(rng.uniform(0.2, 1.5) if name == "polling" else 0.3)
                deadline = time.monotonic() + MOMENT_WAIT
                while not moments[name]() and time.monotonic() < deadline:
                    time.sleep(0.03)
                seen[name if time.monotonic() < deadline else f"{name} (not seen, killed anyway)"] += 1
                rig.kill_connector()
                time.sleep(rng.uniform(0.0, 0.5))  # down for a while: callbacks in this gap are refused
        finally:
            stop.set()
            producer.join(timeout=10)
        assert not errors, f"the ERP event producer failed: {errors[0]!r}"

        # The last, clean run: no kills and no faults. Reconciliation backs off with the time a send has
        # been in doubt (half of it, at least 5 s), so under a fault plan a row in doubt since the first
        # kill could wait minutes more; without faults every row settles in one more round.
        rig.sim.set_faults([], seed=seed)
        rig.start_connector()
        rig.wait_settled(len(maker.events), timeout=90)
        audit = rig.audit_export()
        messages = rig.sim.messages()
        views = rig.notifications()
        verdict = judge(maker.events, views, messages, audit)
        rig.stop_connector()

    print(f"seed {seed}: {kills} kills at {dict(seen)}; {len(maker.events)} events; {verdict.summary()}; "
          f"{time.monotonic() - began:.0f} s")
    for line in verdict.lost_callbacks:
        print(f"  final status never reached the connector: {line}")
    accepted_bodies = {str(m["resource"]["body"]) for m in messages}
    dead_never_sent = [v.id for v in views if v.status is Status.DEAD and v.body not in accepted_bodies]
    assert dead_never_sent == [], f"seed {seed}: dead though Twilio never accepted them: {dead_never_sent}"
    assert verdict.problems == [], f"seed {seed}: " + "\n".join(verdict.problems)
    assert verdict.accepted + verdict.failed == len(maker.events)
    reconciled = [row for row in audit if row["kind"] == "claimed" and row["detail"]["in_doubt"]]
    assert reconciled, "no send was ever in doubt: the kills did not hit a send"
