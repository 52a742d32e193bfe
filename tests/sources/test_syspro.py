"""The SYSPRO source against the SYSPRO simulator, with the flows of examples/syspro.yaml.

Everything real but the sockets: the example config, SysproSource (e.net and OData), the Poller
and SqlStore on a temporary SQLite file; the simulator runs in-process behind httpx's ASGI
transport, wrapped in a wire recorder that sees what SYSPRO would see (logons, overlapping
calls on one UserId, ERROR answers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import pytest

from ml_connector.config import Config, load_config
from ml_connector.core.templates import compile_template
from ml_connector.errors import SourceAuthError, SourceError, SourceUnavailable
from ml_connector.runtime.poller import LOOKBACK, FlowRuntime, Poller
from ml_connector.sim.syspro import SysproSim
from ml_connector.sim.syspro_wire import SESSION_BUSY, error_text
from ml_connector.sources.syspro import SysproConfig, SysproSource
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NotificationFilter, NotificationView
from ml_connector.store.sql import SqlStore
from tests.support.clock import ManualClock

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "syspro.yaml"
START = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)  # 09:30 in Johannesburg
OPERATOR_PASSWORD = "mlc-pass"  # noqa: S105 - the simulator's default operator MLC
COMPANY_PASSWORD = "Edu1-Company-Pw"  # noqa: S105 - a test value
MODES = ["enet", "odata"]

Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class Wire:
    """ASGI middleware recording e.net traffic as the server sees it."""

    def __init__(self, app: Asgi) -> None:
        self.app = app
        self.paths: list[str] = []
        self.user_ids: set[str] = set()
        self.errors: list[str] = []
        self.in_flight: dict[str, int] = {}
        self.most_in_flight = 0

    def logons(self) -> int:
        return self.paths.count("logon")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if scope.get("type") != "http" or "/SYSPROWCFService/Rest/" not in path:
            await self.app(scope, receive, send)
            return
        operation = path.split("/Rest/", 1)[1].strip("/").lower()
        self.paths.append(operation)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        user_id = (query.get("UserId") or [""])[0]
        body = bytearray()

        async def record(message: Any) -> None:
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        self.in_flight[user_id] = self.in_flight.get(user_id, 0) + 1
        if user_id:
            self.most_in_flight = max(self.most_in_flight, self.in_flight[user_id])
        try:
            await self.app(scope, receive, record)
        finally:
            self.in_flight[user_id] -= 1
        text = body.decode("cp1252", errors="replace")
        if operation == "logon" and not text.startswith("ERROR"):
            self.user_ids.add(text)
        if text.startswith("ERROR"):
            self.errors.append(text)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def sim(clock: ManualClock) -> SysproSim:
    return SysproSim(clock=clock, company_password=COMPANY_PASSWORD, odata_page_size=25)


@pytest.fixture
def wire(sim: SysproSim) -> Wire:
    return Wire(sim.create_app())


@pytest.fixture
def config() -> Config:
    return load_config(EXAMPLE, {"SYSPRO_OPERATOR_PASSWORD": OPERATOR_PASSWORD,
                                 "SYSPRO_COMPANY_PASSWORD": COMPANY_PASSWORD})


@pytest.fixture
async def make_source(config: Config, wire: Wire, clock: ManualClock) -> AsyncIterator[Callable[..., SysproSource]]:
    """A SysproSource built from the example's section, in the given mode, talking to the simulator."""
    built: list[SysproSource] = []

    def make(mode: str = "enet", **overrides: Any) -> SysproSource:
        section = config.sources["syspro"]
        assert isinstance(section, SysproConfig)
        raw = section.model_dump()
        raw.update(mode=mode, retry_delay=0, **overrides)  # the example's entities serve both modes
        source = SysproSource("syspro", SysproConfig.model_validate(raw),
                              transport=httpx.ASGITransport(wire), clock=clock)
        built.append(source)
        return source

    yield make
    for source in built:
        await source.aclose()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"s" * 32))
    yield opened
    opened.close()


def poller_for(config: Config, flow: str, source: SysproSource, store: SqlStore, clock: ManualClock) -> Poller:
    spec = config.flows[flow]
    template = compile_template(flow, spec.template, timezone=spec.timezone, currency=spec.currency)
    runtime = FlowRuntime(name=flow, spec=spec, source=source, template=template, account="demo",
                          sender="+15005550006", default_region="US")
    return Poller(runtime, store, clock)


def sent(store: SqlStore, flow: str, key: str) -> list[NotificationView]:
    return [n for n in store.list_notifications(NotificationFilter(flow=flow, limit=10_000)) if n.record_key == key]


async def read(source: SysproSource, entity: str, clock: ManualClock) -> list[Any]:
    now = clock()
    return [r async for r in source.fetch(entity, now - timedelta(days=2), now)]


