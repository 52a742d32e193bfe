"""Reliability: N notifications through SIGKILLs of the connector and a misbehaving Twilio.

    python bench/faults.py --store sqlite   --rows 2000 --kills 10
    python bench/faults.py --store postgres --rows 2000 --kills 10 --pg-restart

One `ml-connector run` process (every role) over a queue-table ERP (one row = one text) and the
Twilio simulator in its own process playing a fault plan: `--five-xx` of creates and of message
list look-ups answer 500/502/503, `--drops` of creates are accepted and then the connection is
dropped (the answer is lost), `--slow` of requests wait `--latency` seconds. The N rows are
inserted in K+1 shares while the connector runs; it is killed with SIGKILL `--kills` times at
random moments (seeded) and started again each time. With `--pg-restart` (PostgreSQL only) the
store's database, a private cluster made with initdb in a temporary directory, is stopped for
`--down-for` seconds in the middle of the kills while the connector keeps running. After the
last kill the faults are switched off and the run continues until every notification is final
(or `--settle` seconds pass).

Printed, from the simulator's own record of what it accepted and from the store:
- lost: rows with no notification, or whose notification is final as sent/delivered without any
  message at the simulator (must be 0);
- doubled: bodies the simulator accepted more than once (must be 0);
- dead-never-sent: notifications `dead` whose message Twilio never accepted (must be 0);
- non-final: notifications still pending/sending/queued/sent at the end;
- unexpected exits: connector processes that ended without being killed (must be 0).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from common import (
    bench_config,
    body,
    connector_command,
    machine,
    phone,
    print_table,
    sim_get,
    sim_post,
    sim_process,
    status_counts,
    store_engine,
    wait_healthy,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support.pgcluster

from ml_connector.demo import free_port  # noqa: E402
from ml_connector.store.crypto import create_key_file  # noqa: E402

FINAL = frozenset({"delivered", "undelivered", "failed", "dead", "suppressed"})
SENT = frozenset({"queued", "sent", "delivered", "undelivered", "read"})


def fault_plan(five_xx: float, drops: float, slow: float, latency: float) -> list[dict[str, Any]]:
    """The simulator's rules (sim/twilio_faults.py): 5xx split over 500/502/503, on creates and look-ups."""
    rules: list[dict[str, Any]] = [{"action": "latency", "probability": slow, "seconds": latency}]
    for operation in ("create_message", "list_messages"):
        for status in (500, 502, 503):
            # each rule sees only the requests the earlier ones let through: near enough at these rates
            rules.append({"action": "5xx", "operation": operation, "probability": five_xx / 3, "status": status})
    rules.append({"action": "drop_after_accept", "operation": "create_message", "probability": drops})
    return rules


