"""Benchmark 6: 1, 2 and 4 dispatcher processes on PostgreSQL at 150 ms simulated Twilio latency.

    python bench/scale_out.py --processes 1 2 4 --rows 3000 --latency 0.15

Per run: a fresh PostgreSQL schema, the Twilio simulator in its own process, one
`ml-connector run --role poller --role web` process and N `ml-connector run --role dispatcher`
processes, all real CLI processes on one config. When every process is up, `--rows` queue rows
are inserted into the ERP in one transaction; the clock runs from that commit until every
notification is delivered (two signed callbacks each). `dispatcher.concurrency` and the
account's `concurrency` are per process, so N processes keep up to N x concurrency requests in
flight and the bound is N x concurrency / latency.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import yaml
from common import (
    bench_config,
    body,
    connector_command,
    machine,
    phone,
    postgres_schema,
    print_table,
    sim_get,
    sim_post,
    sim_process,
    status_counts,
    store_engine,
    wait_healthy,
)

from ml_connector.demo import free_port
from ml_connector.store.crypto import create_key_file

FINAL = ("delivered", "undelivered", "failed", "dead")


def empty_queue(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE sms_queue (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, "
                     "phone TEXT NOT NULL, message TEXT NOT NULL, kind TEXT NOT NULL)")
        conn.execute("CREATE INDEX sms_queue_changed ON sms_queue (created_at, id)")
        conn.commit()


def insert_rows(path: Path, first: int, count: int) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executemany("INSERT INTO sms_queue VALUES (?, ?, ?, ?, 'notify')",
                         ((i, stamp, phone(i), body(i)) for i in range(first, first + count)))
        conn.commit()


@contextlib.contextmanager
def processes(config: Path, dispatchers: int, webhook_port: int,
              log_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The poller+web process and `dispatchers` dispatcher processes; all killed on exit."""
    command = connector_command(config)
    env = {**os.environ, "MLC_WEBHOOK_PORT": str(webhook_port)}
    started: list[subprocess.Popen[bytes]] = []
    try:
        roles = [["--role", "poller", "--role", "web"]] + [["--role", "dispatcher"]] * dispatchers
        for i, role in enumerate(roles):
            log = (log_dir / f"process-{i}.log").open("wb")
            started.append(subprocess.Popen(command + role, env=env, stdout=log, stderr=subprocess.STDOUT))
        yield started
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def one_run(directory: Path, dispatchers: int, rows: int, twilio_url: str, concurrency: int,
            timeout: float) -> tuple[float, float, dict[str, int]]:
    """Its own ERP file, key and PostgreSQL schema: no run sees another's rows."""
    run_dir = directory / f"run-{dispatchers}"
    run_dir.mkdir()
    empty_queue(run_dir / "erp.db")
    create_key_file(run_dir / "ml-connector.key")
    with postgres_schema() as store_url:
        port = free_port()
        config = bench_config(run_dir, store_url=store_url, twilio_url=twilio_url, webhook_port=port,
                              concurrency=concurrency)
        config_path = run_dir / "ml-connector.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        engine = store_engine(store_url)
        with processes(config_path, dispatchers, port, run_dir) as procs:
            wait_healthy(port, procs)
            time.sleep(3)  # dispatchers import and connect; the poller takes its flow lock
            insert_rows(run_dir / "erp.db", 1, rows)
            started = time.perf_counter()
            accepted_at = 0.0
            while time.perf_counter() - started < timeout:
                time.sleep(0.25)
                if any(p.poll() is not None for p in procs):
                    logs = "\n".join(f.read_text(errors="replace")[-2000:] for f in sorted(run_dir.glob("*.log")))
                    raise RuntimeError(f"an ml-connector process exited; its logs:\n{logs}")
                counts = status_counts(engine)
                total = sum(counts.values())
                waiting = counts.get("pending", 0) + counts.get("sending", 0)
                if total >= rows and not waiting and not accepted_at:
                    accepted_at = time.perf_counter() - started
                if sum(counts.get(s, 0) for s in FINAL) >= rows:
                    return time.perf_counter() - started, accepted_at, counts
            raise RuntimeError(f"{dispatchers} dispatcher(s): not finished after {timeout:.0f} s: {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.15)
    parser.add_argument("--concurrency", type=int, default=100, help="per process")
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    print(machine())
    table = []
    with tempfile.TemporaryDirectory(prefix="mlc-bench-") as tmp, sim_process(args.latency) as twilio_url:
        directory = Path(tmp)
        for count in args.processes:
            sim_post(twilio_url, "reset", {})
            seconds, accepted, counts = one_run(directory, count, args.rows, twilio_url, args.concurrency,
                                                args.timeout)
            sent = int(sim_get(twilio_url, "health")["messages"])
            bound = count * args.concurrency / args.latency if args.latency else None
            per_second = args.rows / seconds
            table.append([count, args.rows, f"{accepted:.1f} s", f"{seconds:.1f} s", f"{per_second:,.0f}",
                          f"{bound:,.0f}/s" if bound else "", f"{per_second / bound:.0%}" if bound else "",
                          counts.get("delivered", 0), sent])
    print(f"\nPostgreSQL, latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency} per dispatcher process")
    print_table(["dispatchers", "rows", "all accepted", "all delivered", "delivered/s", "bound", "vs bound",
                 "delivered", "messages at simulator"], table)


if __name__ == "__main__":
    main()
