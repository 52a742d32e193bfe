"""What every benchmark shares: the simulator process, the ERP table, the config, PostgreSQL schemas.

The ERP side is the queue-table pattern (one row = one text to send, `first_sighting: fire`),
so N rows are exactly N notifications and nothing else in the flow costs time.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import sqlalchemy as sa

from ml_connector.demo import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, DEMO_SENDER

BENCH_DIR = Path(__file__).resolve().parent
POSTGRES_URL = os.environ.get("MLC_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ACCOUNT_SID, AUTH_TOKEN, SENDER = DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, DEMO_SENDER
FLOW = "bench"


def machine() -> str:
    """One line naming the machine, so every printed figure says where it was measured."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}; "
            f"load average now {load}")


def phone(i: int) -> str:
    """A distinct, valid US number per row (Chicago area code, exchanges 200-999)."""
    return f"+1312{200 + (i // 10000) % 800:03d}{i % 10000:04d}"


def body(i: int) -> str:
    return f"Order {i:07d} is ready for pickup at dock 4."


# -- the simulator in its own process ----------------------------------------------------------


@contextlib.contextmanager
def sim_process(latency: float = 0.0, callback_delay: tuple[float, float] = (0.0, 0.0),
                callback_client: str = "raw", callback_concurrency: int = 0) -> Iterator[str]:
    """Start bench/sim_server.py; yields its base URL; stops it (stdin EOF, then kill) on exit.

    `callback_concurrency` 0 leaves sim_server.py's default (see its --help).
    """
    cmd = [sys.executable, str(BENCH_DIR / "sim_server.py"), "--latency", str(latency),
           "--callback-delay", str(callback_delay[0]), str(callback_delay[1]), "--callback-client", callback_client,
           "--callback-concurrency", str(callback_concurrency)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server prints READY within a second or two
        if not line.startswith("READY "):
            raise RuntimeError(f"the simulator did not start: {line!r}")
        yield line.split()[1]
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def connector_command(config: Path, prog: str = "ml-connector") -> list[str]:
    """`ml-connector --config CONFIG run` for this interpreter; `prog` names the process in ps."""
    return [sys.executable, "-c", f"from ml_connector.cli import main; main(prog_name={prog!r})",
            "--config", str(config), "run"]


def wait_healthy(port: int, procs: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("an ml-connector process exited while starting (see its log)")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("the webhook server did not come up")


def sim_get(url: str, name: str) -> Any:
    return httpx.get(f"{url}/_sim/{name}", timeout=60).json()


def sim_post(url: str, name: str, payload: dict[str, Any]) -> Any:
    response = httpx.post(f"{url}/_sim/{name}", json=payload, timeout=60)
    response.raise_for_status()
    return response.json()


# -- the ERP: a queue table in SQLite -------------------------------------------------------------


def make_queue_erp(path: Path, rows: int, *, matching_every: int = 1, span: float = 60.0) -> None:
    """`sms_queue(id, created_at, phone, message, kind)` with `rows` rows stamped over the last `span` s.

    Every `matching_every`-th row has kind 'notify' (the rest 'ignore'), for the polling benchmark.
    """
    start = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(seconds=span + 30)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE sms_queue (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, "
                     "phone TEXT NOT NULL, message TEXT NOT NULL, kind TEXT NOT NULL)")
        conn.execute("CREATE INDEX sms_queue_changed ON sms_queue (created_at, id)")
        step = span / max(rows, 1)
        conn.executemany(
            "INSERT INTO sms_queue VALUES (?, ?, ?, ?, ?)",
            ((i, (start + timedelta(seconds=i * step)).strftime("%Y-%m-%d %H:%M:%S"), phone(i), body(i),
              "notify" if i % matching_every == 0 else "ignore") for i in range(1, rows + 1)),
        )
        conn.commit()


def queue_rows(path: Path, limit: int) -> list[tuple[str, str]]:
    """(phone, message) of the first `limit` rows, for the hand-written baseline."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT phone, message FROM sms_queue ORDER BY id LIMIT ?", (limit,)).fetchall()


# -- config ------------------------------------------------------------------------------------


def bench_config(directory: Path, *, store_url: str, twilio_url: str, webhook_port: int,
                 concurrency: int, trigger: dict[str, Any] | None = None,
                 page_size: int = 500, poll_every: str = "1s", backfill: str = "1d") -> dict[str, Any]:
    """A config with one SQL source (the queue table) and one flow that texts every row."""
    return {
        "store": {"url": store_url, "key_file": str(directory / "ml-connector.key")},
        "webhooks": {"public_url": f"http://127.0.0.1:{webhook_port}", "host": "127.0.0.1", "port": webhook_port},
        "admin": {"host": "127.0.0.1", "port": 0},  # several processes share this file: each a free port
        "twilio": {"accounts": {"main": {
            "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "concurrency": concurrency,
            "base_urls": {"api": twilio_url},
            # Pacing is not what is measured: a sender fast enough never to wait.
            "senders": {"alerts": {"from": SENDER, "mps": 1_000_000}},
        }}},
        "sources": {"erp": {
            "type": "sql", "url": f"sqlite:///{directory / 'erp.db'}", "timezone": "UTC",
            "entities": {"queue": {"table": "sms_queue", "key": "id", "changed_at": "created_at",
                                   "page_size": page_size}},
        }},
        "flows": {FLOW: {
            "source": "erp", "entity": "queue",
            "schedule": {"every": poll_every, "overlap": "2m", "clock_skew": "0.5s",
                         "baseline": backfill, "max_window": backfill},
            "trigger": trigger or {"field": "id", "is_null": False},
            "first_sighting": "fire",
            "recipients": [{"field": "phone"}],
            "sender": "main.alerts",
            "template": "{{ message }}",
            "retry": {"max_attempts": 4, "base_delay": "1s", "max_delay": "5s"},
        }},
        "dispatcher": {"concurrency": 2 * concurrency, "batch_size": 200, "idle_poll": "50ms"},
    }


# -- PostgreSQL ------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_schema(base_url: str = POSTGRES_URL) -> Iterator[str]:
    """A URL whose search_path is a fresh schema; the schema is dropped afterwards."""
    import psycopg

    schema = f"mlc_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def store_engine(url: str) -> sa.Engine:
    """A separate engine onto the store, for the benchmark's own counting queries."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def status_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, count(*) FROM notifications GROUP BY status")).all()
    return {str(status): int(count) for status, count in rows}


def audited_notifications(engine: sa.Engine, status: str) -> int:
    """How many notifications have an audit row with this status."""
    query = "SELECT count(DISTINCT notification_id) FROM audit WHERE status = :s"
    with engine.connect() as conn:
        return int(conn.execute(sa.text(query), {"s": status}).scalar_one())


def audit_kinds(engine: sa.Engine) -> dict[str, int]:
    """Audit rows per kind (duplicate or orphan callbacks show up here)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, count(*) FROM audit GROUP BY kind ORDER BY kind")).all()
    return {str(kind): int(count) for kind, count in rows}


# -- output ----------------------------------------------------------------------------------


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table (pasteable into bench/README.md)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)) + " |"
    print(line)
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "n/a"


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