# --------------------------------------------------------------------------- the example's flows


@pytest.mark.parametrize("mode", MODES)
async def test_po_approval_fires_exactly_one_notification_with_supplier_total_and_lines(
        mode: str, sim: SysproSim, config: Config, make_source: Callable[..., SysproSource],
        store: SqlStore, clock: ManualClock) -> None:
    poller = poller_for(config, "po_approved", make_source(mode), store, clock)
    order = sim.add_purchase_order(supplier="OEU001", status="0", lines=[
        ("A100", Decimal(38400), Decimal("1.25")), ("B2040", Decimal(10), Decimal("99.50"))])
    key = order.strip()
    await poller.poll()                       # first poll: what is open now is history
    clock.advance(minutes=5)
    await poller.poll()                       # still '0' (in process): nothing
    assert sent(store, "po_approved", key) == []
    sim.set_po_status(order, "1")             # approved
    clock.advance(minutes=5)
    report = await poller.poll()
    assert report.fired == 1
    for _ in range(2):
        clock.advance(minutes=5)
        await poller.poll()
    [notification] = sent(store, "po_approved", key)
    assert notification.body == f"PO {key} approved: Œuvre Mécanique SARL, 2 line(s), €48,995.00."


@pytest.mark.parametrize("mode", MODES)
async def test_back_dated_invoice_is_caught_by_the_lookback_poll_exactly_once(
        mode: str, sim: SysproSim, config: Config, make_source: Callable[..., SysproSource],
        store: SqlStore, clock: ManualClock) -> None:
    poller = poller_for(config, "invoice_posted", make_source(mode), store, clock)
    await poller.poll()
    clock.advance(minutes=5)
    dated = sim.today() - timedelta(days=5)
    sim.post_ap_invoice(supplier="BRA001", invoice="INV-77001", amount=Decimal("12345.60"), invoice_date=dated)
    key = "BRA001|INV-77001"
    clock.advance(minutes=5)
    await poller.poll()
    assert sent(store, "invoice_posted", key) == []   # InvoiceDate is before the main poll's window
    await poller.poll(LOOKBACK)
    clock.advance(minutes=5)
    await poller.poll(LOOKBACK)
    await poller.poll()
    [notification] = sent(store, "invoice_posted", key)
    assert notification.body == (f"Invoice INV-77001 from Bräunlich & Söhne KG posted: €12,345.60 "
                                 f"(dated {dated.isoformat()}).")


@pytest.mark.parametrize("mode", MODES)
async def test_an_invoice_posted_to_the_general_ledger_notifies_ap_once_whatever_its_invoice_date(
        mode: str, sim: SysproSim, config: Config, make_source: Callable[..., SysproSource],
        store: SqlStore, clock: ManualClock) -> None:
    """The AP posting journal (ApJnlSummary) gets an entry when an invoice is posted: its posting
    date is today even when the invoice is dated weeks ago, so the main poll sees it at once."""
    source = make_source(mode)
    gl = poller_for(config, "invoice_posted_to_gl", source, store, clock)
    by_invoice_date = poller_for(config, "invoice_posted", source, store, clock)
    await gl.poll()                           # the baseline: the 180 seeded postings are history
    await by_invoice_date.poll()
    assert store.list_notifications(NotificationFilter(limit=10)) == []
    clock.advance(minutes=5)
    dated = sim.today() - timedelta(days=20)
    sim.post_ap_invoice(supplier="MUL001", invoice="INV-99001", amount=Decimal("4321.00"), invoice_date=dated)
    entry = sim.data.journal_entry_of("MUL001", "INV-99001")
    assert entry is not None and entry["JnlDate"] == sim.today()
    key = "|".join(str(entry[c]) for c in ("TrnYear", "TrnMonth", "Journal", "EntryNumber"))
    clock.advance(minutes=5)

    report = await gl.poll()
    await by_invoice_date.poll()

    assert report.fired == 1
    assert sent(store, "invoice_posted", "MUL001|INV-99001") == []  # InvoiceDate: only a lookback sees it
    for _ in range(2):                         # re-reads and the lookback add nothing
        clock.advance(minutes=5)
        await gl.poll()
        await gl.poll(LOOKBACK)
    [notification] = sent(store, "invoice_posted_to_gl", key)
    today = sim.today()
    assert notification.body == (
        f"Invoice INV-99001 from Müller Industrietechnik posted to the general ledger: €4,321.00 "
        f"(AP journal {today.year}/{today.month} no. {entry['Journal']}, entry {entry['EntryNumber']}, "
        f"{today.isoformat()}).")


