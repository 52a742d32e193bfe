"""`ml-connector demo` and `ml-connector simulate`: the connector against built-in simulators.

The demo wires the real pieces together, over real loopback HTTP: the demo ERP (a SQLite database
read through the SQL source), the Twilio simulator (sends signed status callbacks to our webhook
server), the dispatcher and the pollers. Nothing is faked inside the connector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ml_connector.core.redact import mask_phone

DEMO_ACCOUNT_SID = "AC" + "a" * 32
DEMO_AUTH_TOKEN = "simulator-token"  # noqa: S105 - the simulator's published demo credential
DEMO_SENDER = "+15005550006"
DEMO_TZ = "America/Chicago"

TERMINAL = {"delivered", "read", "failed", "undelivered", "dead", "suppressed"}
STYLE = {"delivered": "green", "read": "green", "failed": "red", "undelivered": "red", "dead": "red",
         "suppressed": "magenta", "sent": "cyan", "queued": "cyan"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_config(data_dir: Path, twilio_url: str, webhook_port: int) -> dict[str, Any]:
    """The demo's config: the same shape as examples/sql.yaml, with the ports of this run."""
    return {
        "store": {"url": "sqlite:///ml-connector.db", "key_file": "ml-connector.key"},
        "webhooks": {"public_url": f"http://127.0.0.1:{webhook_port}", "host": "127.0.0.1", "port": webhook_port},
        "twilio": {"accounts": {"main": {
            "account_sid": DEMO_ACCOUNT_SID,
            "auth_token": DEMO_AUTH_TOKEN,
            "base_urls": {"api": twilio_url},
            "senders": {"alerts": {"from": DEMO_SENDER, "mps": 10}},
        }}},
        "sources": {"erp": {
            "type": "sql", "url": "sqlite:///demo-erp.db", "timezone": DEMO_TZ, "default_region": "US",
            "entities": {
                "purchase_order": {"table": "po_headers", "key": "po_id", "changed_at": "last_update_date"},
                "invoice": {"table": "ap_invoices", "key": "invoice_id", "changed_at": "last_update_date"},
                "person": {"table": "people", "key": "person_id", "changed_at": "last_update_date"},
            },
        }},
        "flows": {
            "po_approved": {
                "source": "erp", "entity": "purchase_order",
                "schedule": {"every": "PT1S", "overlap": "PT2M", "clock_skew": "PT0.5S"},
                "trigger": {"field": "status", "becomes": "APPROVED"},
                "recipients": [{"lookup": {"entity": "person", "key_field": "buyer_id",
                                           "fields": ["mobile_phone", "work_phone"]}}],
                "sender": "main.alerts", "timezone": DEMO_TZ,
                "template": "PO {{ po_number }} for {{ vendor_name }} approved: "
                            "{{ amount | money(currency) }}.",
                "retry": {"max_attempts": 4, "base_delay": "PT1S", "max_delay": "PT5S"},
            },
            "invoice_validated": {
                "source": "erp", "entity": "invoice",
                "schedule": {"every": "PT1S", "overlap": "PT2M", "clock_skew": "PT0.5S"},
                "trigger": {"field": "approval_status", "becomes": "APPROVED"},
                "recipients": [{"field": "approver_phone"}],
                "sender": "main.alerts", "timezone": DEMO_TZ,
                "template": "Invoice {{ invoice_num }} from {{ vendor_name }} validated: "
                            "{{ amount | money(currency) }}. Please approve.",
                "retry": {"max_attempts": 4, "base_delay": "PT1S", "max_delay": "PT5S"},
            },
        },
        "dispatcher": {"concurrency": 20, "idle_poll": "PT0.1S"},
    }


@dataclass
class Journey:
    """What a person watching the demo sees of one notification."""

    flow: str = ""
    record: str = ""
    to: str = ""
    steps: list[str] = field(default_factory=list)
    detail: str = ""
    reported_final: bool = False

    def add(self, status: str | None) -> bool:
        if status and (not self.steps or self.steps[-1] != status):
            self.steps.append(status)
            return True
        return False

    @property
    def last(self) -> str:
        return self.steps[-1] if self.steps else ""

    @property
    def final(self) -> bool:
        return self.last in TERMINAL

    def path(self) -> str:
        style = STYLE.get(self.last, "yellow")
        return f"[{style}]{' → '.join(self.steps)}[/{style}]"

    def line(self, notification_id: int) -> str:
        detail = f"  {self.detail}" if self.detail else ""
        return f"#{notification_id:<4} {self.flow:<18} {self.record:<6} {self.to:<14} {self.path()}{detail}"


