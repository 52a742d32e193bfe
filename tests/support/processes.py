"""Real processes for crash tests: the Twilio simulator and `ml-connector run`, killed with SIGKILL.

Everything here talks to the processes the way an operator would: the simulator through its
/_sim/ control API on loopback, the connector through its config file, its SQLite store (read
with SqlStore, as `notifications list` does) and `ml-connector audit export`. Every process
started through `Processes` is killed when its block ends, also when a test fails.

`python -m ml_connector.cli` has no `__main__` guard (it exits 0 doing nothing), so processes run
the `ml-connector` console script installed next to the running interpreter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import yaml

from ml_connector.core.lifecycle import RANK
from ml_connector.core.models import Status
from ml_connector.demo import DEMO_TZ, demo_config, free_port
from ml_connector.sim.demo_erp import INVALID_PHONE, DemoErp
from ml_connector.sim.twilio_faults import FaultRule
from ml_connector.store.crypto import create_key_file, load_keyring
from ml_connector.store.port import NotificationFilter, NotificationView
from ml_connector.store.sql import SqlStore

T = TypeVar("T")

#: Statuses in which a notification is still in the outbox (the dispatcher owes it a send).
OUTBOX = frozenset({Status.PENDING, Status.DEFERRED, Status.SENDING})
FLOWS = ("po_approved", "invoice_validated")
SIM_FINAL = frozenset({"delivered", "undelivered", "failed", "read"})


def crash_seed(default: int | None = None) -> int:
    """MLC_CRASH_SEED replays a run; otherwise `default`, or a fresh random seed. Printed either way."""
    raw = os.environ.get("MLC_CRASH_SEED")
    seed = int(raw) if raw else (default if default is not None else random.SystemRandom().randrange(1_000_000))
    print(f"crash test seed: {seed} (replay with MLC_CRASH_SEED={seed})")
    return seed


def cli_command() -> list[str]:
    """The `ml-connector` console script of the interpreter running the tests."""
    script = Path(sys.executable).with_name("ml-connector")
    if script.exists():
        return [str(script)]
    found = shutil.which("ml-connector")
    if found is None:
        raise RuntimeError(f"no ml-connector script next to {sys.executable} or on PATH: install the package")
    return [found]


def wait_for(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.05,
             diagnose: Callable[[], str] | None = None) -> T:
    """Call `check` until it returns something truthy; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f"\n{diagnose()}" if diagnose else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)


# -- processes ---------------------------------------------------------------------------------------

@dataclass
class Process:
    """One child process; its stdout and stderr go to a log file (no pipe can fill up and block it)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or committed."""
        if self.alive:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM (a clean stop); SIGKILL if it has not ended after `timeout` seconds."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not stop within {timeout:g} s of SIGTERM") from None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return f"--- last lines of {self.log_path.name} ---\n" + "\n".join(text.splitlines()[-lines:])


