"""Benchmark: one PeopleSoft pay run of N employees turned into N notifications, and peak RSS.

    python bench/payrun.py [--employees 10000] [--page 500]

The PeopleSoft simulator runs in a child process on loopback (bench/ps_sim_server.py) with N
employees in pay group BW1, whose pay run has just posted. One poll of the real `Poller` reads
the pay run (`XX_MLC_PAYRUNS`), fans it out through the pay group's members query
(`XX_MLC_PAYGROUP_EES`, `--page` employees per Query Access Services call, keyset by EMPLID),
renders each employee's SMS, normalises the phone and commits each page's notifications to a
SQLite store. Sending is not part of it (the end-to-end benchmarks measure that). The check:
exactly N notifications, one per employee, and a second poll inserts none.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import machine

from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.templates import compile_template
from ml_connector.runtime.loop import run
from ml_connector.runtime.poller import FlowRuntime, Poller
from ml_connector.sources.peoplesoft import PeopleSoftConfig, PeopleSoftSource
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NotificationFilter
from ml_connector.store.sql import SqlStore


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_simulator(employees: int) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ps_sim_server.py")),
                               "--employees", str(employees)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    if not line.startswith("READY "):
        raise SystemExit(f"simulator did not start: {line!r}")
    return server, line.removeprefix("READY ")


async def main(args: argparse.Namespace, url: str) -> None:
    print(machine())
    source = PeopleSoftSource("hcm", PeopleSoftConfig.model_validate({
        "type": "peoplesoft", "base_url": url, "node": "PSFT_HR", "timezone": "America/Chicago",
        "auth": {"type": "basic", "user": "MLC_REST", "password": "mlc-pass"},
        "entities": {
            "payruns": {"query": "XX_MLC_PAYRUNS", "key": ["COMPANY", "PAYGROUP", "PAY_END_DT"],
                        "dates": ["PAY_END_DT", "CHECK_DT"]},
            "paygroup_employees": {"query": "XX_MLC_PAYGROUP_EES", "key": ["EMPLID"], "members": {},
                                   "maxrows": args.page},
        }}))
    spec = FlowSpec.model_validate({
        "source": "hcm", "entity": "payruns", "sender": "demo.hr", "first_sighting": "fire",
        "schedule": {"baseline": "1h"},
        "trigger": {"field": "PAY_CONFIRM_RUN", "becomes": "Y"},
        "recipients": [{"members": {"entity": "paygroup_employees",
                                    "match": {"COMPANY": "COMPANY", "PAYGROUP": "PAYGROUP"},
                                    "fields": ["PHONE_PREFERRED"]}}],
        "template": "Hi {{ member.FIRST_NAME }}, payroll for the period ending "
                    "{{ PAY_END_DT | date('%b %d') }} has posted.",
    })
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'store.db'}", KeyRing(b"k" * 32))
        flow = FlowRuntime("payroll_posted", spec, source, compile_template("t", spec.template), "demo",
                           "+15005550006", "US")
        clock_start = datetime.now(UTC)
        poller = Poller(flow, store, lambda: datetime.now(UTC) + timedelta(seconds=10))
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        cpu = time.process_time()
        report = await poller.poll()
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
        rss_poll = peak_rss_mb()  # before the check below lists every notification
        again = await poller.poll()
        rows = store.list_notifications(NotificationFilter(flow="payroll_posted", limit=args.employees * 2))
        keys = {r.recipient for r in rows}
        store.close()
    await source.aclose()
    assert report.inserted == len(rows) == args.employees, (report.inserted, len(rows))
    assert again.inserted == 0
    print(f"\npay run of {len(rows):,} employees ({args.page} per QAS call), started {clock_start:%H:%M:%S} UTC\n")
    print("| measure | value |\n| --- | --- |")
    print(f"| notifications committed | {report.inserted:,} ({len(keys):,} distinct numbers) |")
    print(f"| wall time | {elapsed:.2f} s |")
    print(f"| notifications/s | **{report.inserted / elapsed:,.0f}** |")
    print(f"| connector CPU | {cpu_used:.2f} s ({report.inserted / cpu_used:,.0f} notifications per CPU-second) |")
    print(f"| peak RSS during the poll | {rss_poll:.0f} MB (before the poll {rss_before:.0f} MB) |")
    print(f"| second poll | {again.inserted} inserted |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--employees", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=500)
    arguments = parser.parse_args()
    simulator, base_url = start_simulator(arguments.employees)
    try:
        run(main(arguments, base_url))
    finally:
        if simulator.stdin:
            simulator.stdin.close()
        simulator.wait(timeout=30)
