"""`ml-connector demo` and `ml-connector simulate`: the connector against built-in simulators.

The demo wires the real pieces together, over real loopback HTTP: the demo ERP (a SQLite database
read through the SQL source), the Twilio simulator (sends signed status callbacks to our webhook
server), the dispatcher and the pollers. Nothing is faked inside the connector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ml_connector.core.models import Status
from ml_connector.core.redact import mask_phone
from ml_connector.demo_channels import DEMO_HOOK_SECRET, add_channel_sections, mask_address, plan_calls

DEMO_ACCOUNT_SID = "AC" + "a" * 32
DEMO_AUTH_TOKEN = "simulator-token"  # noqa: S105 - the simulator's published demo credential
DEMO_SENDER = "+15005550006"
DEMO_TZ = "America/Chicago"

NOTIFICATION_STATUSES = frozenset(s.value for s in Status)  # audit rows of write-backs carry their own
TERMINAL = {"delivered", "read", "acknowledged", "failed", "undelivered", "dead", "suppressed"}
STYLE = {"delivered": "green", "read": "green", "acknowledged": "green", "failed": "red", "undelivered": "red",
         "dead": "red", "suppressed": "magenta", "sent": "cyan", "queued": "cyan"}


def demo_login(connector: Any) -> str:
    """An operator `demo` with a fresh random password, for the demo's dashboard; the password."""
    import secrets

    from ml_connector.store.users import Role, UserStore, engine_of

    password = secrets.token_urlsafe(12)
    UserStore(engine_of(connector.store)).add_user("demo", Role.OPERATOR, password, datetime.now(UTC), actor="demo")
    return password


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


EBS_TZ = "America/New_York"
EBS_FAST = {"every": "1s", "overlap": "2m", "clock_skew": "0.5s"}