class Processes(contextlib.AbstractContextManager["Processes"]):
    """Starts processes and guarantees that every one of them is dead when the block ends."""

    def __init__(self, directory: Path, env: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.env = dict(os.environ if env is None else env)
        for inherited in ("MLC_CONFIG", "MLC_MASTER_KEY"):  # the config file decides, not the caller's shell
            self.env.pop(inherited, None)
        self.started: list[Process] = []

    def start(self, name: str, args: Sequence[str]) -> Process:
        log_path = self.directory / f"{len(self.started):02d}-{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(  # noqa: S603 - our own console script, fixed arguments
                [*cli_command(), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.directory,
            )
        process = Process(name, popen, log_path)
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in self.started:
            with contextlib.suppress(Exception):
                process.kill()

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the Twilio simulator's control API ----------------------------------------------------------------

class SimControl:
    """The simulator process seen through /_sim/: what it accepted, and which faults it plays."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, timeout=10)

    def close(self) -> None:
        self._http.close()

    def healthy(self) -> bool:
        try:
            return self._http.get("/_sim/health").status_code == 200
        except httpx.TransportError:
            return False

    def pending(self) -> int:
        """Status changes and callbacks the simulator still has to make."""
        return int(self._call("GET", "health")["pending"])

    def messages(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "messages")["messages"])

    def set_latency(self, seconds: float) -> None:
        self._call("POST", "latency", {"seconds": seconds})

    def set_faults(self, rules: Iterable[FaultRule], seed: int) -> None:
        self._call("POST", "faults", {"seed": seed, "rules": [dataclasses.asdict(r) for r in rules]})

    def _call(self, method: str, name: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.request(method, f"/_sim/{name}", json=payload)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


# -- the rig: simulator + connector processes over one config ------------------------------------------

def crash_config(directory: Path, twilio_url: str, webhook_port: int, *, lease: str, mps: int,
                 max_attempts: int, store_url: str | None = None) -> dict[str, Any]:
    """The demo's two flows with absolute paths, a short lease (in-doubt rows come back soon after
    a kill) and quick retries, so a crash test settles in seconds."""
    config = demo_config(directory, twilio_url, webhook_port)
    config["store"] = {"url": store_url or f"sqlite:///{directory / 'ml-connector.db'}",
                       "key_file": str(directory / "ml-connector.key")}
    config["sources"]["erp"]["url"] = f"sqlite:///{directory / 'demo-erp.db'}"
    config["twilio"]["accounts"]["main"]["senders"]["alerts"]["mps"] = mps
    config["dispatcher"] = {"concurrency": 20, "idle_poll": "PT0.1S", "lease": lease, "status_check_after": "2s"}
    for flow in config["flows"].values():
        flow["retry"] = {"max_attempts": max_attempts, "base_delay": "PT0.2S", "max_delay": "PT1S"}
    return config


@dataclass
class Rig:
    """A config on disk, the simulator and connector processes it drives, and views of their state."""

    directory: Path
    procs: Processes
    config_path: Path
    twilio_url: str
    webhook_port: int
    erp: DemoErp
    store: SqlStore
    sim: SimControl
    simulator: Process | None = None
    connector: Process | None = None
    runs: int = 0

    @classmethod
    @contextlib.contextmanager
    def open(cls, directory: Path, *, lease: str = "PT3S", mps: int = 30, max_attempts: int = 8,
             store_url: str | None = None) -> Iterator[Rig]:
        """Write the config, the key file, the ERP and an empty store; kill every process on exit."""
        twilio_url, webhook_port = f"http://127.0.0.1:{free_port()}", free_port()
        config = crash_config(directory, twilio_url, webhook_port, lease=lease, mps=mps,
                              max_attempts=max_attempts, store_url=store_url)
        config_path = directory / "ml-connector.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        create_key_file(directory / "ml-connector.key")
        erp = DemoErp(directory / "demo-erp.db", tz=DEMO_TZ)
        erp.create()
        store = SqlStore(config["store"]["url"], load_keyring(directory / "ml-connector.key", {}))
        sim = SimControl(twilio_url)
        with Processes(directory) as procs:
            rig = cls(directory, procs, config_path, twilio_url, webhook_port, erp, store, sim)
            try:
                yield rig
            finally:
                procs.close()
                sim.close()
                store.close()

    # -- processes --

    def cli(self, *args: str) -> list[str]:
        return ["--config", str(self.config_path), *args]

    def start_simulator(self) -> None:
        self.simulator = self.procs.start("simulator", self.cli("simulate", "--no-events"))
        wait_for(self.sim.healthy, timeout=20, what="the Twilio simulator to answer",
                 diagnose=self.simulator.log_tail)

    def start_connector(self, *roles: str) -> Process:
        assert self.connector is None or not self.connector.alive, "the previous connector still runs"
        self.runs += 1
        role_args = [arg for role in roles for arg in ("--role", role)]
        self.connector = self.procs.start(f"connector-{self.runs}", self.cli("-v", "run", *role_args))
        return self.connector

    def kill_connector(self) -> None:
        assert self.connector is not None
        assert self.connector.alive, f"the connector died by itself\n{self.connector.log_tail()}"
        self.connector.kill()

    def stop_connector(self) -> None:
        assert self.connector is not None
        assert self.connector.alive, f"the connector died by itself\n{self.connector.log_tail()}"
        code = self.connector.terminate()
        assert code == 0, f"the connector exited with {code} on SIGTERM\n{self.connector.log_tail()}"

    def diagnose(self) -> str:
        counts: dict[str, int] = {}
        for n in self.notifications():
            counts[n.status.value] = counts.get(n.status.value, 0) + 1
        logs = self.connector.log_tail() if self.connector else ""
        return f"notifications by status: {counts}; simulator messages: {len(self.sim.messages())}\n{logs}"

    # -- the store, as `notifications list` and `audit export` show it --

    def notifications(self) -> list[NotificationView]:
        return self.store.list_notifications(NotificationFilter(limit=100_000))

    def started_at(self) -> datetime | None:
        """The later of the flows' first-run times (events before it are baseline), once all ran."""
        times = [self.store.get_watermark(flow, "started") for flow in FLOWS]
        return None if any(t is None for t in times) else max(t for t in times if t is not None)

    def wait_polling(self) -> datetime:
        """Wait until both flows have run once; then ERP changes are events."""
        started = wait_for(self.started_at, timeout=30, what="both flows to run their first poll",
                           diagnose=self.diagnose)
        assert started is not None
        # ERP stamps are whole local seconds; a change in the next second is safely after the start.
        wait_for(lambda: self.erp.local_now() > started.astimezone(ZoneInfo(DEMO_TZ)).strftime("%Y-%m-%d %H:%M:%S"),
                 timeout=5, what="the ERP clock to pass the flows' start")
        return started

    def audit_export(self) -> list[dict[str, Any]]:
        """`ml-connector audit export --format jsonl`, parsed."""
        done = subprocess.run(  # noqa: S603 - our own console script
            [*cli_command(), *self.cli("audit", "export", "--format", "jsonl")],
            capture_output=True, env=self.procs.env, cwd=self.directory, timeout=60, check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]

    # -- settling --

    def settled(self, expected: int) -> bool:
        """Every expected notification exists and left the outbox, and the simulator has nothing left to do."""
        views = self.notifications()
        if len(views) < expected or any(v.status in OUTBOX for v in views):
            return False
        return self.sim.pending() == 0

    def wait_settled(self, expected: int, timeout: float) -> None:
        wait_for(lambda: self.settled(expected), timeout=timeout, interval=0.2,
                 what=f"{expected} notifications to leave the outbox and the simulator to finish",
                 diagnose=self.diagnose)