class JourneyWatcher:
    """Follows the audit trail and shows each notification's journey as it moves.

    In a terminal the journeys are a live table; otherwise each notification gets a line when
    it is created and one when it reaches its final status, with the whole path and the reason.
    """

    def __init__(self, store: Any, console: Console) -> None:
        self._store = store
        self._console = console
        self._last_id = 0
        self.journeys: dict[int, Journey] = {}
        self.live = console.is_terminal

    async def follow(self) -> None:
        entries = await asyncio.to_thread(self._new_entries)
        touched: set[int] = set()
        for entry in entries:
            self._last_id = max(self._last_id, entry.id)
            if entry.notification_id is None:
                continue
            journey = self.journeys.get(entry.notification_id)
            if journey is None:
                journey = self.journeys[entry.notification_id] = Journey()
                touched.add(entry.notification_id)
            if journey.add(entry.status):
                touched.add(entry.notification_id)
        for notification_id in sorted(touched):
            await self._refresh(notification_id)

    async def _refresh(self, notification_id: int) -> None:
        journey = self.journeys[notification_id]
        view = await asyncio.to_thread(self._store.get_notification, notification_id)
        if view is None:
            return
        journey.flow, journey.record = view.flow, view.record_key
        journey.to = mask_phone(view.recipient) if view.recipient.startswith("+") else "(no number)"
        journey.detail = view.problem if journey.final else ""
        if self.live:
            return
        if len(journey.steps) == 1 and not journey.final:
            self._console.print(journey.line(notification_id))
        elif journey.final and not journey.reported_final:
            journey.reported_final = True
            self._console.print(journey.line(notification_id))

    def _new_entries(self) -> list[Any]:
        return [e for e in self._store.audit(None, None) if e.id > self._last_id]

    def table(self, limit: int = 14) -> Table:
        table = Table(title="notifications (newest last)", expand=True)
        for col in ("#", "flow", "record", "to", "journey", "detail"):
            table.add_column(col, overflow="fold")
        for notification_id in sorted(self.journeys)[-limit:]:
            j = self.journeys[notification_id]
            table.add_row(str(notification_id), j.flow, j.record, j.to, j.path(), j.detail)
        return table

    @property
    def unfinished(self) -> int:
        return sum(1 for j in self.journeys.values() if not j.final)

    def summary(self) -> Table:
        counts: dict[str, int] = {}
        for journey in self.journeys.values():
            counts[journey.last] = counts.get(journey.last, 0) + 1
        table = Table(title="demo summary")
        table.add_column("status")
        table.add_column("notifications", justify="right")
        for status, count in sorted(counts.items()):
            style = STYLE.get(status, "yellow")
            table.add_row(f"[{style}]{status}[/{style}]", str(count))
        return table

    @property
    def delivered(self) -> int:
        return sum(1 for j in self.journeys.values() if j.last in ("delivered", "read"))


@contextlib.contextmanager
def _data_dir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="mlc-demo-") as tmp:
        yield Path(tmp)


