"""Benchmarks 1-3: ERP rows -> delivered status in the audit, against the hand-written baseline.

    python bench/e2e.py --latency 0    --rows 3000 --store sqlite postgres   # benchmark 1 (+3)
    python bench/e2e.py --latency 0.15 --rows 3000 --store sqlite postgres   # benchmark 2 (+3)

One run: the Twilio simulator starts in its own process; for each store the real `Connector`
(SQL source poller, dispatcher, webhook server on loopback) turns `--rows` queue rows into
messages and waits until every notification is delivered, each through two signed status
callbacks (sent, delivered). Then the simulator is reset and twilio-python sends
`--baseline-rows` of the same rows sequentially. Last, "HTTP only": the connector's own Twilio
client (aiohttp) creates the same messages at the same concurrency with nothing around it, the
callbacks answered 200 by a server that stores nothing: what the simulator and the two HTTP
stacks allow on this machine, the practical ceiling of the connector's figure.

The clock starts when the connector starts polling (store migrations and config loading are
outside it) and stops when the last notification is delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from baseline import run_baseline
from common import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SENDER,
    Stopwatch,
    audit_kinds,
    audited_notifications,
    bench_config,
    connector_command,
    machine,
    make_queue_erp,
    postgres_schema,
    print_table,
    queue_rows,
    sim_get,
    sim_post,
    sim_process,
    status_counts,
    store_engine,
    wait_healthy,
)

from ml_connector.app import Connector
from ml_connector.channels.http import AiohttpTransport
from ml_connector.channels.twilio_api import TwilioClient
from ml_connector.config import load_config
from ml_connector.demo import free_port
from ml_connector.runtime import loop
from ml_connector.store.crypto import create_key_file
from ml_connector.web.server import serving

FINAL = ("delivered", "undelivered", "failed", "dead")


@dataclass
class Run:
    store: str
    rows: int
    seconds: float = 0.0
    created_at: float = 0.0     # every row is a notification
    accepted_at: float = 0.0    # every notification was accepted by Twilio
    delivered: int = 0
    audited: int = 0
    sim_messages: int = 0
    audit_kinds: dict[str, int] = field(default_factory=dict)
    connector_cpu: float = 0.0  # CPU seconds (all threads) of the connector's processes during the run
    web_process: bool = False   # the web role ran in a process of its own
    simulator_cpu: float = 0.0  # CPU seconds of the simulator's process during the run


def child_cpu(marker: bytes) -> float:
    """CPU seconds used so far by this process's child whose command line contains `marker`."""
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and marker in (stat.parent / "cmdline").read_bytes():
                return (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            continue
    return 0.0


def simulator_cpu() -> float:
    return child_cpu(b"sim_server.py")


WEB_MARKER = "ml-connector-bench-web"


@contextlib.contextmanager
def web_process(config_path: Path, port: int) -> Iterator[None]:
    """`ml-connector run --role web` in a process of its own, serving until the block ends."""
    command = [*connector_command(config_path, WEB_MARKER), "--role", "web"]
    log = (config_path.parent / "web-process.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, [proc])
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


async def run_connector(directory: Path, store: str, store_url: str, twilio_url: str, rows: int,
                        concurrency: int, give_up_after: float, separate_web: bool) -> Run:
    config_path = directory / f"{store}.yaml"
    port = free_port()
    config = bench_config(directory, store_url=store_url, twilio_url=twilio_url, webhook_port=port,
                          concurrency=concurrency)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    if not (directory / "ml-connector.key").exists():
        create_key_file(directory / "ml-connector.key")
    with web_process(config_path, port) if separate_web else contextlib.nullcontext():
        return await _run_connector(config_path, store, store_url, twilio_url, rows, give_up_after, separate_web)


async def _run_connector(config_path: Path, store: str, store_url: str, twilio_url: str, rows: int,
                         give_up_after: float, separate_web: bool) -> Run:
    connector = Connector(load_config(config_path, {}))
    engine = store_engine(store_url)
    result = Run(store, rows, web_process=separate_web)
    stop = asyncio.Event()
    clock = Stopwatch()
    roles = ("poller", "dispatcher") if separate_web else ("poller", "dispatcher", "web")
    cpu_before, sim_before, web_before = time.process_time(), simulator_cpu(), child_cpu(WEB_MARKER.encode())
    task = asyncio.create_task(connector.run(stop, roles))
    try:
        while clock() < give_up_after:
            await asyncio.sleep(0.2)
            if task.done():
                task.result()
                raise RuntimeError("the connector stopped early")
            counts = await asyncio.to_thread(status_counts, engine)
            total = sum(counts.values())
            if total >= rows and not result.created_at:
                result.created_at = clock()
            waiting = sum(counts.get(s, 0) for s in ("pending", "sending"))
            if total >= rows and not waiting and not result.accepted_at:
                result.accepted_at = clock()
            if sum(counts.get(s, 0) for s in FINAL) >= rows:
                result.seconds = clock()
                result.connector_cpu = (time.process_time() - cpu_before
                                        + child_cpu(WEB_MARKER.encode()) - web_before)
                result.simulator_cpu = simulator_cpu() - sim_before
                result.delivered = counts.get("delivered", 0)
                break
        else:
            raise RuntimeError(f"{store}: not finished after {give_up_after:.0f} s: {counts}")
    finally:
        stop.set()
        await task
        await connector.aclose()
    result.audited = await asyncio.to_thread(audited_notifications, engine, "delivered")
    result.audit_kinds = await asyncio.to_thread(audit_kinds, engine)
    engine.dispose()
    result.sim_messages = int(sim_get(twilio_url, "health")["messages"])
    return result


async def _answer_ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Status callbacks answered 200 and dropped: the HTTP-only run's webhook endpoint."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def http_only(twilio_url: str, rows: list[tuple[str, str]], concurrency: int) -> float:
    """Seconds for the connector's Twilio client to create `rows` at `concurrency`, nothing else."""
    client = TwilioClient(ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=twilio_url, transport=AiohttpTransport())
    slots = asyncio.Semaphore(concurrency)

    async def create(to: str, body: str, callback: str) -> None:
        async with slots:
            await client.create_message(to=to, from_=SENDER, body=body, status_callback=callback)

    try:
        async with serving(_answer_ok, "127.0.0.1", free_port()) as base:
            started = time.perf_counter()
            await asyncio.gather(*(create(to, body, f"{base}/twilio/status") for to, body in rows))
            return time.perf_counter() - started
    finally:
        await client.aclose()


async def main(args: argparse.Namespace) -> None:
    print(machine())
    bound = args.concurrency / args.latency if args.latency else None
    with tempfile.TemporaryDirectory(prefix="mlc-bench-") as tmp, \
            sim_process(args.latency, callback_client=args.callback_client) as twilio_url:
        directory = Path(tmp)
        make_queue_erp(directory / "erp.db", args.rows)
        runs: list[Run] = []
        for store in args.store:
            sim_post(twilio_url, "reset", {})
            with contextlib.ExitStack() as stack:
                url = (stack.enter_context(postgres_schema()) if store == "postgres"
                       else f"sqlite:///{directory / 'store.db'}")
                runs.append(await run_connector(directory, store, url, twilio_url, args.rows,
                                                args.concurrency, args.timeout, args.web_process))
        sim_post(twilio_url, "reset", {})
        baseline_rows = queue_rows(directory / "erp.db", args.baseline_rows)
        baseline_seconds = await asyncio.to_thread(run_baseline, twilio_url, baseline_rows)
        sim_post(twilio_url, "reset", {})
        all_rows = queue_rows(directory / "erp.db", args.rows)
        http_seconds = await http_only(twilio_url, all_rows, args.concurrency)
    baseline_rate = len(baseline_rows) / baseline_seconds
    http_rate = len(all_rows) / http_seconds

    print(f"\nlatency {args.latency * 1000:.0f} ms, account concurrency {args.concurrency}, rows {args.rows}"
          + (f", bound concurrency/latency = {bound:,.0f}/s" if bound else ""))
    headers = ["run", "notifications", "all created", "all accepted", "all delivered", "delivered/s",
               "vs baseline", "vs bound" if bound else "vs 2,000/s target"]
    table = []
    for run in runs:
        per_second = run.rows / run.seconds
        versus = per_second / bound if bound else per_second / 2000
        name = f"ml-connector, {run.store}" + (", web role in its own process" if run.web_process else "")
        table.append([name, run.rows, f"{run.created_at:.1f} s", f"{run.accepted_at:.1f} s",
                      f"{run.seconds:.1f} s", f"{per_second:,.0f}", f"{per_second / baseline_rate:.1f}x",
                      f"{versus:.0%}"])
    table.append(["twilio-python sequential (create only)", len(baseline_rows), "", "", f"{baseline_seconds:.1f} s",
                  f"{baseline_rate:,.1f}", "1.0x", f"{baseline_rate / bound:.1%}" if bound else ""])
    table.append([f"HTTP only: aiohttp client at C={args.concurrency}, callbacks answered, nothing stored",
                  len(all_rows), "", f"{http_seconds:.1f} s", "", f"{http_rate:,.0f}",
                  f"{http_rate / baseline_rate:.1f}x", f"{http_rate / (bound or 2000):.0%}"])
    print_table(headers, table)
    print_table(["run", "connector CPU", "simulator CPU", "connector CPU per message", "simulator CPU per message",
                 "cores busy (of 2)"], [
        [f"ml-connector, {run.store}" + (" (2 processes)" if run.web_process else ""),
         f"{run.connector_cpu:.1f} s", f"{run.simulator_cpu:.1f} s",
         f"{run.connector_cpu / run.rows * 1000:.2f} ms", f"{run.simulator_cpu / run.rows * 1000:.2f} ms",
         f"{(run.connector_cpu + run.simulator_cpu) / run.seconds:.2f}"]
        for run in runs
    ])
    for run in runs:
        ok = run.delivered == run.rows == run.audited == run.sim_messages
        print(f"{run.store}: delivered {run.delivered}, notifications audited as delivered {run.audited}, "
              f"messages at the simulator {run.sim_messages} -> {'OK' if ok else 'MISMATCH'}; "
              f"audit rows by kind {run.audit_kinds}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.0, help="simulated Twilio latency, seconds")
    parser.add_argument("--concurrency", type=int, default=100, help="account concurrency = dispatcher slots")
    parser.add_argument("--store", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"])
    parser.add_argument("--baseline-rows", type=int, default=None,
                        help="rows for twilio-python (default: 2000 at zero latency, 40 otherwise)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--web-process", action="store_true",
                        help="serve webhooks from a separate `ml-connector run --role web` process")
    parser.add_argument("--callback-client", choices=("raw", "aiohttp", "httpx"), default="raw",
                        help="the simulator's callback client (see callback_transport.py)")
    args = parser.parse_args()
    if args.baseline_rows is None:
        args.baseline_rows = 2000 if args.latency == 0 else 40
    return args


if __name__ == "__main__":
    loop.run(main(parse()))
