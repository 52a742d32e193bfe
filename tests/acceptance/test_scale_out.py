"""Three `ml-connector run` processes on one PostgreSQL schema; the one polling a flow is killed.

Real processes, real sockets: the Twilio simulator runs in this test's event loop on loopback,
the demo ERP is a SQLite file this test writes business events into, and each process serves
webhooks on its own port (MLC_WEBHOOK_PORT). Twilio's status callbacks go to whichever process
answers, as behind a load balancer. At the end nothing is lost (every event has its
notifications, every notification is final), nothing is doubled (one message at the simulator
per notification sent), and the killed process's flow was taken over by a survivor.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import psycopg
import pytest
import yaml

from ml_connector.app import webhook_port
from ml_connector.config import load_config
from ml_connector.core.lifecycle import FINAL
from ml_connector.demo import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, DEMO_SENDER, DEMO_TZ, demo_config, free_port
from ml_connector.errors import ConfigError
from ml_connector.sim.demo_erp import DemoErp
from ml_connector.sim.twilio import Account, TwilioSim
from ml_connector.store.crypto import create_key_file, load_keyring
from ml_connector.store.locks import flow_lock_key
from ml_connector.store.port import NotificationFilter, NotificationView
from ml_connector.store.sql import SqlStore
from ml_connector.web.server import serving

FLOWS = ("po_approved", "invoice_validated")
#: (flow, ERP table, key column, field watched, value that makes an event)
EVENTS = (
    ("po_approved", "po_headers", "po_id", "status", "APPROVED"),
    ("invoice_validated", "ap_invoices", "invoice_id", "approval_status", "APPROVED"),
)
PUBLIC_URL = "https://connector.example.com"
MLC = [sys.executable, "-c", "from ml_connector.cli import main; main(prog_name='ml-connector')"]
DEADLINE = 55.0  # seconds for the whole test; every wait below is bounded by it


class AnyLiveProcess(httpx.AsyncBaseTransport):
    """Twilio's side of a load balancer: each callback goes to the next process that answers."""

    def __init__(self, ports: Sequence[int]) -> None:
        self._ports = list(ports)
        self._turn = 0
        self._inner = httpx.AsyncHTTPTransport()
        self.served: Counter[int] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self._turn += 1
        for i in range(len(self._ports)):
            port = self._ports[(self._turn + i) % len(self._ports)]
            forwarded = httpx.Request(
                request.method, request.url.copy_with(scheme="http", host="127.0.0.1", port=port),
                headers=request.headers, content=body, extensions=request.extensions,
            )
            try:
                response = await self._inner.handle_async_request(forwarded)
                await response.aread()
            except httpx.TransportError:
                continue  # that process is gone: the next one gets it
            self.served[port] += 1
            return response
        raise httpx.ConnectError("no connector process answered", request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class Process:
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: TextIO

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


@dataclass
class Cluster:
    config_path: Path
    store: SqlStore
    schema: str
    libpq_url: str
    processes: list[Process] = field(default_factory=list)

    def start(self, port: int, directory: Path) -> Process:
        log_path = directory / f"run-{port}.log"
        log = log_path.open("w")
        popen = subprocess.Popen(
            [*MLC, "-v", "-c", str(self.config_path), "run"],
            env={**os.environ, "MLC_WEBHOOK_PORT": str(port)},
            stdout=log, stderr=subprocess.STDOUT, cwd=directory,
        )
        process = Process(port, popen, log_path, log)
        self.processes.append(process)
        return process

    def holders(self) -> dict[str, int]:
        """flow -> OS pid of the process holding its poller lock (from the lock session's name)."""
        keys = {flow_lock_key(self.schema, flow): flow for flow in FLOWS}
        with psycopg.connect(self.libpq_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT (l.classid::bigint << 32) | l.objid::bigint, a.application_name"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            ).fetchall()
        found: dict[str, int] = {}
        for key, name in rows:  # bigint shifts wrap, so this is the signed key again
            if key in keys:
                found[keys[key]] = int(str(name).rpartition(":")[2])
        return found

    def leased_by(self, pid: int) -> list[int]:
        """Ids of the notifications the process `pid` has claimed and not finished."""
        with psycopg.connect(self.libpq_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT id FROM notifications WHERE status = 'sending' AND lease_owner LIKE %s", (f"%:{pid}",)
            ).fetchall()
        return [int(row[0]) for row in rows]

    def notifications(self) -> list[NotificationView]:
        return self.store.list_notifications(NotificationFilter(limit=100_000))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.kill()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=10)
            process.log.close()


def approved(erp: DemoErp) -> set[tuple[str, str]]:
    """(flow, record key) of every ERP record whose watched field now has the event's value."""
    return {
        (flow, str(row[key]))
        for flow, table, key, watched, value in EVENTS
        for row in erp.rows(table)
        if row[watched] == value
    }


def approve_a_po(erp: DemoErp, rng: random.Random) -> str:
    """An event for po_approved for sure (entering a PO first when none is open)."""
    open_pos = [int(str(r["po_id"])) for r in erp.rows("po_headers") if r["status"] in ("INCOMPLETE", "IN PROCESS")]
    if not open_pos:
        erp.create_po(rng)
        return approve_a_po(erp, rng)
    return erp.approve_po(rng.choice(open_pos))


def validate_an_invoice(erp: DemoErp, rng: random.Random) -> str:
    """An event for invoice_validated for sure (entering an invoice first when none is open)."""
    open_invoices = [
        int(str(r["invoice_id"])) for r in erp.rows("ap_invoices") if r["approval_status"] == "NEVER APPROVED"
    ]
    if not open_invoices:
        erp.create_invoice(rng)
        return validate_an_invoice(erp, rng)
    return erp.validate_invoice(rng.choice(open_invoices))


def make_event(erp: DemoErp, rng: random.Random) -> str:
    return rng.choice((approve_a_po, validate_an_invoice))(erp, rng)


async def until(condition: Any, what: str, deadline: float, every: float = 0.1) -> Any:
    """Await `condition()` (sync, run in a thread) until truthy; fail with `what` past the deadline."""
    while True:
        result = await asyncio.to_thread(condition)
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(every)


def ports_open(ports: Sequence[int]) -> bool:
    import socket

    for port in ports:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return False
    return True


@contextlib.asynccontextmanager
async def twilio_sim(callbacks: AnyLiveProcess) -> AsyncIterator[tuple[TwilioSim, str]]:
    sim = TwilioSim(
        accounts=(Account(sid=DEMO_ACCOUNT_SID, auth_token=DEMO_AUTH_TOKEN, numbers=(DEMO_SENDER,)),),
        api_keys=(), services=(), callback_transport=callbacks, callback_delay=(0.0, 0.05),
        latency=0.05,  # sends are in flight long enough for a kill to catch some mid-request
    )
    try:
        async with serving(sim.create_app()) as url:
            yield sim, url
    finally:
        await sim.aclose()
        await callbacks.aclose()


@pytest.fixture
def cluster(tmp_path: Path, pg_schema_url: str) -> Iterator[Cluster]:
    libpq_url = pg_schema_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
    config_path = tmp_path / "ml-connector.yaml"
    create_key_file(tmp_path / "ml-connector.key")
    # The schema is created once, before the processes start (as `db upgrade` in the README).
    store = SqlStore(pg_schema_url, load_keyring(tmp_path / "ml-connector.key", {}))
    c = Cluster(config_path, store, schema, libpq_url)
    try:
        yield c
    finally:
        c.stop_all()
        store.close()


def test_webhook_port_comes_from_the_environment_when_set(tmp_path: Path) -> None:
    path = tmp_path / "ml-connector.yaml"
    path.write_text(yaml.safe_dump(demo_config(tmp_path, "http://127.0.0.1:1", 8123)), encoding="utf-8")
    config = load_config(path, {})
    assert webhook_port(config, {}) == 8123
    assert webhook_port(config, {"MLC_WEBHOOK_PORT": " 8124 "}) == 8124
    for bad in ("0", "65536", "80a", "-1"):
        with pytest.raises(ConfigError, match="MLC_WEBHOOK_PORT"):
            webhook_port(config, {"MLC_WEBHOOK_PORT": bad})


@pytest.mark.postgres
@pytest.mark.slow
async def test_three_processes_one_killed_nothing_lost_nothing_doubled(
    tmp_path: Path, pg_schema_url: str, cluster: Cluster
) -> None:
    deadline = time.monotonic() + DEADLINE
    erp = DemoErp(tmp_path / "demo-erp.db", tz=DEMO_TZ)
    await asyncio.to_thread(erp.create)
    baseline = approved(erp)
    ports = [free_port() for _ in range(3)]
    callbacks = AnyLiveProcess(ports)
    rng = random.Random(11)

    async with twilio_sim(callbacks) as (sim, twilio_url):
        config = demo_config(tmp_path, twilio_url, ports[0])
        config["store"]["url"] = pg_schema_url
        config["webhooks"]["public_url"] = PUBLIC_URL
        config["dispatcher"]["lease"] = "PT3S"  # a killed dispatcher's claims come back quickly
        cluster.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        for port in ports:
            cluster.start(port, tmp_path)

        # Every process serves webhooks; both flows have a poller and have taken their baseline.
        await until(lambda: ports_open(ports), "webhook ports", deadline)
        await until(lambda: all(cluster.store.get_watermark(f, "started") for f in FLOWS), "baseline", deadline)
        holders = await until(lambda: len(cluster.holders()) == len(FLOWS) and cluster.holders(), "pollers", deadline)
        pids = {p.pid for p in cluster.processes}
        assert set(holders.values()) <= pids

        # Business as usual for a while.
        for _ in range(12):
            await asyncio.to_thread(erp.tick, rng)
            await asyncio.sleep(0.25)
        # Then the process polling po_approved dies without warning, while it has sends in flight
        # (Twilio answers slowly now, so its claimed rows stay in flight long enough to be caught).
        victim = next(p for p in cluster.processes if p.pid == holders["po_approved"])
        sim.set_latency(1.5)
        in_flight: list[int] = []
        while not in_flight:
            await asyncio.to_thread(make_event, erp, rng)
            for _ in range(10):
                in_flight = await asyncio.to_thread(cluster.leased_by, victim.pid)
                if in_flight:
                    break
                await asyncio.sleep(0.1)
            assert time.monotonic() < deadline, "the victim never claimed anything"
        victim.popen.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        sim.set_latency(0.05)
        # The ERP does not stop: events keep coming while no one (then someone else) polls.
        victim_flows = sorted(flow for flow, pid in holders.items() if pid == victim.pid)
        taken: dict[str, tuple[float, int]] = {}  # flow -> (seconds after the kill, new holder's pid)
        for tick in range(40):
            await asyncio.to_thread(erp.tick, rng)
            now_holders = await asyncio.to_thread(cluster.holders)
            for flow in victim_flows:
                if flow not in taken and now_holders.get(flow, victim.pid) != victim.pid:
                    taken[flow] = (time.monotonic() - killed_at, now_holders[flow])
            if len(taken) == len(victim_flows) and tick >= 12:
                break
            await asyncio.sleep(0.25)
        assert sorted(taken) == victim_flows, "no survivor took the killed process's flows over"
        for flow, (seconds, pid) in taken.items():
            print(f"\n{flow} taken over {seconds:.2f} s after SIGKILL (process {victim.pid} -> {pid})")
            assert pid in pids - {victim.pid}
        print(f"{len(in_flight)} send(s) were in flight in the killed process")
        # Events after the takeover, for both flows, so the new poller's work is part of the check.
        await asyncio.to_thread(approve_a_po, erp, rng)
        await asyncio.to_thread(validate_an_invoice, erp, rng)
        events = approved(erp) - baseline
        assert len(events) >= 4

        def settled() -> list[NotificationView] | None:
            views = cluster.notifications()
            done = {(n.flow, n.record_key) for n in views} >= events and all(n.status in FINAL for n in views)
            return views if done else None

        views = await until(settled, "every event notified and every notification final", deadline, 0.25)
        await sim.drain()

        # Nothing lost, nothing invented: notifications exactly for the events.
        assert {(n.flow, n.record_key) for n in views} == events
        # Nothing doubled: one message at Twilio per notification that reached it, and the message
        # the notification records is that one.
        messages = sim.messages()
        assert len({m.sid for m in messages}) == len(messages)
        per_content = Counter((m.to, m.resource["body"]) for m in messages)
        assert max(per_content.values()) == 1, f"sent twice: {[k for k, v in per_content.items() if v > 1]}"
        sent = [n for n in views if n.provider_id]
        assert sorted(n.provider_id or "" for n in sent) == sorted(m.sid for m in messages)
        by_sid = {m.sid: m for m in messages}
        for n in sent:
            message = by_sid[n.provider_id or ""]
            assert (message.to, message.resource["body"]) == (n.recipient, n.body)
        assert any(n.status.value == "delivered" for n in views)
        # The sends the killed process had in flight were finished by the others, each exactly once.
        orphaned = [n for n in views if n.id in in_flight]
        assert len(orphaned) == len(in_flight)
        assert all(n.status in FINAL for n in orphaned)
        for nid in in_flight:
            view = cluster.store.get_notification(nid)
            assert view is not None
            print(f"in flight when killed: #{nid} {view.status.value}, attempts {[a.outcome for a in view.attempts]}")

        # Any process serves webhooks: callbacks were answered by more than one of them.
        assert len(callbacks.served) >= 2, callbacks.served
        # The survivor says it took the flow over.
        for flow, (_, pid) in taken.items():
            survivor = next(p for p in cluster.processes if p.pid == pid)
            assert f"flow {flow}: polled by this process" in survivor.output()

        # A clean stop releases the locks (no waiting for a session to die).
        for process in cluster.processes:
            if process is not victim:
                process.popen.send_signal(signal.SIGTERM)
        for process in cluster.processes:
            if process is not victim:
                code = await asyncio.to_thread(process.popen.wait, max(1.0, deadline - time.monotonic()))
                assert code == 0, process.output()[-2000:]
        assert await asyncio.to_thread(cluster.holders) == {}