@pytest.mark.parametrize("mode", MODES)
async def test_the_posting_journal_pages_by_its_numeric_key(
        mode: str, config: Config, make_source: Callable[..., SysproSource], clock: ManualClock) -> None:
    section = config.sources["syspro"]
    assert isinstance(section, SysproConfig)
    journal = {**section.entities["gl_postings"].model_dump(), "page_size": 7, "change": "snapshot"}
    records = await read(make_source(mode, entities={"gl_postings": journal}), "gl_postings", clock)
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)) == 180  # one entry per seeded invoice, none lost or repeated
    numbers = [tuple(int(part) for part in key.split("|")) for key in keys]
    assert numbers == sorted(numbers)  # COMFND pages after the last key compare numbers, not text


# --------------------------------------------------------------------------- sessions


async def test_eviction_by_a_second_logon_costs_one_logon_more(
        sim: SysproSim, make_source: Callable[..., SysproSource], wire: Wire, clock: ManualClock) -> None:
    source = make_source()
    first = await read(source, "invoices", clock)
    assert wire.logons() == 1
    assert sim.evict("MLC") == 1              # somebody logs on as MLC elsewhere
    assert await read(source, "invoices", clock) == first
    assert wire.logons() == 2
    assert wire.errors == ["ERROR: Invalid UserId. You may need to log on again."]


async def test_inactivity_timeout_found_out_by_an_error_costs_one_logon_more(
        clock: ManualClock, config: Config, make_source: Callable[..., SysproSource], wire: Wire) -> None:
    source = make_source(session_timeout="1h")  # longer than the server's 20 minutes
    first = await read(source, "purchase_orders", clock)
    clock.advance(minutes=25)
    again = await read(source, "purchase_orders", clock)
    assert [(r.key, r.data) for r in again] == [(r.key, r.data) for r in first] and len(first) > 100
    assert wire.logons() == 2
    assert len(wire.errors) == 1 and "Invalid UserId" in wire.errors[0]


async def test_session_renewed_before_the_inactivity_timeout_without_an_error(
        make_source: Callable[..., SysproSource], wire: Wire, clock: ManualClock) -> None:
    source = make_source()                    # session_timeout 20m, as the server
    await read(source, "invoices", clock)
    clock.advance(minutes=19, seconds=30)
    await read(source, "invoices", clock)
    assert wire.logons() == 2
    assert wire.errors == []
    assert wire.paths.count("logoff") == 1


async def test_concurrent_fetches_never_overlap_on_one_user_id(
        sim: SysproSim, make_source: Callable[..., SysproSource], wire: Wire, clock: ManualClock) -> None:
    sim.set_latency(0.01)                     # calls last long enough to overlap if allowed to
    source = make_source(entities={
        "purchase_orders": {"table": "PorMasterHdr", "key": "PurchaseOrder", "page_size": 40, "lines": {},
                            "joins": [{"table": "ApSupplier", "key": "Supplier", "columns": ["SupplierName"]}]},
        "invoices": {"table": "ApInvoice", "key": ["Supplier", "Invoice"], "page_size": 40},
    })
    orders, invoices, one = await asyncio.gather(
        read(source, "purchase_orders", clock), read(source, "invoices", clock),
        source.lookup("invoices", "ACM001|INV-10005"))
    assert len(orders) == 240 and len(invoices) == 180 and one is not None
    assert wire.errors == []
    assert wire.most_in_flight == 1
    assert wire.logons() == 1


async def test_the_simulator_does_refuse_overlapping_calls(sim: SysproSim, wire: Wire) -> None:
    """The check above can fail: two raw calls at once on one UserId are refused and recorded."""
    sim.set_latency(0.01)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(wire),
                                 base_url="http://syspro") as http:
        logon = await http.get("/SYSPROWCFService/Rest/logon", params={
            "Operator": "MLC", "OperatorPassword": OPERATOR_PASSWORD, "CompanyId": "EDU1",
            "CompanyPassword": COMPANY_PASSWORD})
        user_id = quote(logon.content.decode("cp1252"), safe="")
        xml = quote("<Query><TableName>ApSupplier</TableName></Query>", safe="")
        url = f"/SYSPROWCFService/Rest/Query/Query?BusinessObject=COMFND&UserId={user_id}&XmlIn={xml}"
        await asyncio.gather(http.get(url), http.get(url))
    assert wire.most_in_flight == 2
    assert any("busy" in e for e in wire.errors)