# -- ERP events and what they should become ----------------------------------------------------------

#: The demo ERP's phone spellings as E.164 (None: unusable), written out independently of the
#: connector's own normalisation.
PHONES: Mapping[str | None, str | None] = {
    "(312) 555-0142": "+13125550142",
    "312.555.0100": "+13125550100",
    "312-555-0187": "+13125550187",
    "+1 312 555 0123": "+13125550123",
    "312.555.0199 x12": "+13125550199",
    "+44 20 7946 0958": "+442079460958",
    INVALID_PHONE: INVALID_PHONE,
    "n/a": None,
    None: None,
}


def e164(typed: object) -> str | None:
    """The expected recipient for a phone as typed in the demo ERP; KeyError for one not in PHONES."""
    return PHONES[typed if isinstance(typed, str) else None]


@dataclass(frozen=True)
class Event:
    """One ERP change that must notify once: the flow, the record, its number in the body, and To."""

    flow: str
    record_key: str
    number: str
    to: str | None

    @property
    def body_marker(self) -> str:
        return f"PO {self.number} " if self.flow == "po_approved" else f"Invoice {self.number} "

    @property
    def deliverable(self) -> bool:
        return self.to is not None and self.to != INVALID_PHONE


class EventMaker:
    """Business actions on the demo ERP (seeded), remembering which of them must notify."""

    def __init__(self, erp: DemoErp, seed: int) -> None:
        self.erp = erp
        self.rng = random.Random(seed)
        self.events: list[Event] = []

    def _people(self) -> dict[int, str | None]:
        people = {}
        for person in self.erp.rows("people"):
            mobile, work = person["mobile_phone"], person["work_phone"]
            people[int(str(person["person_id"]))] = e164(mobile if mobile is not None else work)
        return people

    def approve_po(self, po_id: int) -> None:
        self.erp.approve_po(po_id)
        po = next(r for r in self.erp.rows("po_headers") if r["po_id"] == po_id)
        to = self._people()[int(str(po["buyer_id"]))]
        self.events.append(Event("po_approved", str(po_id), str(po["po_number"]), to))

    def validate_invoice(self, invoice_id: int) -> None:
        self.erp.validate_invoice(invoice_id)
        invoice = next(r for r in self.erp.rows("ap_invoices") if r["invoice_id"] == invoice_id)
        self.events.append(Event("invoice_validated", str(invoice_id), str(invoice["invoice_num"]),
                                 e164(invoice["approver_phone"])))

    def open_pos(self) -> list[int]:
        return [int(str(r["po_id"])) for r in self.erp.rows("po_headers")
                if r["status"] in ("INCOMPLETE", "IN PROCESS")]

    def open_invoices(self) -> list[int]:
        return [int(str(r["invoice_id"])) for r in self.erp.rows("ap_invoices")
                if r["approval_status"] == "NEVER APPROVED"]

    def step(self) -> None:
        """One random business action, weighted like a busy ERP."""
        pos, invoices = self.open_pos(), self.open_invoices()
        actions: list[tuple[int, Callable[[], object]]] = [
            (4 if pos else 0, lambda: self.approve_po(self.rng.choice(pos))),
            (1 if pos else 0, lambda: self.erp.reject_po(self.rng.choice(pos))),
            (3 if invoices else 0, lambda: self.validate_invoice(self.rng.choice(invoices))),
            (2, lambda: self.erp.create_po(self.rng)),
            (2, lambda: self.erp.create_invoice(self.rng)),
        ]
        _, action = self.rng.choices(actions, weights=[w for w, _ in actions])[0]
        action()

    def burst(self, notifying: int) -> None:
        """Create records and approve them until `notifying` events have happened."""
        target = len(self.events) + notifying
        while len(self.events) < target:
            self.step()


