"""sources.syspro against a small strict fake of e.net REST and SYSPRO OData (httpx.MockTransport).

The fake answers the way the recorded traffic does (HTTP 200 for everything, Windows-1252
bodies, space-padded keys, display numbers with separators) and asserts what it receives:
known paths and parameters only, the session UserId byte for byte, never two calls at once on
one UserId, COMFND Where expressions evaluated as written.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree

import httpx
import pytest

from ml_connector.core import rules
from ml_connector.core.flowspec import Condition
from ml_connector.errors import SourceAuthError, SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.sources import registry
from ml_connector.sources.syspro import SysproConfig, SysproSource, build
from ml_connector.sources.syspro_change import Mark, RowversionHistory, observed_at, rowversion
from ml_connector.sources.syspro_http import safe_url, status_action
from ml_connector.sources.syspro_wire import decode, failure_of, normalise
from tests.support.clock import ManualClock

REST = "/SYSPROWCFService/Rest"
ODATA = "/odata/EDU1/"
OPERATOR_PASSWORD = "Op3r@torPass"
COMPANY_PASSWORD = "C0mpanyPass"
ODATA_PASSWORD = "0DataPass"
USER_IDS = ["3EA613166FE4BF47925DF1CEA14E910100  ", "5BC7A1D0E33F4A21B6D0C7E19F02A3B400  ",
            "77AA13166FE4BF47925DF1CEA14E9101FF  ", "0011223344556677889900AABBCCDDEEFF  "]


def t(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, tzinfo=UTC)


# --------------------------------------------------------------------------- the fake


def _row_xml(table: str, rows: list[dict[str, str]], columns: list[str]) -> str:
    cells = "".join(
        "<Row>" + "".join(f"<{c}>{_esc(r.get(c, ''))}</{c}>" for c in (columns or list(r))) + "</Row>"
        for r in rows
    )
    return (f"<?xml version=\"1.0\" encoding=\"Windows-1252\"?><{table} Language='05' Language2='EN' "
            f"Version='7.0.053'><HeaderDetails><TableName>{table}</TableName></HeaderDetails>{cells}"
            f"<RowsReturned>{len(rows):>8}</RowsReturned></{table}>")


def _esc(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_TESTS: dict[str, Callable[[str, str], bool]] = {
    "EQ": lambda a, b: a == b, "NE": lambda a, b: a != b, "GT": lambda a, b: a > b,
    "GE": lambda a, b: a >= b, "LT": lambda a, b: a < b, "LE": lambda a, b: a <= b,
}


def _where_matches(where: ElementTree.Element | None, row: dict[str, str]) -> bool:
    """Evaluate COMFND expressions as written: brackets, And binding tighter than Or."""
    if where is None:
        return True
    tokens: list[str] = []
    for index, expression in enumerate(where.findall("Expression")):
        parts = {child.tag: child.text or "" for child in expression}
        assert set(parts) <= {"OpenBracket", "AndOr", "Column", "Condition", "Value", "CloseBracket"}, parts
        assert parts["AndOr"] in ("And", "Or"), parts
        if index:
            tokens.append(parts["AndOr"].lower())
        tokens.append(parts.get("OpenBracket", ""))
        column = parts["Column"]
        assert column in row, f"unknown column {column}"
        tokens.append(str(_TESTS[parts["Condition"]](row[column], parts["Value"])))
        tokens.append(parts.get("CloseBracket", ""))
    return bool(eval(" ".join(tokens)))  # noqa: S307 - True/False/and/or/brackets only


@dataclass
class FakeSyspro:
    """A strict e.net + OData fake. Tables hold raw (padded, display-formatted) values."""

    tables: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    version: str = "7.0.0.6"
    operator_password: str = OPERATOR_PASSWORD
    user_ids: list[str] = field(default_factory=lambda: list(USER_IDS))
    valid: set[str] = field(default_factory=set)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: int = 0
    answers: dict[str, list[bytes]] = field(default_factory=dict)  # path -> queued raw answers
    status: list[int] = field(default_factory=list)                # queued HTTP statuses
    network_errors: int = 0
    ignore_where: bool = False
    evict_always: bool = False
    odata_pages: list[dict[str, Any]] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def paths(self) -> list[str]:
        return [path for path, _ in self.calls]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        if self.network_errors:
            self.network_errors -= 1
            raise httpx.ConnectError("connection refused", request=request)
        if self.status:
            return httpx.Response(self.status.pop(0), content=b"Service Unavailable")
        path = request.url.path
        if path.startswith(ODATA):
            return self.odata(request)
        assert path.startswith(REST + "/"), path
        raw_query = request.url.query.decode("ascii")
        assert "+" not in raw_query, "spaces must travel as %20 (WCF does not decode '+')"
        params = dict(item.split("=", 1) for item in raw_query.split("&")) if raw_query else {}
        params = {k: unquote(v) for k, v in params.items()}
        name = path[len(REST) + 1:]
        self.calls.append((name, params))
        user = params.get("UserId")
        if user is not None:
            self.in_flight[user] = self.in_flight.get(user, 0) + 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight[user])
            assert self.in_flight[user] == 1, "two calls at once on one UserId"
        try:
            for _ in range(3):
                await asyncio.sleep(0)  # give a concurrent caller every chance to overlap
            body = self.answers[name].pop(0) if self.answers.get(name) else self.route(name, params)
        finally:
            if user is not None:
                self.in_flight[user] -= 1
        return httpx.Response(200, content=body, headers={"Content-Type": "application/octet-stream"})

    def route(self, name: str, params: dict[str, str]) -> bytes:
        if name == "logon":
            assert set(params) == {"Operator", "OperatorPassword", "CompanyId", "CompanyPassword"}, params
            if params["OperatorPassword"] != self.operator_password:
                return b"ERROR: Invalid operator password"
            user = self.user_ids.pop(0)
            self.valid.add(user)
            return user.encode("ascii")
        if name == "getversion":
            assert params == {}
            return self.version.encode()
        if name == "logoff":
            assert set(params) == {"UserId"}
            self.valid.discard(params["UserId"])
            return b"0"
        assert name == "Query/Query", name
        assert set(params) == {"BusinessObject", "UserId", "XmlIn"}, params
        if params["UserId"] not in self.valid or self.evict_always:
            return b"ERROR: The specified UserId is not logged on"
        query = ElementTree.fromstring(params["XmlIn"].split("?>", 1)[1])
        if params["BusinessObject"] == "PORQRY":
            return self.porqry(query)
        assert params["BusinessObject"] == "COMFND"
        return self.comfnd(query)

    def comfnd(self, query: ElementTree.Element) -> bytes:
        table = query.findtext("TableName") or ""
        if table not in self.tables:
            return f"ERROR: Table '{table}' not found".encode()
        limit = int(query.findtext("ReturnRows") or "0")
        assert limit > 0
        columns = [c.text or "" for c in query.findall("Columns/Column")]
        order = [c.text or "" for c in query.findall("OrderBy/Column")]
        where = None if self.ignore_where else query.find("Where")
        rows = [r for r in self.tables[table] if _where_matches(where, r)]
        rows.sort(key=lambda r: tuple(r[c] for c in order))
        return _row_xml(table, rows[:limit], columns).encode("cp1252")

    def porqry(self, query: ElementTree.Element) -> bytes:
        order = query.findtext("Key/PurchaseOrder")
        headers = [r for r in self.tables["PorMasterHdr"] if r["PurchaseOrder"] == order]
        if not headers:
            return b"ERROR: Purchase order not found"
        head = headers[0]
        lines = [r for r in self.tables.get("PorMasterDetail", []) if r["PurchaseOrder"] == order]
        body = "".join(
            f"<PurchaseOrderLine><Merchandise><Line>{r['Line']}</Line><MOrderQty>{r['MOrderQty']}</MOrderQty>"
            f"<Unedited_MOrderQty>{r['MOrderQty'].replace(',', '')}</Unedited_MOrderQty>"
            f"<MPrice>{r['MPrice']}</MPrice></Merchandise></PurchaseOrderLine>"
            for r in lines
        )
        xml = (f"<PorDetail Language='05' Version='7.0.022'><PurchaseOrder>{order}</PurchaseOrder>"
               f"<Supplier>{head['Supplier']}</Supplier><SupplierName>{_esc(head.get('SupplierName', ''))}"
               f"</SupplierName><OrderStatus>{head['OrderStatus']}</OrderStatus>{body}"
               f"<PurchaseOrderTotals><LocalValues><OrderValue>1,000.00</OrderValue></LocalValues>"
               f"</PurchaseOrderTotals></PorDetail>")
        return xml.encode("cp1252")

    def odata(self, request: httpx.Request) -> httpx.Response:
        expected = "Basic " + base64.b64encode(f"MLC:{ODATA_PASSWORD}".encode()).decode()
        self.calls.append((str(request.url), {}))
        if request.headers.get("Authorization") != expected:
            return httpx.Response(401, json={"error": {"code": "", "message": "Unauthorized"}})
        assert request.headers.get("Prefer", "").startswith("odata.maxpagesize=")
        assert self.odata_pages, f"unexpected OData call {request.url}"
        return httpx.Response(200, json=self.odata_pages.pop(0))


def po(number: int, status: str = "1", supplier: str = "ACME01", entry: str = "2024-05-01") -> dict[str, str]:
    return {"PurchaseOrder": f" {number:05d}",  # SYSPRO pads: " 00001"
            "Supplier": f"{supplier:<15}", "OrderStatus": status, "OrderEntryDate": entry}


def make_source(fake: FakeSyspro, clock: ManualClock | None = None, **overrides: Any) -> SysproSource:
    entities = overrides.pop("entities", {"purchase_orders": {"table": "PorMasterHdr", "key": "PurchaseOrder",
                                                              "page_size": 2}})
    settings: dict[str, Any] = {
        "type": "syspro", "base_url": "http://syspro.test:20003", "operator": "MLC",
        "operator_password": OPERATOR_PASSWORD, "company_id": "EDU1", "company_password": COMPANY_PASSWORD,
        "timezone": "Africa/Johannesburg", "retry_delay": 0, "entities": entities, **overrides,
    }
    config = SysproConfig.model_validate(settings)
    return build(config, {"name": "erp", "transports": {"erp": fake.transport()},
                          "clock": clock or ManualClock(t(10))})


async def collect(source: SysproSource, entity: str, since: datetime, until: datetime) -> list[Any]:
    return [r async for r in source.fetch(entity, since, until)]


def comfnd_xml_of(params: dict[str, str]) -> ElementTree.Element:
    return ElementTree.fromstring(params["XmlIn"].split("?>", 1)[1])


# --------------------------------------------------------------------------- sessions


async def test_user_id_is_echoed_byte_for_byte_with_its_two_spaces() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1)]})
    source = make_source(fake)
    records = await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert [r.key for r in records] == ["00001"]
    (_, query), = [c for c in fake.calls if c[0] == "Query/Query"]
    assert query["UserId"] == USER_IDS[0]  # decoded by the fake with unquote: spaces kept
    await source.aclose()
    assert fake.calls[-1] == ("logoff", {"UserId": USER_IDS[0]})


async def test_invalid_session_logs_on_again_exactly_once() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1)]})
    source = make_source(fake)
    await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    fake.valid.clear()  # another logon with our operator evicted the session
    records = await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert [r.key for r in records] == ["00001"]
    assert fake.paths() == ["logon", "Query/Query", "Query/Query", "logon", "Query/Query"]
    assert fake.calls[-1][1]["UserId"] == USER_IDS[1]


async def test_a_session_refused_right_after_logon_is_an_auth_error_not_a_loop() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1)]}, evict_always=True)
    source = make_source(fake)
    with pytest.raises(SourceAuthError) as caught:
        await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert fake.paths().count("logon") == 2
    assert "not logged on" in str(caught.value)
    assert "same operator" in str(caught.value)


async def test_session_is_renewed_before_the_inactivity_timeout() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1)]})
    clock = ManualClock(t(10))
    source = make_source(fake, clock, session_timeout="20m")
    await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    clock.now += timedelta(minutes=10)
    await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert fake.paths().count("logon") == 1
    clock.now += timedelta(minutes=19, seconds=1)  # idle 19m01s: the margin before 20m is 60s
    await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert fake.paths()[-3:] == ["logoff", "logon", "Query/Query"]
    assert fake.calls[-3][1] == {"UserId": USER_IDS[0]}
    assert fake.calls[-1][1]["UserId"] == USER_IDS[1]
    assert not any(b"ERROR" in a for a in fake.answers.get("Query/Query", []))


async def test_concurrent_fetches_never_overlap_on_one_user_id() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(n) for n in range(1, 8)]})
    source = make_source(fake)
    first, second = await asyncio.gather(
        collect(source, "purchase_orders", t(10, 11), t(10, 13)),
        collect(source, "purchase_orders", t(10, 11), t(10, 13)),
    )
    assert [r.key for r in first] == [r.key for r in second] == [f"{n:05d}" for n in range(1, 8)]
    assert fake.max_in_flight == 1
    assert fake.paths().count("logon") == 1
    assert fake.paths().count("Query/Query") == 8  # 4 pages of 2 each


def test_the_fake_notices_overlapping_calls() -> None:
    """The serialisation test can fail: without the lock the fake sees two calls at once."""
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1)]})
    fake.valid.add(USER_IDS[0])
    xml = ('<?xml version="1.0"?><Query><TableName>PorMasterHdr</TableName><ReturnRows>5</ReturnRows>'
           '</Query>')
    url = f"http://x{REST}/Query/Query?BusinessObject=COMFND&UserId={USER_IDS[0].replace(' ', '%20')}&XmlIn=" \
          + xml.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E").replace('"', "%22")

    async def both() -> None:
        async with httpx.AsyncClient(transport=fake.transport()) as client:
            await asyncio.gather(client.get(url), client.get(url))

    with pytest.raises(AssertionError, match="two calls at once"):
        asyncio.run(both())


# --------------------------------------------------------------------------- errors


async def test_logon_error_text_is_an_auth_error_with_syspros_words() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1)]}, operator_password="another")
    source = make_source(fake)
    with pytest.raises(SourceAuthError) as caught:
        await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    message = str(caught.value)
    assert "SYSPRO says: ERROR: Invalid operator password" in message
    assert "logon as MLC to company EDU1" in message
    assert fake.paths() == ["logon"]  # business errors are never retried


async def test_licence_exhausted_on_logon_says_so() -> None:
    fake = FakeSyspro(answers={"logon": [b"ERROR: No e.net licences available for this operator"]})
    source = make_source(fake)
    with pytest.raises(SourceAuthError, match="licence seat"):
        await source.session.logon()  # type: ignore[union-attr]


async def test_business_object_error_text_is_a_source_error_not_retried() -> None:
    fake = FakeSyspro(tables={})
    source = make_source(fake)
    with pytest.raises(SourceError) as caught:
        await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert type(caught.value) is SourceError
    assert "COMFND PorMasterHdr: SYSPRO says: ERROR: Table 'PorMasterHdr' not found" in str(caught.value)
    assert fake.paths() == ["logon", "Query/Query"]


async def test_lower_cased_validation_xml_becomes_an_error_with_its_descriptions() -> None:
    answer = ("<setupinvwarehouse Language='05'><item><key><stockcode>1004</stockcode></key><stockcode>"
              "<Value>1004</Value><ErrorNumber>240004</ErrorNumber><ErrorDescription>Stock code '1004' not "
              "found</ErrorDescription></stockcode></item><StatusOfItems><RecordsRead>1</RecordsRead>"
              "<RecordsInvalid>1</RecordsInvalid></StatusOfItems></setupinvwarehouse>").encode("cp1252")
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1)]}, answers={"Query/Query": [answer]})
    source = make_source(fake)
    with pytest.raises(SourceError) as caught:
        await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert type(caught.value) is SourceError
    assert "stockcode '1004': Stock code '1004' not found (error 240004)" in str(caught.value)


def test_error_recognition_table() -> None:
    assert failure_of("ERROR: Unable to read the SYSPRO base directory") is not None
    assert failure_of("3EA613166FE4BF47925DF1CEA14E910100  ") is None
    assert failure_of("<InvMaster><Row><StockCode>02</StockCode></Row></InvMaster>") is None
    assert failure_of("<x><errordescription></errordescription></x>") is None
    wrapped = b'"ERROR: Invalid operator password"'
    assert decode(wrapped) == "ERROR: Invalid operator password"
    assert decode(b'<string xmlns="http://schemas.microsoft.com/2003/10/Serialization/">0</string>') == "0"
    assert [status_action(s) for s in (200, 401, 404, 500, 503, 418)] == ["ok", "auth", "missing", "retry",
                                                                           "retry", "error"]


async def test_http_503_is_retried_with_backoff_then_succeeds() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1)]}, status=[503, 503])
    source = make_source(fake, retries=3)
    records = await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert [r.key for r in records] == ["00001"]
    assert fake.status == []


async def test_persistent_503_and_network_errors_are_source_unavailable() -> None:
    fake = FakeSyspro(status=[503, 503, 503])
    source = make_source(fake, retries=2)
    with pytest.raises(SourceUnavailable, match="HTTP 503 .3 attempts"):
        await source.session.logon()  # type: ignore[union-attr]
    fake = FakeSyspro(network_errors=5)
    source = make_source(fake, retries=1)
    with pytest.raises(SourceUnavailable, match="cannot reach SYSPRO .ConnectError") as caught:
        await source.session.logon()  # type: ignore[union-attr]
    assert caught.value.retriable
    assert caught.value.__context__ is None and caught.value.__cause__ is None


async def test_no_password_or_session_id_in_any_log_line_or_exception(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [OPERATOR_PASSWORD, COMPANY_PASSWORD, USER_IDS[0].strip(), USER_IDS[1].strip()]
    secrets += [quote(secret, safe="") for secret in secrets]  # as they travel in a query string
    errors: list[BaseException] = []
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1), po(2), po(3)]}, status=[503])
    source = make_source(fake)
    await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    fake.valid.clear()
    await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    fake.network_errors = 10
    with pytest.raises(SourceUnavailable) as unavailable:
        await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    errors.append(unavailable.value)
    fake.network_errors = 0
    fake.answers["Query/Query"] = [f"ERROR: bad call {OPERATOR_PASSWORD}".encode()]
    with pytest.raises(SourceError) as echoed:
        await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    errors.append(echoed.value)
    await source.aclose()
    bad = make_source(FakeSyspro(operator_password="x"))
    with pytest.raises(SourceAuthError) as refused:
        await bad.check()
    errors.append(refused.value)
    messages = [r.getMessage() for r in caplog.records]
    assert any("HTTP Request" in m for m in messages)  # httpx's own request lines were captured
    assert any("OperatorPassword=****" in m for m in messages)
    for text in messages + [str(e) for e in errors] + [repr(e) for e in errors] + [repr(source)]:
        for secret in secrets:
            assert secret not in text, text


def test_safe_url_masks_passwords_and_user_id() -> None:
    url = (f"http://h{REST}/logon?Operator=MLC&OperatorPassword={OPERATOR_PASSWORD}&CompanyId=EDU1"
           f"&CompanyPassword={COMPANY_PASSWORD}")
    assert safe_url(url) == f"http://h{REST}/logon?Operator=MLC&OperatorPassword=****&CompanyId=EDU1" \
                            "&CompanyPassword=****"
    assert safe_url(f"http://h{REST}/logoff?UserId=3EA6%20%20") == f"http://h{REST}/logoff?UserId=****"


# --------------------------------------------------------------------------- values


async def test_cp1252_padded_keys_and_thousands_separators_are_normalised() -> None:
    rows = [{"Supplier": "MULLER         ", "SupplierName": "Müller & Søn – “Ltd”", "CurrentBalance": "38,400.000",
             "OnHold": "N"}]
    fake = FakeSyspro(tables={"ApSupplier": rows})
    source = make_source(fake, entities={"suppliers": {"table": "ApSupplier", "key": "Supplier"}})
    (record,) = await collect(source, "suppliers", t(10, 11), t(10, 13))
    assert record.key == "MULLER"
    assert record.data["SupplierName"] == "Müller & Søn – “Ltd”"
    assert record.data["CurrentBalance"] == Decimal("38400.000")
    assert normalise(" 00001") == "00001" and normalise("1,234") == Decimal(1234)
    assert normalise("12,34") == "12,34"


async def test_lookup_uses_the_padded_key_as_syspro_stores_it_and_porqry_totals() -> None:
    detail = [{"PurchaseOrder": " 00001", "Line": "0001", "MOrderQty": "38,400.000", "MPrice": "0.50"},
              {"PurchaseOrder": " 00001", "Line": "0002", "MOrderQty": "2.000", "MPrice": "1,000.00"}]
    head = {**po(1), "SupplierName": "Acme Ltd"}
    fake = FakeSyspro(tables={"PorMasterHdr": [head], "PorMasterDetail": detail})
    source = make_source(fake, entities={"purchase_orders": {"table": "PorMasterHdr", "key": "PurchaseOrder",
                                                             "lookup": "porqry"}})
    await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    record = await source.lookup("purchase_orders", "00001")
    assert record is not None
    porqry = [p for n, p in fake.calls if n == "Query/Query" and p["BusinessObject"] == "PORQRY"]
    assert comfnd_xml_of(porqry[0]).findtext("Key/PurchaseOrder") == " 00001"
    assert record.key == "00001"
    assert record.data["SupplierName"] == "Acme Ltd"
    assert record.data["LineCount"] == 2
    assert record.data["OrderTotal"] == Decimal("21200")
    assert record.data["Lines"][0]["MOrderQty"] == Decimal("38400.000")
    assert record.data["PurchaseOrderTotals"] == {"LocalValues": {"OrderValue": Decimal("1000.00")}}
    assert await source.lookup("purchase_orders", "99999") is None


async def test_table_lookup_by_composite_key() -> None:
    invoices = [{"Supplier": "ACME01", "Invoice": "INV-1", "OrigInvValue": "1,250.00"},
                {"Supplier": "ACME01", "Invoice": "INV-2", "OrigInvValue": "99.00"}]
    fake = FakeSyspro(tables={"ApInvoice": invoices})
    source = make_source(fake, entities={"invoices": {"table": "ApInvoice", "key": ["Supplier", "Invoice"]}})
    record = await source.lookup("invoices", "ACME01|INV-2")
    assert record is not None and record.key == "ACME01|INV-2"
    assert record.data["OrigInvValue"] == "99.00"
    assert await source.lookup("invoices", "ACME01|INV-9") is None
    with pytest.raises(SourceError, match="2 parts"):
        await source.lookup("invoices", "ACME01")


# --------------------------------------------------------------------------- paging


async def test_comfnd_pages_by_key_with_where_gt_the_last_raw_key() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(n) for n in (5, 1, 4, 2, 3)]})
    source = make_source(fake)
    records = await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert [r.key for r in records] == ["00001", "00002", "00003", "00004", "00005"]
    queries = [comfnd_xml_of(p) for n, p in fake.calls if n == "Query/Query"]
    assert len(queries) == 3
    assert queries[0].find("Where") is None
    for query, last in zip(queries[1:], (" 00002", " 00004"), strict=True):
        (expression,) = query.findall("Where/Expression")
        assert (expression.findtext("Column"), expression.findtext("Condition"), expression.findtext("Value")) \
            == ("PurchaseOrder", "GT", last)
        assert query.findtext("ReturnRows") == "2"
        assert [c.text for c in query.findall("OrderBy/Column")] == ["PurchaseOrder"]


async def test_comfnd_paging_with_a_composite_key_and_fixed_filters() -> None:
    invoices = [{"Supplier": s, "Invoice": i, "InvoiceDate": "2024-05-10", "Posted": p}
                for s, i, p in [("A", "1", "Y"), ("A", "2", "Y"), ("A", "3", "N"), ("A", "4", "Y"),
                                ("B", "1", "Y"), ("C", "1", "Y"), ("C", "2", "Y")]]
    fake = FakeSyspro(tables={"ApInvoice": invoices})
    source = make_source(fake, entities={"invoices": {
        "table": "ApInvoice", "key": ["Supplier", "Invoice"], "page_size": 2,
        "where": [{"column": "Posted", "condition": "EQ", "value": "Y"}]}})
    records = await collect(source, "invoices", t(10, 11), t(10, 13))
    assert [r.key for r in records] == ["A|1", "A|2", "A|4", "B|1", "C|1", "C|2"]


async def test_a_server_ignoring_the_where_is_caught_not_looped() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(n) for n in range(1, 6)]}, ignore_where=True)
    source = make_source(fake)
    with pytest.raises(SourcePayloadError, match="does COMFND honour the Where"):
        await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert fake.paths().count("Query/Query") == 2


def odata_source(fake: FakeSyspro, **entity: Any) -> SysproSource:
    return make_source(fake, mode="odata", base_url=None, company_id=None, odata_url=f"http://syspro.test{ODATA}",
                       odata_password=ODATA_PASSWORD,
                       entities={"purchase_orders": {"table": "PorMasterHdr", "key": "PurchaseOrder", **entity}})


async def test_odata_follows_next_links_with_basic_auth() -> None:
    root = f"http://syspro.test{ODATA}"
    fake = FakeSyspro(odata_pages=[
        {"@odata.context": "x", "value": [{"PurchaseOrder": " 00001", "OrderStatus": "1", "MPrice": 12.5}],
         "@odata.nextLink": f"{root}PorMasterHdr?$skiptoken=1"},
        {"value": [{"PurchaseOrder": " 00002", "OrderStatus": "4", "MPrice": 1}],
         "@odata.nextLink": "PorMasterHdr?$skiptoken=2"},
        {"value": [{"PurchaseOrder": " 00003", "OrderStatus": "9", "MPrice": 0}]},
    ])
    source = odata_source(fake, where=[{"column": "OrderStatus", "condition": "NE", "value": "9"}])
    records = await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    assert [r.key for r in records] == ["00001", "00002", "00003"]
    assert records[0].data["MPrice"] == Decimal("12.5")
    first = httpx.URL(fake.calls[0][0])
    assert first.path == f"{ODATA}PorMasterHdr"
    assert first.params["$filter"] == "OrderStatus ne '9'"
    assert first.params["$orderby"] == "PurchaseOrder"
    assert [httpx.URL(c[0]).params.get("$skiptoken") for c in fake.calls[1:]] == ["1", "2"]


async def test_odata_loop_guard_and_foreign_links() -> None:
    root = f"http://syspro.test{ODATA}"
    page = {"value": [{"PurchaseOrder": " 00001"}], "@odata.nextLink": f"{root}PorMasterHdr?$skiptoken=1"}
    fake = FakeSyspro(odata_pages=[page, page, page])
    with pytest.raises(SourcePayloadError, match="repeats a page"):
        await collect(odata_source(fake), "purchase_orders", t(10, 11), t(10, 13))
    assert len(fake.calls) == 2
    fake = FakeSyspro(odata_pages=[{"value": [{"PurchaseOrder": "1"}],
                                    "@odata.nextLink": "http://elsewhere.test/odata/x?$skiptoken=1"}])
    with pytest.raises(SourcePayloadError, match="leaves the service root"):
        await collect(odata_source(fake), "purchase_orders", t(10, 11), t(10, 13))
    fake = FakeSyspro(odata_pages=[{"value": [], "@odata.nextLink": f"{root}PorMasterHdr?$skiptoken=9"}])
    with pytest.raises(SourcePayloadError, match="empty page"):
        await collect(odata_source(fake), "purchase_orders", t(10, 11), t(10, 13))


async def test_odata_wrong_credentials_are_an_auth_error() -> None:
    fake = FakeSyspro(odata_pages=[{"value": []}])
    source = make_source(fake, mode="odata", base_url=None, company_id=None,
                         odata_url=f"http://syspro.test{ODATA}", odata_password="wrong",
                         entities={"purchase_orders": {"table": "PorMasterHdr", "key": "PurchaseOrder"}})
    with pytest.raises(SourceAuthError, match="refused the Basic credentials"):
        await collect(source, "purchase_orders", t(10, 11), t(10, 13))


# --------------------------------------------------------------------------- change detection


def test_observed_at_is_clamped_into_the_window() -> None:
    assert observed_at(t(10, 13), t(10, 11), t(10, 12)) == t(10, 12) - timedelta(microseconds=1)
    assert observed_at(t(10, 10), t(10, 11), t(10, 12)) == t(10, 11)
    assert observed_at(t(10, 11, 30), t(10, 11), t(10, 12)) == t(10, 11, 30)
    assert observed_at(t(10, 13), t(10, 12), t(10, 12)) is None
    with pytest.raises(ValueError, match="aware"):
        observed_at(t(10), datetime(2024, 5, 10), t(10, 12))  # noqa: DTZ001


async def test_snapshot_rows_carry_the_poll_time_and_the_status_change_fires_once() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1, status="0"), po(2, status="1")]})
    clock = ManualClock(t(10, 12, 5))
    source = make_source(fake, clock)
    trigger = Condition(field="OrderStatus", becomes="1")
    seen: dict[str, dict[str, Any]] = {}
    fired: list[str] = []
    for status in ("0", "1", "1"):
        fake.tables["PorMasterHdr"][0]["OrderStatus"] = status
        records = await collect(source, "purchase_orders", clock.now - timedelta(minutes=10),
                                clock.now - timedelta(seconds=5))
        assert {r.changed_at for r in records} == {clock.now - timedelta(seconds=5, microseconds=1)}
        for record in records:
            if rules.evaluate(trigger, record.data, seen.get(record.key), "skip"):
                fired.append(record.key)
            seen[record.key] = rules.snapshot(trigger, record.data)
        clock.now += timedelta(minutes=5)
    assert fired == ["00001"]


async def test_date_mode_reads_from_the_site_local_date_of_since() -> None:
    invoices = [{"Supplier": "A", "Invoice": "1", "InvoiceDate": "2024-05-09"},
                {"Supplier": "A", "Invoice": "2", "InvoiceDate": "2024-05-10"},
                {"Supplier": "B", "Invoice": "1", "InvoiceDate": "2024-05-11"}]
    fake = FakeSyspro(tables={"ApInvoice": invoices})
    source = make_source(fake, entities={"invoices": {"table": "ApInvoice", "key": ["Supplier", "Invoice"],
                                                      "change": "date", "date_column": "InvoiceDate"}})
    # 22:30 UTC on the 9th is 00:30 on the 10th in Johannesburg (UTC+2)
    records = await collect(source, "invoices", datetime(2024, 5, 9, 22, 30, tzinfo=UTC), t(10, 13))
    assert [r.key for r in records] == ["A|2", "B|1"]
    (query,) = [comfnd_xml_of(p) for n, p in fake.calls if n == "Query/Query"]
    (expression,) = query.findall("Where/Expression")
    assert [expression.findtext(x) for x in ("Column", "Condition", "Value")] == ["InvoiceDate", "GE", "2024-05-10"]
    assert all(r.changed_at == t(10, 12) for r in records)  # the poll's time, not the business date


async def test_timestamp_mode_reads_above_the_mark_of_a_scan_finished_before_since() -> None:
    rows = [{**po(n), "TimeStamp": f"0x{n * 100:016X}"} for n in (1, 2, 3)]
    fake = FakeSyspro(tables={"PorMasterHdr": rows})
    clock = ManualClock(t(10, 12))
    source = make_source(fake, clock, entities={"purchase_orders": {
        "table": "PorMasterHdr", "key": "PurchaseOrder", "change": "timestamp"}})
    first = await collect(source, "purchase_orders", t(10, 11), t(10, 12))
    assert len(first) == 3  # no mark yet: a full scan
    rows[1]["TimeStamp"] = f"0x{400:016X}"  # PO 2 changed after the first scan
    clock.now = t(10, 12, 10)
    second = await collect(source, "purchase_orders", t(10, 12, 5), t(10, 12, 10))
    assert [r.key for r in second] == ["00002"]
    query = [comfnd_xml_of(p) for n, p in fake.calls if n == "Query/Query"][-1]
    (expression,) = query.findall("Where/Expression")
    assert [expression.findtext(x) for x in ("Column", "Condition", "Value")] == \
        ["TimeStamp", "GT", f"0x{300:016X}"]
    # a window starting before the first scan finished has no mark to rely on: full scan again
    again = await collect(source, "purchase_orders", t(10, 11, 55), t(10, 12, 10))
    assert len(again) == 3


async def test_timestamp_mode_without_a_rowversion_column_says_what_to_do() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1)]})
    source = make_source(fake, entities={"purchase_orders": {
        "table": "PorMasterHdr", "key": "PurchaseOrder", "change": "timestamp"}})
    with pytest.raises(SourcePayloadError, match="use change: snapshot or date"):
        await collect(source, "purchase_orders", t(10, 11), t(10, 13))


def test_rowversion_forms_and_history() -> None:
    assert rowversion("0x00000000000007D1") == 2001
    assert rowversion("00000000000007D1") == 2001
    assert rowversion("2001") == 2001
    assert rowversion(base64.b64encode((2001).to_bytes(8, "big")).decode()) == 2001
    assert rowversion("") is None and rowversion("n/a") is None
    history = RowversionHistory(keep=timedelta(hours=1))
    for minute, value in ((0, 10), (30, 20), (90, 30), (120, 40)):
        history.record(Mark(t(10, 10) + timedelta(minutes=minute), value, str(value)))
    assert len(history) == 3  # 10:00 dropped; 10:30 kept as the newest mark older than an hour
    assert history.floor(t(10, 11, 45)) is not None and history.floor(t(10, 11, 45)).value == 30  # type: ignore[union-attr]
    assert history.floor(t(10, 10, 29)) is None
    history.record(Mark(t(10, 12, 30), 5, "5"))  # the counter went back: database restored
    assert len(history) == 1 and history.floor(t(10, 12)) is None


# --------------------------------------------------------------------------- enrichment


async def test_lines_and_supplier_name_are_added_per_page_not_per_row() -> None:
    headers = [po(1, supplier="ACME01"), po(2, supplier="BETA02"), po(3, supplier="ACME01")]
    detail = [{"PurchaseOrder": " 00001", "Line": "0001", "MOrderQty": "1,000.000", "MPrice": "2.50"},
              {"PurchaseOrder": " 00001", "Line": "0002", "MOrderQty": "3.000", "MPrice": "10.00"},
              {"PurchaseOrder": " 00003", "Line": "0001", "MOrderQty": "1.000", "MPrice": "7.00"},
              {"PurchaseOrder": " 00009", "Line": "0001", "MOrderQty": "1.000", "MPrice": "1.00"}]
    suppliers = [{"Supplier": "ACME01         ", "SupplierName": "Acme Ltd"},
                 {"Supplier": "BETA02         ", "SupplierName": "Beta – Söhne"}]
    fake = FakeSyspro(tables={"PorMasterHdr": headers, "PorMasterDetail": detail, "ApSupplier": suppliers})
    source = make_source(fake, entities={"purchase_orders": {
        "table": "PorMasterHdr", "key": "PurchaseOrder", "page_size": 10,
        "columns": ["OrderStatus"], "lines": {}, "joins": [{"table": "ApSupplier", "key": "Supplier",
                                                             "columns": ["SupplierName"]}]}})
    records = await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    summary = [(r.key, r.data["SupplierName"], r.data["LineCount"], r.data["OrderTotal"]) for r in records]
    assert summary == [("00001", "Acme Ltd", 2, Decimal("2530.00000")), ("00002", "Beta – Söhne", 0, Decimal(0)),
                       ("00003", "Acme Ltd", 1, Decimal("7.00000"))]
    tables = [comfnd_xml_of(p).findtext("TableName") for n, p in fake.calls if n == "Query/Query"]
    assert tables == ["PorMasterHdr", "PorMasterDetail", "ApSupplier", "ApSupplier"]
    await collect(source, "purchase_orders", t(10, 11), t(10, 13))
    tables = [comfnd_xml_of(p).findtext("TableName") for n, p in fake.calls if n == "Query/Query"]
    assert tables.count("ApSupplier") == 2  # cached for an hour
    header_query = comfnd_xml_of(fake.calls[1][1])
    assert [c.text for c in header_query.findall("Columns/Column")] == ["PurchaseOrder", "OrderStatus", "Supplier"]


# --------------------------------------------------------------------------- check


async def test_check_reports_version_and_company_after_logon_query_logoff() -> None:
    fake = FakeSyspro(tables={"PorMasterHdr": [po(1)]})
    source = make_source(fake)
    result = await source.check()
    assert result.system == "SYSPRO e.net"
    assert result.details["version"] == "7.0.0.6"
    assert result.details["company"] == "EDU1"
    assert result.details["rows"] == "1"
    assert fake.paths() == ["logon", "getversion", "Query/Query", "logoff"]
    assert comfnd_xml_of(fake.calls[2][1]).findtext("ReturnRows") == "1"
    assert not source.session.logged_on  # type: ignore[union-attr]


@pytest.mark.parametrize(("fake_settings", "kind", "step", "text"), [
    ({"operator_password": "x"}, SourceAuthError, "logon", "Invalid operator password"),
    ({"answers": {"getversion": [b"ERROR: Unable to read the SYSPRO base directory registry string BaseDir8"]}},
     SourceError, "getversion", "BaseDir8"),
    ({"tables": {}}, SourceError, "COMFND on PorMasterHdr", "Table 'PorMasterHdr' not found"),
    ({"answers": {"logoff": [b"ERROR: Unable to read the SYSPRO base directory registry string BaseDir8"]}},
     SourceError, "logoff", "BaseDir8"),
])
async def test_check_says_exactly_which_step_failed(fake_settings: dict[str, Any], kind: type[Exception],
                                                     step: str, text: str) -> None:
    fake = FakeSyspro(**{"tables": {"PorMasterHdr": [po(1)]}, **fake_settings})
    with pytest.raises(kind) as caught:
        await make_source(fake).check()
    assert f"erp: check failed at {step}: " in str(caught.value)
    assert text in str(caught.value)


async def test_check_over_odata() -> None:
    fake = FakeSyspro(odata_pages=[{"value": [{"PurchaseOrder": " 00001"}]}])
    result = await odata_source(fake).check()
    assert result.system == "SYSPRO (OData)" and result.details["rows"] == "1"
    assert httpx.URL(fake.calls[0][0]).params["$top"] == "1"


# --------------------------------------------------------------------------- config


def test_registry_and_config_validation() -> None:
    assert registry.config_model("syspro") is SysproConfig
    with pytest.raises(ValueError, match="date_column"):
        SysproConfig.model_validate({"type": "syspro", "base_url": "http://h", "operator": "MLC",
                                     "company_id": "EDU1",
                                     "entities": {"x": {"table": "ApInvoice", "key": "Invoice", "change": "date"}}})
    with pytest.raises(ValueError, match="mode odata needs odata_url"):
        SysproConfig.model_validate({"type": "syspro", "mode": "odata", "operator": "MLC",
                                     "entities": {"x": {"table": "T", "key": "K"}}})
    with pytest.raises(ValueError, match="base_url"):
        SysproConfig.model_validate({"type": "syspro", "operator": "MLC",
                                     "entities": {"x": {"table": "T", "key": "K"}}})
    config = SysproConfig.model_validate({"type": "syspro", "base_url": "http://h", "operator": "MLC",
                                          "operator_password": OPERATOR_PASSWORD, "company_id": "EDU1",
                                          "entities": {"x": {"table": "T", "key": "K"}}})
    assert OPERATOR_PASSWORD not in repr(config)


def test_example_config_loads() -> None:
    from ml_connector.config import load_config

    path = Path(__file__).resolve().parents[2] / "examples" / "syspro.yaml"
    config = load_config(path, {})
    source = config.sources["syspro"]
    assert isinstance(source, SysproConfig)
    assert set(source.entities) == {"purchase_orders", "invoices", "gl_postings"}


@pytest.mark.parametrize("mode", ["enet", "odata"])
def test_example_config_validates_in_both_modes(mode: str, tmp_path: Path) -> None:
    """`mode: odata` must not leave the example an entity only e.net can serve (PORQRY look-ups)."""
    from ml_connector.app import compile_flows
    from ml_connector.config import load_config

    path = Path(__file__).resolve().parents[2] / "examples" / "syspro.yaml"
    text = path.read_text(encoding="utf-8")
    assert "    mode: enet " in text
    copy = tmp_path / "syspro.yaml"
    copy.write_text(text.replace("    mode: enet ", f"    mode: {mode} "), encoding="utf-8")
    config = load_config(copy, {})
    source = config.sources["syspro"]
    assert isinstance(source, SysproConfig) and source.mode == mode
    assert set(compile_flows(config)) == {"po_approved", "invoice_posted", "invoice_posted_to_gl"}


def test_tls_is_verified_by_default_and_takes_a_ca_bundle(tmp_path: Path) -> None:
    import certifi

    fake = FakeSyspro()
    assert make_source(fake, ca_bundle=certifi.where()) is not None  # no deprecated verify=<str>
    broken = tmp_path / "ca.pem"
    broken.write_text("not a certificate")
    with pytest.raises(SourceError, match="ca_bundle"):
        make_source(fake, ca_bundle=str(broken))
