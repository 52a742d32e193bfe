"""Real-time pacing: the dispatcher sending to the in-process Twilio simulator for a minute.

Three senders (MPS 1, 3 and 10) share one dispatcher, each with a backlog larger than a minute
can carry. The rate is measured where Twilio would measure it: the simulator's creation time of
each message, over the 60 s after each sender's first message. Prints the rate as a ratio to the
configured MPS (1.000 is exact).

    python bench/pacing.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ml_connector.channels.http import AsgiTransport
from ml_connector.channels.sms import SmsChannel
from ml_connector.channels.twilio_api import TwilioClient
from ml_connector.compliance.pacing import Pacer
from ml_connector.core.models import Status
from ml_connector.core.retry import RetryPolicy
from ml_connector.demo import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN
from ml_connector.runtime.dispatcher import Dispatcher, DispatcherSettings
from ml_connector.runtime.loop import run
from ml_connector.sim.twilio import Account, TwilioSim
from ml_connector.store.crypto import create_key_file, load_keyring
from ml_connector.store.port import NewNotification, PollCommit
from ml_connector.store.sql import SqlStore

SENDERS = {"+15005550101": 1.0, "+15005550103": 3.0, "+15005550110": 10.0}
FLOW = "bench"


def utcnow() -> datetime:
    return datetime.now(UTC)


def backlog(seconds: float, now: datetime) -> list[NewNotification]:
    keys = itertools.count()
    notes = []
    for sender, mps in SENDERS.items():
        for _ in range(int(mps * (seconds + 15))):
            i = next(keys)
            notes.append(NewNotification(
                idempotency_key=f"bench:{i}", flow=FLOW, entity="e", record_key=str(i), event_version="v1",
                channel="sms", account="main", sender=sender, recipient=f"+1312555{i % 10000:04d}",
                recipient_field="static", body=f"Pacing check {i}", status=Status.PENDING, reason=None,
                next_attempt_at=now, max_attempts=3, segments=1, record_changed_at=now,
            ))
    return notes


async def measure(seconds: float, workdir: Path) -> dict[str, tuple[float, float]]:
    create_key_file(workdir / "key")
    store = SqlStore(f"sqlite:///{workdir / 'bench.db'}", load_keyring(workdir / "key", {}))
    sim = TwilioSim(accounts=(Account(sid=DEMO_ACCOUNT_SID, auth_token=DEMO_AUTH_TOKEN, numbers=tuple(SENDERS)),),
                    api_keys=(), services=(), callback_delay=(0, 0))
    client = TwilioClient(DEMO_ACCOUNT_SID, auth_token=DEMO_AUTH_TOKEN, base_url="http://127.0.0.1:1",
                          transport=AsgiTransport(sim.create_app()))
    try:
        store.commit_poll(PollCommit(flow=FLOW, watermark_kind="main", watermark=None, states=[],
                                     notifications=backlog(seconds, utcnow()), polled_at=utcnow()))
        dispatcher = Dispatcher(
            store, {"main": SmsChannel(client)}, Pacer({f"main.{s}": mps for s, mps in SENDERS.items()}),
            {FLOW: RetryPolicy.immediate()}, DispatcherSettings(worker="bench", idle_poll=timedelta(seconds=0.05)),
            clock=utcnow,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(seconds + 2)
        stop.set()
        await running
        await sim.drain()
        ratios = {}
        for sender, mps in SENDERS.items():
            created = sorted(m.statuses[0].at for m in sim.messages() if m.from_ == sender)
            window_end = created[0] + timedelta(seconds=seconds)
            in_window = [t for t in created if t < window_end]
            gaps = [(b - a).total_seconds() * mps for a, b in itertools.pairwise(in_window)]
            ratios[sender] = (len(in_window) / seconds / mps, max(gaps, default=0.0))
        return ratios
    finally:
        await client.aclose()
        await sim.aclose()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ratios = run(measure(args.seconds, Path(tmp)))
    print(f"measured over {args.seconds:g} s (simulator creation times)")
    print(f"{'MPS':>5}  {'messages/s':>10}  {'ratio':>6}  {'longest gap (slots)':>19}")
    for sender, mps in SENDERS.items():
        ratio, gap = ratios[sender]
        print(f"{mps:>5g}  {ratio * mps:>10.3f}  {ratio:>6.3f}  {gap:>19.2f}")


if __name__ == "__main__":
    main()