def ebs_sections(ebs_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Oracle EBS source and its flows, as in examples/oracle-ebs.yaml but polling every second."""
    source = {
        "type": "oracle_ebs", "base_url": ebs_url, "username": "ISGUSER", "password": "welcome1",
        "auth": "session", "mode": "isg", "context_mode": "body", "timezone": EBS_TZ, "retry_delay": 0.2,
        "context": {"responsibility": "PAYABLES_MANAGER", "application": "SQLAP", "org_id": 204},
        "entities": {
            "invoices": {"method": "get_changed_invoices", "output": "X_INVOICES", "key": "INVOICE_ID",
                         "table": "AP_INVOICES_ALL"},
            "pos": {"method": "get_changed_pos", "output": "X_POS", "key": "PO_HEADER_ID", "table": "PO_HEADERS_ALL",
                    "context": {"responsibility": "PURCHASING_SUPER_USER", "application": "PO", "org_id": 204}},
            "people": {
                "method": "get_changed_people", "output": "X_PEOPLE", "key": "PERSON_ID", "table": "PER_ALL_PEOPLE_F",
                "context": {"responsibility": "US_HRMS_MANAGER", "application": "PER", "org_id": None},
                "effective_start": "EFFECTIVE_START_DATE", "effective_end": "EFFECTIVE_END_DATE",
                "lookup": {"method": "get_person", "param": "P_PERSON_ID", "output": "X_PERSON",
                           "pivot": {"collection": "X_PHONES", "key": "PHONE_TYPE", "value": "PHONE_NUMBER",
                                     "prefix": "PHONE_"}},
            },
            "supplier_sites": {"method": "get_changed_supplier_sites", "output": "X_SITES", "key": "VENDOR_SITE_ID",
                               "table": "AP_SUPPLIER_SITES_ALL"},
        },
    }
    common = {"source": "ebs", "schedule": EBS_FAST, "sender": "main.alerts", "timezone": EBS_TZ,
              "retry": {"max_attempts": 4, "base_delay": "1s", "max_delay": "5s"}}
    flows = {
        "ebs_invoice_validated": {
            **common, "entity": "invoices", "trigger": {"field": "APPROVAL_STATUS", "becomes": "APPROVED"},
            "recipients": [{"static": ["+13125550142"]}],
            "template": "EBS invoice {{ INVOICE_NUM }} for {{ INVOICE_AMOUNT | money(INVOICE_CURRENCY_CODE) }} "
                        "is validated and ready for payment.",
        },
        "ebs_po_approved": {
            **common, "entity": "pos", "trigger": {"field": "AUTHORIZATION_STATUS", "becomes": "APPROVED"},
            "recipients": [{"lookup": {"entity": "people", "key_field": "AGENT_ID",
                                       "fields": ["PHONE_M", "PHONE_W1"]}}],
            "template": "EBS PO {{ SEGMENT1 }} (rev {{ REVISION_NUM }}) was approved.",
        },
        "ebs_employee_hired": {
            **common, "entity": "people",
            "trigger": {"all": [{"field": "EFFECTIVE_NOW", "becomes": "Y"},
                                {"field": "CURRENT_EMPLOYEE_FLAG", "eq": "Y"}]},
            "recipients": [{"static": ["+13125550177"]}],
            "template": "{{ FULL_NAME }} (employee {{ EMPLOYEE_NUMBER }}) starts today.",
        },
        "ebs_supplier_changed": {
            **common, "entity": "supplier_sites",
            "trigger": {"any": [{"field": "EXT_BANK_ACCOUNT_ID", "changed": True},
                                {"field": "ADDRESS_LINE1", "changed": True}]},
            "recipients": [{"static": ["+13125550142"]}],
            "template": "EBS supplier {{ VENDOR_NAME }} site {{ VENDOR_SITE_CODE }} changed: pays to {{ BANK_NAME }} "
                        "{{ MASKED_BANK_ACCOUNT_NUM }}, remit to {{ ADDRESS_LINE1 }}. Confirm before paying.",
        },
    }
    return source, flows


SYSPRO_TZ = "Africa/Johannesburg"


def syspro_sections(syspro_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SYSPRO source and its flows, as in examples/syspro.yaml but polling every second."""
    supplier = {"table": "ApSupplier", "key": "Supplier", "columns": ["SupplierName"]}
    source = {
        "type": "syspro", "mode": "enet", "base_url": syspro_url, "operator": "MLC", "operator_password": "mlc-pass",
        "company_id": "EDU1", "timezone": SYSPRO_TZ, "retry_delay": 0.2,
        "entities": {
            "purchase_orders": {
                "table": "PorMasterHdr", "key": "PurchaseOrder", "change": "snapshot",
                "columns": ["PurchaseOrder", "Supplier", "OrderStatus", "OrderEntryDate", "Buyer", "Currency"],
                "where": [{"column": "OrderStatus", "condition": "NE", "value": "9"},
                          {"column": "OrderStatus", "condition": "NE", "value": "*"}],
                "lines": {}, "joins": [supplier], "lookup": "porqry",
            },
            "invoices": {
                "table": "ApInvoice", "key": ["Supplier", "Invoice"], "change": "date", "date_column": "InvoiceDate",
                "columns": ["Supplier", "Invoice", "InvoiceDate", "OrigInvValue", "Currency"],
                "numbers": ["OrigInvValue"], "joins": [supplier],
            },
        },
    }
    common = {"source": "syspro", "sender": "main.alerts", "timezone": SYSPRO_TZ, "currency": "ZAR",
              "retry": {"max_attempts": 4, "base_delay": "1s", "max_delay": "5s"}}
    flows = {
        "syspro_po_approved": {
            **common, "entity": "purchase_orders", "schedule": {"every": "2s", "overlap": "2m", "clock_skew": "0.5s"},
            "trigger": {"field": "OrderStatus", "becomes": "1"}, "recipients": [{"static": ["+13125550166"]}],
            "template": "SYSPRO PO {{ PurchaseOrder }} approved: {{ SupplierName or Supplier }}, "
                        "{{ LineCount }} line(s), {{ OrderTotal | money(Currency) }}.",
        },
        "syspro_invoice_posted": {
            **common, "entity": "invoices",
            "schedule": {"every": "2s", "overlap": "2m", "clock_skew": "0.5s", "baseline": "2d", "max_window": "3d"},
            "trigger": {"field": "Invoice", "changed": True}, "recipients": [{"static": ["+13125550167"]}],
            "template": "SYSPRO invoice {{ Invoice }} from {{ SupplierName or Supplier }} posted: "
                        "{{ OrigInvValue | money(Currency) }} (dated {{ InvoiceDate | date }}).",
        },
    }
    return source, flows


def demo_config(data_dir: Path, twilio_url: str, webhook_port: int, *, ebs_url: str | None = None,
                syspro_url: str | None = None, sap_url: str | None = None,
                ps_url: str | None = None) -> dict[str, Any]:
    """The demo's config: examples/sql.yaml's shape, plus EBS, SYSPRO, SAP and PeopleSoft when given."""
    from ml_connector.demo_peoplesoft import peoplesoft_sections
    from ml_connector.demo_sap import sap_sections

    config = _sql_demo_config(twilio_url, webhook_port)
    for name, url, sections in (("ebs", ebs_url, ebs_sections), ("syspro", syspro_url, syspro_sections),
                                ("sap", sap_url, sap_sections), ("ps", ps_url, peoplesoft_sections)):
        if url:
            source, flows = sections(url)
            config["sources"][name] = source
            config["flows"].update(flows)
    return config


def _sql_demo_config(twilio_url: str, webhook_port: int) -> dict[str, Any]:
    return {
        "store": {"url": "sqlite:///ml-connector.db", "key_file": "ml-connector.key"},
        "webhooks": {"public_url": f"http://127.0.0.1:{webhook_port}", "host": "127.0.0.1", "port": webhook_port},
        "admin": {"host": "127.0.0.1", "port": 0},  # each process a free port: several may share this file
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
    reported_final: str = ""  # the final status last printed

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
        return f"#{notification_id:<4} {self.flow:<22} {self.record:<6} {self.to:<14} {self.path()}{detail}"


class JourneyWatcher:
    """Follows the audit trail and shows each notification's journey as it moves.

    In a terminal the journeys are a live table; otherwise each notification gets a line when
    it is created and one when it reaches its final status, with the whole path and the reason.
    """

    def __init__(self, store: Any, console: Console) -> None:
        self._store = store
        self._console = console
        self._last_id = 0
        self._last_at: datetime | None = None
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
            if entry.status in NOTIFICATION_STATUSES and journey.add(entry.status):
                touched.add(entry.notification_id)
        for notification_id in sorted(touched):
            await self._refresh(notification_id)

    async def _refresh(self, notification_id: int) -> None:
        journey = self.journeys[notification_id]
        view = await asyncio.to_thread(self._store.get_notification, notification_id)
        if view is None:
            return
        journey.flow, journey.record = view.flow, view.record_key
        journey.to = (mask_phone(view.recipient) if view.recipient.startswith("+") else
                      mask_address(view.recipient) if view.channel == "email" else
                      view.recipient if view.channel == "webhook" else "(no number)")
        journey.detail = view.problem if journey.final else ""
        if self.live:
            return
        if len(journey.steps) == 1 and not journey.final:
            self._console.print(journey.line(notification_id))
        elif journey.final and journey.reported_final != journey.last:  # again for read/acknowledged
            journey.reported_final = journey.last
            self._console.print(journey.line(notification_id))

    def _new_entries(self) -> list[Any]:
        # Rows carry their event's time, which can precede their commit: look a minute back, by id.
        since = self._last_at - timedelta(minutes=1) if self._last_at else None
        entries = [e for e in self._store.audit(since, None) if e.id > self._last_id]
        if entries:
            self._last_at = max(e.at for e in entries)
        return entries

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
        if not self._console.is_terminal:  # piped: plain text, no box drawing
            table.box = None
        table.add_column("status")
        table.add_column("notifications", justify="right")
        for status, count in sorted(counts.items()):
            style = STYLE.get(status, "yellow")
            table.add_row(f"[{style}]{status}[/{style}]", str(count))
        return table

    @property
    def delivered(self) -> int:
        return sum(1 for j in self.journeys.values() if j.last in ("delivered", "read", "acknowledged"))


def written_back_line(journeys: Mapping[int, Journey], flows: Collection[str],
                      rows: Sequence[Mapping[str, object]]) -> str:
    """Whether every final status the demo showed for an EBS flow is in EBS's audit table."""
    written = Counter((str(r["source_id"]), str(r["status"]).lower()) for r in rows)
    missing: list[str] = []
    finals = 0
    for nid, journey in sorted(journeys.items()):
        if journey.flow not in flows or not journey.final:
            continue
        finals += 1
        if written[(journey.record, journey.last)] > 0:
            written[(journey.record, journey.last)] -= 1
        else:
            missing.append(f"#{nid} {journey.flow} {journey.record} {journey.last}")
    if missing:
        return f"final EBS statuses shown but not written back: {', '.join(missing)}"
    return f"every final EBS status shown ({finals}) was written back"


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


class EbsEvents:
    """Business events in the EBS simulator: invoices validated, POs approved, people hired,
    supplier sites and bank accounts changed."""

    FIRST = ("Maya", "Ken", "Ines", "Raj", "Zoe", "Omar")
    LAST = ("Lindqvist", "Okafor", "Moreau", "Tanaka", "Novak", "Haddad")

    def __init__(self, sim: Any) -> None:
        self._sim = sim
        self._hires = 0

    def tick(self, rng: random.Random) -> list[str]:
        tables = self._sim.tables
        open_invoices = sorted(i.invoice_id for i in tables.invoices.values()
                               if i.org_id == 204 and tables.approval_status(i) != "APPROVED"
                               and i.cancelled_date is None)
        open_pos = sorted(p.po_header_id for p in tables.pos.values()
                          if p.org_id == 204 and p.authorization_status in ("INCOMPLETE", "IN PROCESS"))
        choices: list[tuple[int, Any]] = [
            (3 if open_invoices else 0, lambda: self._validate(rng.choice(open_invoices))),
            (3 if open_pos else 0, lambda: self._approve(rng.choice(open_pos))),
            (1, lambda: self._hire(rng)),
            (1, lambda: self._new_invoice(rng)),
            (1, lambda: self._supplier_change(rng)),
        ]
        weights = [w for w, _ in choices]
        return [rng.choices([action for _, action in choices], weights)[0]()]

    def _validate(self, invoice_id: int) -> str:
        self._sim.validate_invoice(invoice_id, release_holds=True)
        return f"EBS invoice {self._sim.tables.invoices[invoice_id].invoice_num} validated"

    def _approve(self, po_header_id: int) -> str:
        self._sim.approve_po(po_header_id)
        return f"EBS PO {self._sim.tables.pos[po_header_id].segment1} approved"

    def _hire(self, rng: random.Random) -> str:
        first, last = rng.choice(self.FIRST), rng.choice(self.LAST)
        self._hires += 1
        self._sim.hire(first, last, start=self._sim.today(), mobile=f"(312) 555-01{50 + self._hires % 40:02d}")
        return f"EBS hired {first} {last}, starting today"

    def _supplier_change(self, rng: random.Random) -> str:
        site = self._sim.tables.sites[rng.choice(sorted(k for k, v in self._sim.tables.sites.items()
                                                        if v.org_id == 204))]
        name = self._sim.tables.suppliers[site.vendor_id].vendor_name
        if rng.random() < 0.5:
            self._sim.change_bank_account(site.vendor_site_id, bank_name="Lakeshore Credit Union",
                                          account_num=f"{rng.randrange(10**9, 10**10)}")
            return f"EBS supplier {name}: new bank account on site {site.vendor_site_code}"
        self._sim.change_supplier_site(site.vendor_site_id, address_line1=f"{rng.randrange(1, 999)} Lake St")
        return f"EBS supplier {name}: site {site.vendor_site_code} address changed"

    def _new_invoice(self, rng: random.Random) -> str:
        result = self._sim.add_invoice(org_id=204, amount=round(rng.uniform(200, 9000), 2))
        return f"EBS invoice {self._sim.tables.invoices[result.key].invoice_num} entered"


class SysproEvents:
    """Business events in the SYSPRO simulator: POs approved ('0' -> '1'), AP invoices posted."""

    def __init__(self, sim: Any) -> None:
        self._sim = sim
        self._invoices = 0

    def tick(self, rng: random.Random) -> list[str]:
        rows = self._sim.data.rows
        awaiting = [r["PurchaseOrder"] for r in rows["PorMasterHdr"] if r["OrderStatus"] == "0"]
        if awaiting and rng.random() < 0.6:
            po = rng.choice(awaiting)
            self._sim.set_po_status(po, "1")
            return [f"SYSPRO PO {po.strip()} approved"]
        supplier = rng.choice(rows["ApSupplier"])
        self._invoices += 1
        invoice = f"DM{self._invoices:05d}"
        amount = Decimal(rng.randrange(20_000, 900_000)) / 100
        self._sim.post_ap_invoice(supplier=supplier["Supplier"], invoice=invoice, amount=amount)
        return [f"SYSPRO invoice {invoice} from {supplier['SupplierName'].strip()} posted"]


def syspro_simulator(source: Any) -> Any:
    """A SYSPRO simulator that accepts the config's operator and company."""
    from ml_connector.sim.syspro import DEFAULT_OPERATORS, SysproOperator, SysproSim

    operator = SysproOperator(source.operator, source.operator_password.get_secret_value())
    others = tuple(o for o in DEFAULT_OPERATORS if o.code != operator.code)
    return SysproSim(operators=(operator, *others), company=source.company_id or "EDU1",
                     company_password=source.company_password.get_secret_value())


async def _generate_events(erps: list[Any], stop: asyncio.Event, every: float, console: Console, seed: int) -> None:
    """One business event every `every` seconds, taking the ERPs in turn."""
    rng = random.Random(seed)
    turn = 0
    while not stop.is_set():
        await _wait(stop, every)
        if stop.is_set() or not erps:
            break
        erp = erps[turn % len(erps)]
        turn += 1
        for event in await asyncio.to_thread(erp.tick, rng):
            console.print(f"[dim]ERP  {datetime.now(UTC):%H:%M:%S}  {event}[/dim]")


async def run_demo(*, duration: float | None, data_dir: Path | None, every: float, console: Console) -> bool:
    """Run the demo; True when at least one notification was delivered."""
    from ml_connector.app import Connector
    from ml_connector.config import load_config
    from ml_connector.demo_peoplesoft import PeopleSoftEvents, peoplesoft_simulator
    from ml_connector.demo_sap import SAP_TZ, SapEvents, sap_duplicates_line
    from ml_connector.demo_sap import seed as seed_sap
    from ml_connector.sim.demo_erp import DemoErp
    from ml_connector.sim.oracle_ebs import EbsSim
    from ml_connector.sim.sap_gateway import SapGatewaySim
    from ml_connector.sim.sendgrid import SendGridSim
    from ml_connector.sim.syspro import SysproSim
    from ml_connector.sim.twilio import Account, Outcome, TwilioSim
    from ml_connector.sim.webhook_receiver import WebhookReceiver
    from ml_connector.store.crypto import create_key_file
    from ml_connector.web.server import serving

    if not console.is_terminal:  # piped or captured: long lines beat wrapped ones
        console.width = max(console.width, 150)
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
        plan_calls(sim)
        webhook_port = free_port()
        ebs = EbsSim(server_tz=EBS_TZ)
        syspro = SysproSim()
        sap = SapGatewaySim(timezone=SAP_TZ)
        seed_sap(sap)
        peoplesoft = peoplesoft_simulator()
        sendgrid = SendGridSim(events_to=f"http://127.0.0.1:{webhook_port}/sendgrid/events", event_delay=0.3)
        receiver = WebhookReceiver(DEMO_HOOK_SECRET)
        async with serving(sim.create_app()) as twilio_url, serving(ebs.create_app()) as ebs_url, \
                serving(syspro.create_app()) as syspro_url, serving(sap.create_app()) as sap_url, \
                serving(peoplesoft.create_app()) as ps_url, serving(sendgrid.create_app()) as sendgrid_url, \
                serving(receiver.create_app()) as hook_url, \
                _stop_on_signals() as stop:
            config_path = directory / "ml-connector.yaml"
            config = demo_config(directory, twilio_url, webhook_port, ebs_url=ebs_url, syspro_url=syspro_url,
                                 sap_url=sap_url, ps_url=ps_url)
            add_channel_sections(config, sendgrid_url=sendgrid_url, sendgrid_public_key=sendgrid.public_key,
                                 hook_url=f"{hook_url}{receiver.path}")
            dashboard_port = free_port()
            # Plain HTTP on loopback: the demo's session cookie cannot be Secure-only.
            config["dashboard"] = {"host": "127.0.0.1", "port": dashboard_port, "secure_cookies": False}
            config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
            if not (directory / "ml-connector.key").exists():
                create_key_file(directory / "ml-connector.key")
            connector = Connector(load_config(config_path, {}))
            console.print(f"[bold]ml-connector demo[/bold]: SQL ERP {directory / 'demo-erp.db'}, Oracle EBS "
                          f"{ebs_url}, SYSPRO {syspro_url}, SAP Gateway {sap_url}, PeopleSoft {ps_url}, "
                          f"Twilio simulator {twilio_url}, SendGrid simulator {sendgrid_url}, "
                          f"webhooks "
                          f"http://127.0.0.1:{webhook_port}")
            password = demo_login(connector)
            console.print(f"[bold]Dashboard[/bold] http://127.0.0.1:{dashboard_port}/  sign in as [bold]demo[/bold] "
                          f"with password [bold]{password}[/bold] (made for this demo, shown once)", soft_wrap=True)
            console.print("An ERP event every few seconds becomes an SMS; each notification's journey is "
                          "shown. " + (f"Stops after {duration:g} s." if duration else "Ctrl-C stops."))
            watcher = JourneyWatcher(connector.store, console)
            stop_sending = asyncio.Event()
            polling = asyncio.create_task(connector.run(stop, ("poller",)))
            sending = asyncio.create_task(connector.run(stop_sending, ("dispatcher", "web")))
            await _print_admin_url(connector, console)
            sap_events = SapEvents(sap)
            erps = [erp, EbsEvents(ebs), SysproEvents(syspro), sap_events, PeopleSoftEvents(peoplesoft)]
            events = asyncio.create_task(_generate_events(erps, stop, every, console, seed=7))
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
                    await asyncio.gather(polling, return_exceptions=True)  # its last poll commits first
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
                await sendgrid.drain()
                await watcher.follow()
                sap_line = sap_duplicates_line(connector.store, sap_events.duplicates)
                ebs_flows = {name for name, flow in connector.flows.items() if flow.write_back_source == "ebs"}
                await connector.aclose()
                await sim.aclose()
                await sendgrid.aclose()
            logging.getLogger("ml_connector").setLevel(previous_level)
        console.print(watcher.summary())
        written_back = ebs.audit_rows()
        shown = ", ".join(f"{r['source_table']} {r['source_id']} {r['status']}" for r in written_back[:6])
        console.print(f"Oracle EBS audit (xx_mlc_audit.record_delivery): {len(written_back)} final delivery "
                      f"status(es) written back{': ' + shown if shown else ''}")
        console.print(written_back_line(watcher.journeys, ebs_flows, written_back))
        console.print(sap_line)
        console.print(f"data kept in {directory}" if data_dir else "demo data removed")
        return watcher.delivered > 0


async def _print_admin_url(connector: Any, console: Console) -> None:
    """Once the admin listener is bound (a free port): where health, readiness and metrics are."""
    for _ in range(200):
        if connector.admin_url:
            url = connector.admin_url
            console.print(f"admin listener: {url}/healthz, {url}/readyz, {url}/metrics")
            return
        await asyncio.sleep(0.01)


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
    """Serve what `config` points at: the Twilio simulator and each source's simulator.

    SQL sources on a SQLite file get the demo ERP database; Oracle EBS and SYSPRO sources get
    their simulators on the port of their configured base URL (loopback only).
    """
    from ml_connector.sim.demo_erp import DemoErp
    from ml_connector.sim.oracle_ebs import EbsSim
    from ml_connector.store.crypto import create_key_file
    from ml_connector.web.server import serving

    key_file = config.store.key_file
    if key_file and not os.environ.get("MLC_MASTER_KEY") and not await asyncio.to_thread(key_file.exists):
        await asyncio.to_thread(create_key_file, key_file)
        console.print(f"created key file {key_file} (mode 0600) for this config")
    async with contextlib.AsyncExitStack() as stack:
        erps: list[Any] = []
        for name, source in config.sources.items():
            url = str(getattr(source, "url", "") or getattr(source, "base_url", ""))
            if source.type == "sql" and url.startswith("sqlite:///"):
                path = Path(url.removeprefix("sqlite:///"))
                erp = DemoErp(path, tz=getattr(source, "timezone", DEMO_TZ))
                if not await asyncio.to_thread(path.exists):
                    await asyncio.to_thread(erp.create)
                    console.print(f"source {name}: created demo ERP database {path}")
                else:
                    console.print(f"source {name}: using existing database {path}")
                erps.append(erp)
            elif source.type == "oracle_ebs":
                ebs = EbsSim(server_tz=source.timezone)
                served = await stack.enter_async_context(serving(ebs.create_app(), "127.0.0.1", _port_of(url)))
                console.print(f"source {name}: Oracle EBS simulator on {served}")
                erps.append(EbsEvents(ebs))
            elif source.type == "sap_ecc" and source.mode == "rfc":
                from ml_connector.demo_sap_rfc import SapAgentEvents, sap_agent_simulator

                agent = sap_agent_simulator(source)
                served = await stack.enter_async_context(serving(agent.create_app(), "127.0.0.1",
                                                                 _port_of(source.agent.url)))
                console.print(f"source {name}: SAP RFC agent simulator on {served} (client {source.sap_client})")
                erps.append(SapAgentEvents(agent))
            elif source.type == "sap_ecc":
                from ml_connector.demo_sap import SapEvents, sap_simulator

                gateway = sap_simulator(source)
                served = await stack.enter_async_context(serving(gateway.create_app(), "127.0.0.1", _port_of(url)))
                console.print(f"source {name}: SAP Gateway simulator on {served} (client {source.sap_client})")
                erps.append(SapEvents(gateway))
            elif source.type == "peoplesoft":
                from ml_connector.demo_peoplesoft import PeopleSoftEvents, peoplesoft_simulator

                hcm = peoplesoft_simulator(source)
                served = await stack.enter_async_context(serving(hcm.create_app(), "127.0.0.1", _port_of(url)))
                console.print(f"source {name}: PeopleSoft simulator (node {source.node}, IdP token URL "
                              f"{served}/oauth2/v1/token) on {served}")
                erps.append(PeopleSoftEvents(hcm))
            elif source.type == "syspro":
                simulated = syspro_simulator(source)
                served = await stack.enter_async_context(
                    serving(simulated.create_app(), "127.0.0.1", _port_of(url)))
                console.print(f"source {name}: SYSPRO simulator on {served}")
                erps.append(SysproEvents(simulated))
            else:
                console.print(f"source {name}: no simulator for type {source.type!r} at {url}")
        account = next(iter(config.twilio.accounts.values()))
        port = twilio_port or _port_of(str(account.base_urls.api)) or 8910
        sim = twilio_sim_for(config)
        url = await stack.enter_async_context(serving(sim.create_app(), "127.0.0.1", port))
        stop = await stack.enter_async_context(_stop_on_signals())
        console.print(f"Twilio simulator on {url} (account {account.account_sid}); Ctrl-C stops")
        tasks = [asyncio.create_task(_generate_events(erps, stop, 3.0, console, seed=1))] if events else []
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sim.aclose()


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)