# -- the verdict ---------------------------------------------------------------------------------------

@dataclass
class Verdict:
    """What the crash test checks, as lists of problems (empty lists pass)."""

    problems: list[str] = field(default_factory=list)
    #: Notifications left at queued/sent because every callback of their final status hit a dead
    #: connector: the connector has no other way to learn that status (reported as a gap).
    lost_callbacks: list[str] = field(default_factory=list)
    accepted: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (f"{self.accepted} accepted once by the simulator, {self.failed} failed permanently, "
                f"{len(self.lost_callbacks)} final status(es) never reached the connector")


def judge(events: Sequence[Event], views: Sequence[NotificationView], messages: Sequence[dict[str, Any]],
          audit: Sequence[dict[str, Any]]) -> Verdict:
    """Events vs the store vs the simulator vs the audit trail."""
    verdict = Verdict()
    by_record: dict[tuple[str, str], list[NotificationView]] = {}
    for view in views:
        by_record.setdefault((view.flow, view.record_key), []).append(view)
    by_to_body: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for message in messages:
        by_to_body.setdefault((message["to"], str(message["resource"]["body"])), []).append(message)
    for (to, _), copies in by_to_body.items():
        if len(copies) > 1:
            verdict.problems.append(f"sent twice: {len(copies)} messages to {to[:6]}… with the same body "
                                    f"({', '.join(m['sid'] for m in copies)})")
    expected = {(e.flow, e.record_key) for e in events}
    for key in sorted(set(by_record) - expected):
        verdict.problems.append(f"a notification nobody asked for: {key}")
    for event in events:
        found = by_record.get((event.flow, event.record_key), [])
        if len(found) != 1:
            verdict.problems.append(f"{event.flow} {event.record_key}: {len(found)} notifications, expected 1")
            continue
        _judge_one(event, found[0], messages, audit, verdict)
    return verdict