async def test_a_busy_user_id_is_retriable_and_not_a_reason_to_log_on_again(config: Config, clock: ManualClock) -> None:
    """SYSPRO still running a call we gave up on: retry later, keep the session (and the seat)."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        operation = request.url.path.rsplit("/Rest/", 1)[1]
        seen.append(operation)
        text = "3EA613166FE4BF47925DF1CEA14E910100  " if operation == "logon" else error_text(SESSION_BUSY)
        return httpx.Response(200, content=text.encode("cp1252"))

    section = config.sources["syspro"]
    assert isinstance(section, SysproConfig)
    source = SysproSource("syspro", section, transport=httpx.MockTransport(answer), clock=clock)
    with pytest.raises(SourceUnavailable, match="still running"):
        await read(source, "invoices", clock)
    assert seen == ["logon", "Query/Query"]
    await source.aclose()


# --------------------------------------------------------------------------- check, lookup, rowversion


@pytest.mark.parametrize("mode", MODES)
async def test_check_reports_version_and_company(
        mode: str, sim: SysproSim, make_source: Callable[..., SysproSource]) -> None:
    result = await make_source(mode).check()
    assert result.details["version"] == sim.version == "8.0.0.21"
    assert result.details["company"] == "EDU1"
    assert result.details["rows"] == "1"
    assert sim.sessions.live() == []          # e.net: logged off, the licence seat is free again


async def test_check_names_the_failing_step_and_syspros_words(make_source: Callable[..., SysproSource]) -> None:
    with pytest.raises(SourceAuthError, match="check failed at logon: .*Invalid operator password"):
        await make_source(operator_password="wrong").check()
    with pytest.raises(SourceAuthError, match="check failed at reading one PorMasterHdr row over OData: .*401"):
        await make_source("odata", operator_password="wrong").check()
    wrong_column = {"x": {"table": "ApInvoice", "key": "Invoice", "columns": ["Nope"]}}
    with pytest.raises(SourceError, match="HTTP 400 .*Could not find a property named 'Nope'"):
        await make_source("odata", entities=wrong_column).check()
    with pytest.raises(SourceError, match="COMFND ApInvoice: SYSPRO says: ERROR: Invalid column name 'Nope'"):
        await make_source(entities=wrong_column).check()


@pytest.mark.parametrize("mode", MODES)
async def test_lookup_by_the_stripped_key_finds_the_padded_row_after_a_restart(
        mode: str, sim: SysproSim, make_source: Callable[..., SysproSource]) -> None:
    order = sim.add_purchase_order(supplier="NOR001", lines=[("A100", Decimal(3), Decimal("2.50"))])
    record = await make_source(mode).lookup("purchase_orders", order.strip())  # nothing fetched before
    assert record is not None and record.key == order.strip() == "00241"
    assert record.data["SupplierName"] == "Nørre Stål A/S"
    assert record.data["LineCount"] == 1 and record.data["OrderTotal"] == Decimal("7.5")
    assert await make_source(mode).lookup("purchase_orders", "99999") is None


@pytest.mark.parametrize("mode", MODES)
async def test_timestamp_mode_reads_only_rows_above_the_rowversion_mark(
        mode: str, sim: SysproSim, make_source: Callable[..., SysproSource], clock: ManualClock) -> None:
    """e.net serves TimeStamp as 0x-hex, OData as base64 Edm.Binary; both are sent back as the floor."""
    source = make_source(mode, entities={
        "invoices": {"table": "ApInvoice", "key": ["Supplier", "Invoice"], "change": "timestamp"}})
    everything = await read(source, "invoices", clock)
    assert len(everything) == 180
    clock.advance(minutes=5)
    sim.post_ap_invoice(supplier="ZAF001", invoice="INV-88001", amount=Decimal(10),
                        invoice_date=date(2026, 1, 15))  # back-dated by months
    clock.advance(minutes=5)
    since = clock() - timedelta(minutes=7)
    newer = [r async for r in source.fetch("invoices", since, clock())]
    assert [r.key for r in newer] == ["ZAF001|INV-88001"]


# --------------------------------------------------------------------------- secrets


async def test_no_password_or_user_id_in_logs_or_errors(
        caplog: pytest.LogCaptureFixture, sim: SysproSim, make_source: Callable[..., SysproSource],
        wire: Wire, clock: ManualClock) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    errors: list[str] = []
    source = make_source()
    await source.check()
    await read(source, "purchase_orders", clock)
    sim.evict("MLC")
    await read(source, "invoices", clock)
    await source.lookup("purchase_orders", "00001")
    await make_source("odata").check()
    sim.fail_next(1)
    await read(source, "invoices", clock)
    for bad in ({"operator_password": "Wr0ng-Secret"}, {"company_password": "Wr0ng-Company"}):
        with pytest.raises(SourceAuthError) as caught:
            await make_source(**bad).check()
        errors.append(str(caught.value))
    await source.aclose()
    assert len(wire.user_ids) >= 3
    lines = [record.getMessage() for record in caplog.records]
    assert any("GET" in line and "logon" in line for line in lines)   # requests were logged, masked
    secrets = [OPERATOR_PASSWORD, COMPANY_PASSWORD, "Wr0ng-Secret", "Wr0ng-Company",
               *(uid.strip() for uid in wire.user_ids)]
    for text in [*lines, *errors]:
        for secret in secrets:
            assert secret not in text and quote(secret, safe="") not in text, (secret, text)
