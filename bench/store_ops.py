"""What one message costs the store, single-threaded: the bound under benchmarks 1, 2 and 4.

    python bench/store_ops.py --messages 3000 --store sqlite postgres [--batch 100] [--profile]

Per message the pipeline makes these store calls: a share of one `commit_poll` (1000 per call
here) and of one `claim_due` (200 per call, the dispatcher's batch), one `finish_attempt`
and two `apply_status` (sent, delivered). Each is timed on its own, one thread, no HTTP, so
the figures are the store's own cost. `--batch N` hands attempt results and status reports to
the store N at a time (`finish_attempts`, `apply_statuses`), as the dispatcher's and the webhook
server's batchers do under load; the default, 1, is one call per result or report. `--profile`
prints cProfile's top functions for the apply_status phase.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import SENDER, machine, phone, postgres_schema, print_table

from ml_connector.core.models import Status, StatusEvent
from ml_connector.store.crypto import KeyRing, create_key_file, load_keyring
from ml_connector.store.port import AttemptResult, NewNotification, Outcome, PollCommit
from ml_connector.store.sql import SqlStore


def new(i: int, now: datetime) -> NewNotification:
    return NewNotification(
        idempotency_key=f"ops-{i}", flow="bench", entity="queue", record_key=str(i), event_version="1",
        channel="sms", account="main", sender=SENDER, recipient=phone(i), recipient_field="phone",
        body=f"Order {i:07d} is ready.", status=Status.PENDING, reason=None, next_attempt_at=now,
        max_attempts=4, segments=1, record_changed_at=now,
    )


def event(sid: str, status: str, now: datetime) -> StatusEvent:
    raw = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "a" * 32}
    return StatusEvent(provider_id=sid, provider_status=status, error_code=None, received_at=now, raw=raw)


def measure(store: SqlStore, messages: int, profile: bool, size: int) -> list[list[object]]:
    now = datetime.now(UTC)
    rows: list[list[object]] = []

    def timed(name: str, calls: int, work: Callable[[], object]) -> None:
        started = time.perf_counter()
        work()
        seconds = time.perf_counter() - started
        rows.append([name, calls, f"{seconds:.2f} s", f"{seconds / calls * 1000:.2f} ms",
                     f"{seconds / messages * 1000:.3f} ms", f"{messages / seconds:,.0f}"])

    batch = [new(i, now) for i in range(messages)]
    timed("commit_poll (1000 per call)", -(-messages // 1000), lambda: [
        store.commit_poll(PollCommit("bench", "main", None, (), batch[s:s + 1000], now))
        for s in range(0, messages, 1000)])
    claimed = []

    def claim() -> None:
        while got := store.claim_due("ops", now, timedelta(minutes=10), 200):
            claimed.extend(got)
    timed("claim_due (200 per call)", -(-messages // 200), claim)
    def finish_all() -> None:
        results = [AttemptResult(r.id, r.attempt_no, Outcome.ACCEPTED, now, now,
                                 provider_id=f"SM{r.id:032x}", provider_status="queued") for r in claimed]
        for s in range(0, len(results), size):
            store.finish_attempts(results[s:s + size])
    timed(f"finish_attempts ({size} per call)", -(-messages // size), finish_all)
    profiler = cProfile.Profile() if profile else None

    def apply_all() -> None:
        with profiler or contextlib.nullcontext():
            for status in ("sent", "delivered"):
                events = [event(f"SM{r.id:032x}", status, now) for r in claimed]
                for s in range(0, len(events), size):
                    store.apply_statuses(events[s:s + size])
    timed(f"apply_statuses x 2 ({size} per call)", -(-2 * messages // size), apply_all)
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--store", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"])
    parser.add_argument("--batch", type=int, default=1, help="results / reports per store call")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="mlc-bench-") as tmp:
        create_key_file(Path(tmp) / "k.key")
        keyring: KeyRing = load_keyring(Path(tmp) / "k.key", {})
        for name in args.store:
            with contextlib.ExitStack() as stack:
                url = (stack.enter_context(postgres_schema()) if name == "postgres"
                       else f"sqlite:///{Path(tmp) / 'store.db'}")
                store = SqlStore(url, keyring)
                try:
                    rows = measure(store, args.messages, args.profile, args.batch)
                finally:
                    store.close()
            total = sum(float(str(r[4]).split()[0]) for r in rows)
            print(f"\n{name}: {args.messages} messages, one thread")
            print_table(["store call", "calls", "time", "per call", "per message", "messages/s"], rows)
            print(f"store time per message, all calls: {total:.2f} ms -> at most {1000 / total:,.0f} "
                  f"messages/s through one writer")


if __name__ == "__main__":
    main()