def make_erp(path: Path, rows: int) -> None:
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
def store(kind: str) -> Iterator[tuple[str, Any]]:
    """(store URL, private cluster or None)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="mlc-faults-db-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'ml-connector.db'}", None
        return
    from tests.support.pgcluster import private_cluster

    with private_cluster() as cluster:
        yield cluster.url, cluster


class Connector:
    """The `ml-connector run` process, restarted after each kill; counts exits nobody asked for."""

    def __init__(self, config: Path, port: int, directory: Path) -> None:
        self.config, self.port, self.directory = config, port, directory
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.unexpected_exits = 0

    def start(self) -> None:
        self.runs += 1
        log = (self.directory / f"connector-{self.runs:02d}.log").open("wb")
        self.proc = subprocess.Popen(connector_command(self.config, "mlc-faults"), stdout=log,  # noqa: S603
                                     stderr=subprocess.STDOUT, cwd=self.directory)
        wait_healthy(self.port, [self.proc], timeout=60)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.unexpected_exits += 1
            print(f"  connector run {self.runs} exited by itself with {self.proc.returncode}", flush=True)
            self.start()

    def kill(self) -> None:
        self.check_alive()
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def verdict(engine: Any, sim_url: str, rows: int) -> dict[str, int]:
    import sqlalchemy as sa

    accepted = Counter(str(m["resource"]["body"]) for m in sim_get(sim_url, "messages")["messages"])
    with engine.connect() as conn:
        notes = conn.execute(sa.text("SELECT record_key, status FROM notifications")).all()
    by_key = {str(key): str(status) for key, status in notes}
    lost = sum(1 for i in range(1, rows + 1) if str(i) not in by_key)
    lost += sum(1 for key, status in by_key.items() if status in SENT and accepted[body(int(key))] == 0)
    return {
        "rows": rows,
        "notifications": len(by_key),
        "accepted by Twilio": sum(1 for i in range(1, rows + 1) if accepted[body(i)] > 0),
        "lost": lost,
        "doubled": sum(1 for count in accepted.values() if count > 1),
        "dead-never-sent": sum(1 for key, s in by_key.items() if s == "dead" and accepted[body(int(key))] == 0),
        "non-final": sum(1 for s in by_key.values() if s not in FINAL),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mlc-faults-") as tmp, store(args.store) as (url, cluster), \
            sim_process(callback_delay=(0.05, 0.3)) as sim_url:
        directory = Path(tmp)
        port = free_port()
        config = bench_config(directory, store_url=url, twilio_url=sim_url, webhook_port=port,
                              concurrency=args.concurrency, poll_every="1s")
        config["dispatcher"].update({"lease": "PT4S", "status_check_after": "5s"})
        config["flows"]["bench"]["retry"] = {"max_attempts": 8, "base_delay": "PT0.5S", "max_delay": "PT5S"}
        path = directory / "ml-connector.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        create_key_file(directory / "ml-connector.key")
        make_erp(directory / "erp.db", args.rows)
        sim_post(sim_url, "faults", {"seed": args.seed, "rules": fault_plan(args.five_xx, args.drops,
                                                                          args.slow, args.latency)})
        connector = Connector(path, port, directory)
        connector.start()
        # The ERP keeps producing: a share of the rows before each kill and one after the last.
        shares = [args.rows // (args.kills + 1)] * (args.kills + 1)
        shares[-1] += args.rows - sum(shares)
        inserted = 0
        restart_at = args.kills // 2 if args.pg_restart else -1
        restarts = 0
        for kill in range(args.kills):
            insert_rows(directory / "erp.db", inserted + 1, shares[kill])
            inserted += shares[kill]
            time.sleep(rng.uniform(args.kill_every * 0.5, args.kill_every * 1.5))
            if kill == restart_at and cluster is not None:
                print(f"  restarting PostgreSQL ({args.down_for:g} s down)", flush=True)
                cluster.restart(args.down_for)
                restarts += 1
                time.sleep(2.0)
                connector.check_alive()
            connector.kill()
            time.sleep(rng.uniform(0.1, 0.6))
            connector.start()
            print(f"  kill {kill + 1}/{args.kills} at {time.monotonic() - began:.0f} s", flush=True)
        insert_rows(directory / "erp.db", inserted + 1, shares[-1])
        time.sleep(args.kill_every)  # the last share meets the faults too
        sim_post(sim_url, "faults", {"seed": args.seed, "rules": []})
        engine = store_engine(url)
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline:
            connector.check_alive()
            counts = status_counts(engine)
            if sum(counts.values()) >= args.rows and all(s in FINAL for s in counts):
                break
            time.sleep(1.0)
        result: dict[str, Any] = verdict(engine, sim_url, args.rows)
        result["statuses"] = status_counts(engine)
        result["unexpected exits"] = connector.unexpected_exits
        result["kills"] = args.kills
        result["pg restarts"] = restarts
        result["seconds"] = round(time.monotonic() - began)
        connector.check_alive()
        connector.stop()
        engine.dispose()
        tracebacks = sum((directory / f"connector-{i:02d}.log").read_text(errors="replace").count("Traceback")
                         for i in range(1, connector.runs + 1))
        result["tracebacks in logs"] = tracebacks
    return result


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--kill-every", type=float, default=3.0, help="mean seconds between kills")
    parser.add_argument("--five-xx", type=float, default=0.10, help="share of creates and look-ups answered 5xx")
    parser.add_argument("--drops", type=float, default=0.05, help="share of creates accepted, then dropped")
    parser.add_argument("--slow", type=float, default=0.3, help="share of requests delayed by --latency")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--pg-restart", action="store_true", help="stop PostgreSQL mid-run (postgres only)")
    parser.add_argument("--down-for", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--settle", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.pg_restart and args.store != "postgres":
        parser.error("--pg-restart needs --store postgres")
    return args


def main() -> None:
    args = parse()
    print(machine())
    print(" ".join(["python bench/faults.py", *sys.argv[1:]]))
    result = run(args)
    statuses = result.pop("statuses")
    print_table(["measure", "value"], [(k, v) for k, v in result.items()])
    print(f"statuses: {dict(sorted(statuses.items()))}")


if __name__ == "__main__":
    main()