@contextlib.asynccontextmanager
async def _stop_on_signals() -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _wait(stop: asyncio.Event, seconds: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _generate_events(erp: Any, stop: asyncio.Event, every: float, console: Console, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        await _wait(stop, every)
        if stop.is_set():
            break
        for event in await asyncio.to_thread(erp.tick, rng):
            console.print(f"[dim]ERP  {datetime.now(UTC):%H:%M:%S}  {event}[/dim]")


async def run_demo(*, duration: float | None, data_dir: Path | None, every: float, console: Console) -> bool:
    """Run the demo; True when at least one notification was delivered."""
    from ml_connector.app import Connector
    from ml_connector.config import load_config
    from ml_connector.sim.demo_erp import DemoErp
    from ml_connector.sim.twilio import Account, Outcome, TwilioSim
    from ml_connector.store.crypto import create_key_file
    from ml_connector.web.server import serving

    # The journeys show every failure with its reason; warnings would only repeat them.
    previous_level = logging.getLogger("ml_connector").level
    logging.getLogger("ml_connector").setLevel(logging.ERROR)
    with _data_dir(data_dir) as directory:
        erp = DemoErp(directory / "demo-erp.db", tz=DEMO_TZ)
        await asyncio.to_thread(erp.create)
        sim = TwilioSim(accounts=(Account(sid=DEMO_ACCOUNT_SID, auth_token=DEMO_AUTH_TOKEN, numbers=(DEMO_SENDER,)),),
                        api_keys=(), services=())
        # A UK landline in the HR data: accepted by Twilio, then undelivered by the carrier (30006).
        sim.set_outcome("+442079460958", Outcome(status="undelivered", error_code=30006))
        webhook_port = free_port()
        async with serving(sim.create_app()) as twilio_url, _stop_on_signals() as stop:
            config_path = directory / "ml-connector.yaml"
            config_path.write_text(yaml.safe_dump(demo_config(directory, twilio_url, webhook_port),
                                                  sort_keys=False), encoding="utf-8")
            if not (directory / "ml-connector.key").exists():
                create_key_file(directory / "ml-connector.key")
            connector = Connector(load_config(config_path, {}))
            console.print(f"[bold]ml-connector demo[/bold]: ERP {directory / 'demo-erp.db'}, "
                          f"Twilio simulator {twilio_url}, webhooks http://127.0.0.1:{webhook_port}")
            console.print("An ERP event every few seconds becomes an SMS; each notification's journey is "
                          "shown. " + (f"Stops after {duration:g} s." if duration else "Ctrl-C stops."))
            watcher = JourneyWatcher(connector.store, console)
            stop_sending = asyncio.Event()
            polling = asyncio.create_task(connector.run(stop, ("poller",)))
            sending = asyncio.create_task(connector.run(stop_sending, ("dispatcher", "web")))
            events = asyncio.create_task(_generate_events(erp, stop, every, console, seed=7))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + duration if duration else None
            live = Live(watcher.table(), console=console, refresh_per_second=4) if watcher.live else None
            try:
                with live if live else contextlib.nullcontext():
                    while not stop.is_set() and (deadline is None or loop.time() < deadline):
                        await watcher.follow()
                        if live:
                            live.update(watcher.table())
                        await _wait(stop, 0.25)
                        for task in (polling, sending):
                            if task.done():
                                task.result()  # a crashed role ends the demo with its error
                    stop.set()
                    # Let what was already created finish its journey (a few seconds at most).
                    grace = loop.time() + 5
                    while watcher.unfinished and loop.time() < grace:
                        await watcher.follow()
                        if live:
                            live.update(watcher.table())
                        await asyncio.sleep(0.25)
            finally:
                stop.set()
                stop_sending.set()
                await asyncio.gather(polling, sending, events, return_exceptions=True)
                await sim.drain()
                await watcher.follow()
                await connector.aclose()
                await sim.aclose()
            logging.getLogger("ml_connector").setLevel(previous_level)
        console.print(watcher.summary())
        console.print(f"data kept in {directory}" if data_dir else "demo data removed")
        return watcher.delivered > 0


def twilio_sim_for(config: Any) -> Any:
    """A Twilio simulator that knows the config's accounts, API keys, numbers and services."""
    from ml_connector.sim.twilio import Account, ApiKey, MessagingService, TwilioSim

    accounts, keys, services = [], [], []
    for acct in config.twilio.accounts.values():
        numbers = tuple(s.from_ for s in acct.senders.values() if s.from_) or (DEMO_SENDER,)
        token = acct.auth_token.get_secret_value() if acct.auth_token else DEMO_AUTH_TOKEN
        accounts.append(Account(sid=acct.account_sid, auth_token=token, numbers=numbers))
        if acct.api_key_sid and acct.api_key_secret:
            keys.append(ApiKey(sid=acct.api_key_sid, secret=acct.api_key_secret.get_secret_value(),
                               account_sid=acct.account_sid))
        services += [MessagingService(sid=s.messaging_service_sid, account_sid=acct.account_sid, pool=numbers)
                     for s in acct.senders.values() if s.messaging_service_sid]
    return TwilioSim(accounts=tuple(accounts), api_keys=tuple(keys), services=tuple(services))


async def run_simulators(config: Any, *, twilio_port: int | None, events: bool, console: Console) -> None:
    """Serve what `config` points at: the Twilio simulator and the demo ERP database."""
    from ml_connector.sim.demo_erp import DemoErp
    from ml_connector.web.server import serving

    erps = []
    for name, source in config.sources.items():
        url = getattr(source, "url", "")
        if source.type == "sql" and url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            erp = DemoErp(path, tz=getattr(source, "timezone", DEMO_TZ))
            if not await asyncio.to_thread(path.exists):
                await asyncio.to_thread(erp.create)
                console.print(f"source {name}: created demo ERP database {path}")
            else:
                console.print(f"source {name}: using existing database {path}")
            erps.append(erp)
    account = next(iter(config.twilio.accounts.values()))
    port = twilio_port or urlsplit(str(account.base_urls.api)).port or 8910
    sim = twilio_sim_for(config)
    async with serving(sim.create_app(), "127.0.0.1", port) as url, _stop_on_signals() as stop:
        console.print(f"Twilio simulator on {url} (account {account.account_sid}); Ctrl-C stops")
        tasks = [asyncio.create_task(_generate_events(erp, stop, 3.0, console, seed=i))
                 for i, erp in enumerate(erps)] if events else []
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sim.aclose()