def _judge_one(event: Event, view: NotificationView, messages: Sequence[dict[str, Any]],
               audit: Sequence[dict[str, Any]], verdict: Verdict) -> None:
    name = f"{event.flow} {event.record_key} (#{view.id})"
    sent = [m for m in messages if event.body_marker in str(m["resource"]["body"])]
    if not event.deliverable:
        if view.status is not Status.FAILED or not view.problem:
            verdict.problems.append(f"{name}: unusable number should fail with a reason, is {view.status}")
        if event.to == INVALID_PHONE and view.error_code != 21211:
            verdict.problems.append(f"{name}: invalid number should fail with 21211, got {view.error_code}")
        if sent:
            verdict.problems.append(f"{name}: unusable number, yet the simulator accepted {len(sent)} message(s)")
        verdict.failed += 1
        return
    if len(sent) != 1:
        verdict.problems.append(f"{name}: the simulator accepted {len(sent)} messages, expected exactly 1")
        return
    [message] = sent
    if (message["to"], message["resource"]["body"]) != (event.to, view.body) or view.recipient != event.to:
        verdict.problems.append(f"{name}: the accepted message does not match the notification's To and Body")
    if view.provider_id != message["sid"]:
        verdict.problems.append(f"{name}: store has provider id {view.provider_id}, simulator {message['sid']}")
    verdict.accepted += 1
    _judge_status(name, view, message, audit, verdict)


def _judge_status(name: str, view: NotificationView, message: dict[str, Any], audit: Sequence[dict[str, Any]],
                  verdict: Verdict) -> None:
    """The final status Twilio reached is the store's, and in the audit; unless it never got through."""
    final = str(message["status"])
    if final not in SIM_FINAL:
        verdict.problems.append(f"{name}: the simulator still has it at {final}")
        return
    mine = [row for row in audit if row["notification_id"] == view.id]
    applied = [Status(row["status"]) for row in mine
               if row["kind"] == "status" and row["detail"].get("result") == "applied"]
    if any(RANK[later] <= RANK[earlier] for earlier, later in zip(applied, applied[1:], strict=False)):
        verdict.problems.append(f"{name}: status moved backwards: {' -> '.join(s.value for s in applied)}")
    audited = {(row["detail"].get("provider_id"), row["detail"].get("provider_status")) for row in mine}
    audited |= {(row["detail"].get("provider_id"), row["status"]) for row in mine if row["kind"] == "attempt"}
    for callback in message["callbacks"]:
        if callback["ok"] and (message["sid"], callback["status"]) not in audited:
            verdict.problems.append(f"{name}: callback {callback['status']} was answered 2xx but is not in the audit")
    if view.status.value == final:
        if (message["sid"], final) not in audited:
            verdict.problems.append(f"{name}: final status {final} is in the store but not in the audit")
        return
    landed = any(c["ok"] for c in message["callbacks"] if c["status"] == final)
    if view.status in (Status.QUEUED, Status.SENT) and not landed:
        verdict.lost_callbacks.append(f"{name}: {view.status.value} in the store, {final} at Twilio")
        return
    verdict.problems.append(f"{name}: store says {view.status.value}, the simulator {final}")
