"""Benchmark 4: signed status callbacks per second into the webhook app, durable in the store.

    python bench/webhooks.py --messages 3000 --concurrency 64 --store sqlite postgres

The store is seeded with `--messages` notifications already accepted by "Twilio" (each with
its SID), the connector's webhook app is served on loopback (uvicorn, as `ml-connector run`
serves it), and a second process plays Twilio: for every SID it posts `sent` then
`delivered`, signed with twilio-python's RequestValidator (an independent implementation),
`--concurrency` SIDs at a time, timing each request. Afterwards every callback must be a
delivery event in the store and every notification delivered. For comparison the same
server stack answers the same load at an endpoint that does nothing (the ceiling of
uvicorn + Starlette on this machine, without signature checks or the store), and the webhook
app itself answers it with a store that records nothing (everything between the socket and
`Store.apply_statuses`: parsing, the signature check, metrics, batching).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import sqlalchemy as sa
import yaml
from common import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SENDER,
    audit_kinds,
    bench_config,
    machine,
    phone,
    postgres_schema,
    print_table,
    status_counts,
    store_engine,
)

from ml_connector.app import Connector
from ml_connector.config import load_config
from ml_connector.core.models import Status, StatusEvent
from ml_connector.demo import free_port
from ml_connector.runtime.loop import LOOP_ENV, run
from ml_connector.store.crypto import create_key_file
from ml_connector.store.port import ApplyResult, AttemptResult, NewNotification, Outcome, PollCommit
from ml_connector.web.server import freeze_long_lived_objects, serving
from ml_connector.web.webhooks import create_webhook_app

STATUS_PATH = "/twilio/status"


# -- the load generator (second process) ------------------------------------------------------


async def post_callbacks(url: str, sids: list[str], concurrency: int) -> dict[str, Any]:
    """Post sent + delivered for each SID; returns counts, wall time and per-request latencies.

    Bodies and signatures are prepared before the clock starts (Twilio signs on its own
    machines), so the generator's CPU goes to the requests and the figure measures the server.
    """
    from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

    validator = RequestValidator(AUTH_TOKEN)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[list[tuple[bytes, dict[str, str]]]] = asyncio.Queue()
    for sid in sids:
        requests = []
        for status in ("sent", "delivered"):
            params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                      "AccountSid": ACCOUNT_SID, "From": SENDER, "To": "+13125550100",
                      "ApiVersion": "2010-04-01"}
            headers = {"X-Twilio-Signature": validator.compute_signature(url, params),
                       "Content-Type": "application/x-www-form-urlencoded"}
            requests.append((urlencode(params).encode(), headers))
        queue.put_nowait(requests)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            for body, headers in queue.get_nowait():  # sent, then delivered, one after the other
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
                statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"wall": wall, "latencies": latencies, "statuses": statuses}


def client_main(url: str, sids_file: Path, concurrency: int) -> None:
    sids = sids_file.read_text().split()
    print(json.dumps(run(post_callbacks(url, sids, concurrency))))


def load_from_process(url: str, sids_file: Path, concurrency: int) -> dict[str, Any]:
    """Run the load generator as a separate process and read its JSON result.

    It always runs on the default loop (uvloop where installed), whatever MLC_EVENT_LOOP says
    for the server, so that comparing server loops does not change the load.
    """
    env = {name: value for name, value in os.environ.items() if name != LOOP_ENV}
    out = subprocess.run([sys.executable, __file__, "--client", url, "--sids-file", str(sids_file),
                          "--concurrency", str(concurrency)], capture_output=True, text=True, check=True,
                         timeout=600, env=env)
    return dict(json.loads(out.stdout))


# -- seeding -----------------------------------------------------------------------------------


def seed(connector: Connector, count: int) -> list[str]:
    """`count` notifications, claimed and accepted with a SID each, as after a dispatch."""
    store = connector.store
    now = datetime.now(UTC)
    notifications = [
        NewNotification(
            idempotency_key=f"bench-{i}", flow="bench", entity="queue", record_key=str(i), event_version="1",
            channel="sms", account="main", sender=SENDER, recipient=phone(i), recipient_field="phone",
            body=f"Order {i:07d} is ready.", status=Status.PENDING, reason=None, next_attempt_at=now,
            max_attempts=4, segments=1, record_changed_at=now,
        )
        for i in range(count)
    ]
    for start in range(0, count, 1000):
        store.commit_poll(PollCommit("bench", "main", None, (), notifications[start:start + 1000], now))
    sids: list[str] = []
    while claimed := store.claim_due("bench-seed", now, timedelta(minutes=10), 1000):
        for row in claimed:
            sid = f"SM{row.id:032x}"
            store.finish_attempt(AttemptResult(row.id, row.attempt_no, Outcome.ACCEPTED, now, now,
                                               provider_id=sid, provider_status="queued"))
            sids.append(sid)
    return sids


async def nothing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI endpoint that reads the body and answers 200: the server stack's own ceiling."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b""})


class NullStore:
    """Answers every status report as applied and keeps nothing: the webhook app's own ceiling."""

    def apply_status(self, event: StatusEvent) -> ApplyResult:
        return ApplyResult.APPLIED

    def apply_statuses(self, events: Sequence[StatusEvent]) -> list[ApplyResult]:
        return [ApplyResult.APPLIED] * len(events)


