"""Benchmark 5: a backfill through the SQL source, rows evaluated per second and peak RSS.

    python bench/polling.py --rows 1000000 [--page-size 500] [--store sqlite|postgres]

The ERP is a SQLite table of `--rows` rows stamped about one per second (1,000,000 rows span
ten days), built in a child process so that building it does not count in this process's peak
RSS; the flow's first poll reads back 30 days. One poll of the real `Poller` (SQL source with keyset
paging, rule evaluation, template rendering, phone normalisation, one store transaction per
2,000 records, the poller's batch) reads every row; the rule (`kind == 'notify'`) matches 10%, so 10% become
notifications. For comparison, plain sqlite3 reads the same rows (same column set, same
ORDER BY) in the same process: the floor of reading them at all in Python. "CPU" is the
process's CPU time during the poll (every thread): steadier than wall time on a shared machine,
and above it when the poll's threads overlap (a batch commits while the next one is read).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import (
    FLOW,
    bench_config,
    machine,
    make_queue_erp,
    postgres_schema,
    print_table,
    status_counts,
    store_engine,
)

from ml_connector.app import Connector
from ml_connector.config import load_config
from ml_connector.runtime.loop import run
from ml_connector.store.crypto import create_key_file
from ml_connector.web.server import freeze_long_lived_objects


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def raw_read(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    with contextlib.closing(sqlite3.connect(path)) as conn:
        cursor = conn.execute("SELECT * FROM sms_queue ORDER BY created_at, id")
        while batch := cursor.fetchmany(500):
            count += len(batch)
    return count, time.perf_counter() - started


async def poll_once(directory: Path, store_url: str, page_size: int) -> tuple[int, int, float, float]:
    config_path = directory / "polling.yaml"
    config = bench_config(directory, store_url=store_url, twilio_url="http://127.0.0.1:9", webhook_port=9,
                          concurrency=10, page_size=page_size,
                          trigger={"field": "kind", "eq": "notify"}, backfill="30d")
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    create_key_file(directory / "ml-connector.key")
    connector = Connector(load_config(config_path, {}))
    freeze_long_lived_objects()  # as `ml-connector run` does once the connector is built
    try:
        cpu_before, started = os.times(), time.perf_counter()
        report = await connector.pollers[FLOW].poll()
        seconds, cpu_after = time.perf_counter() - started, os.times()
    finally:
        await connector.aclose()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return report.read, report.inserted, seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--make-erp", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_erp:
        # About one row per wall-clock second (10 days for 1,000,000 rows), like a real table's history.
        make_queue_erp(args.make_erp, args.rows, matching_every=10, span=args.rows * 0.864)
        return
    print(machine())
    with tempfile.TemporaryDirectory(prefix="mlc-bench-") as tmp, contextlib.ExitStack() as stack:
        directory = Path(tmp)
        erp = directory / "erp.db"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--make-erp", str(erp)], check=True)
        print(f"ERP table of {args.rows:,} rows built in {time.perf_counter() - started:.1f} s (child process)")
        before = peak_rss_mb()
        store_url = (stack.enter_context(postgres_schema()) if args.store == "postgres"
                     else f"sqlite:///{directory / 'store.db'}")
        read, inserted, seconds, cpu = run(poll_once(directory, store_url, args.page_size))
        peak = peak_rss_mb()
        engine = store_engine(store_url)
        stored = sum(status_counts(engine).values())
        engine.dispose()
        raw_count, raw_seconds = raw_read(erp)
    print(f"\n{args.rows:,} rows, rule matches 10%, page size {args.page_size}, store {args.store}")
    print_table(
        ["reader", "rows", "notifications", "time", "CPU", "rows/s", "peak RSS", "vs 50,000 rows/s target",
         "vs raw read"],
        [["ml-connector poll (SQL source + rules + store)", f"{read:,}", f"{inserted:,}", f"{seconds:.1f} s",
          f"{cpu:.1f} s",
          f"{read / seconds:,.0f}", f"{peak:.0f} MB (before poll {before:.0f} MB)", f"{read / seconds / 50000:.0%}",
          f"{(read / seconds) / (raw_count / raw_seconds):.0%}"],
         ["plain sqlite3 fetchmany(500), same rows", f"{raw_count:,}", "", f"{raw_seconds:.1f} s", "",
          f"{raw_count / raw_seconds:,.0f}", "", "", "100%"]],
    )
    print(f"notifications in the store: {stored:,} (expected {args.rows // 10:,})")


if __name__ == "__main__":
    main()