# -- one run -------------------------------------------------------------------------------------


def timed_load(url: str, sids_file: Path, concurrency: int) -> dict[str, Any]:
    """`load_from_process`, plus the CPU this (server) process spent meanwhile, all threads.

    CPU per callback moves less with the machine's other load than callbacks per second do:
    it is the figure to compare when the machine is shared. PostgreSQL's own CPU is not in it.
    """
    cpu = time.process_time()
    result = load_from_process(url, sids_file, concurrency)
    result["server_cpu"] = time.process_time() - cpu
    return result


def summary(name: str, count: int, result: dict[str, Any]) -> list[object]:
    latencies = sorted(result["latencies"])
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    per_second = count / result["wall"]
    ok = result["statuses"].get("200", 0)
    cpu = f"{result['server_cpu'] / count * 1e6:.0f} us"
    return [name, count, ok, f"{result['wall']:.1f} s", f"{per_second:,.0f}", f"{p50:.1f} ms", f"{p99:.1f} ms",
            cpu, f"{per_second / 3000:.0%}"]


async def run_store(directory: Path, store: str, store_url: str, messages: int, concurrency: int
                    ) -> tuple[list[object], str]:
    port = free_port()
    config_path = directory / f"{store}.yaml"
    config = bench_config(directory, store_url=store_url, twilio_url="http://127.0.0.1:9", webhook_port=port,
                          concurrency=concurrency)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    if not (directory / "ml-connector.key").exists():
        create_key_file(directory / "ml-connector.key")
    connector = Connector(load_config(config_path, {}))
    try:
        sids = await asyncio.to_thread(seed, connector, messages)
        sids_file = directory / f"{store}.sids"
        sids_file.write_text("\n".join(sids))
        url = f"http://127.0.0.1:{port}{STATUS_PATH}"
        async with serving(connector.webhook_app(), "127.0.0.1", port):
            freeze_long_lived_objects()  # as `ml-connector run` does once its server is up (serve_until)
            result = await asyncio.to_thread(timed_load, url, sids_file, concurrency)
        engine = store_engine(store_url)
        with engine.connect() as conn:
            events = conn.execute(sa.text("SELECT count(*) FROM delivery_events")).scalar_one()
        counts = status_counts(engine)
        kinds = audit_kinds(engine)
        engine.dispose()
    finally:
        await connector.aclose()
    row = summary(f"ml-connector webhooks, {store}", 2 * messages, result)
    durable = (f"{store}: delivery events stored {events} of {2 * messages}, notifications delivered "
               f"{counts.get('delivered', 0)} of {messages}, audit rows by kind {kinds}")
    return row, durable


async def run_nothing(directory: Path, messages: int, concurrency: int) -> list[object]:
    port = free_port()
    sids_file = directory / "nothing.sids"
    sids_file.write_text("\n".join(f"SM{i:032x}" for i in range(messages)))
    async with serving(nothing_app, "127.0.0.1", port):
        freeze_long_lived_objects()
        result = await asyncio.to_thread(timed_load, f"http://127.0.0.1:{port}{STATUS_PATH}", sids_file,
                                         concurrency)
    return summary("same server, endpoint doing nothing", 2 * messages, result)


async def run_null_store(directory: Path, messages: int, concurrency: int) -> list[object]:
    port = free_port()
    url = f"http://127.0.0.1:{port}{STATUS_PATH}"
    sids_file = directory / "null.sids"
    sids_file.write_text("\n".join(f"SM{i:032x}" for i in range(messages)))
    app = create_webhook_app(store=NullStore(), auth_tokens={ACCOUNT_SID: AUTH_TOKEN},  # type: ignore[arg-type]
                             status_callback_url=url)
    async with serving(app, "127.0.0.1", port):
        freeze_long_lived_objects()
        result = await asyncio.to_thread(timed_load, url, sids_file, concurrency)
    return summary("webhook app, store doing nothing", 2 * messages, result)


async def main(args: argparse.Namespace) -> None:
    print(machine())
    rows: list[list[object]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mlc-bench-") as tmp:
        directory = Path(tmp)
        for store in args.store:
            with contextlib.ExitStack() as stack:
                url = (stack.enter_context(postgres_schema()) if store == "postgres"
                       else f"sqlite:///{directory / 'store.db'}")
                row, note = await run_store(directory, store, url, args.messages, args.concurrency)
                rows.append(row)
                notes.append(note)
        rows.append(await run_null_store(directory, args.messages, args.concurrency))
        rows.append(await run_nothing(directory, args.messages, args.concurrency))
    print(f"\n{args.messages} messages x 2 signed callbacks, {args.concurrency} concurrent connections "
          "from a second process")
    print_table(["server", "callbacks", "answered 200", "wall", "callbacks/s", "p50", "p99",
                 "server CPU per callback", "vs 3,000/s target"],
                rows)
    for note in notes:
        print(note)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--store", nargs="*", choices=("sqlite", "postgres"), default=["sqlite", "postgres"],
                        help="stores to measure; none at all runs only the two comparison rows")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--sids-file", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.client:
        client_main(arguments.client, arguments.sids_file, arguments.concurrency)
    else:
        run(main(arguments))
