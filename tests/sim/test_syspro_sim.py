"""The SYSPRO simulator behaves like SYSPRO, quirks included (e.net REST, OData, control API)."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from xml.etree.ElementTree import fromstring

import httpx
import pytest

from ml_connector.sim.syspro import SysproSim
from tests.support.clock import ManualClock

REST = "/SYSPROWCFService/Rest"
ODATA = "/SYSPROODataService/odata/EDU1"
START = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)  # 09:30 in Johannesburg
MLC = ("MLC", "mlc-pass")
LOGON = {"Operator": "MLC", "OperatorPassword": "mlc-pass", "CompanyId": "EDU1", "CompanyPassword": ""}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_sim(clock: ManualClock) -> Callable[..., SysproSim]:
    def make(**overrides: Any) -> SysproSim:
        return SysproSim(**{"clock": clock, **overrides})

    return make


@pytest.fixture
def sim(make_sim: Callable[..., SysproSim]) -> SysproSim:
    return make_sim()


def client_for(sim: SysproSim) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.create_app()), base_url="http://syspro:31002"
    )


@pytest.fixture
async def client(sim: SysproSim) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(sim) as c:
        yield c


async def logon(client: httpx.AsyncClient, **overrides: str) -> str:
    response = await client.get(f"{REST}/logon", params={**LOGON, **overrides})
    assert response.status_code == 200
    return response.text


def comfnd(
    table: str,
    *,
    rows: int | None = None,
    columns: tuple[str, ...] = (),
    where: tuple[tuple[str, str, str, str, str, str], ...] = (),
    order_by: tuple[str, ...] = (),
) -> str:
    """A COMFND XmlIn; ``where`` items are (open, and_or, column, condition, value, close)."""
    parts = [
        '<?xml version="1.0" encoding="Windows-1252"?>',
        '<Query xmlns:xsd="http://www.w3.org/2001/XMLSchema-instance"'
        ' xsd:noNamespaceSchemaLocation="COMFND.XSD">',
        f"<TableName>{table}</TableName>",
    ]
    if rows is not None:
        parts.append(f"<ReturnRows>{rows}</ReturnRows>")
    parts.append("<Columns>" + "".join(f"<Column>{c}</Column>" for c in columns) + "</Columns>")
    if where:
        parts.append(
            "<Where>"
            + "".join(
                f"<Expression><OpenBracket>{o}</OpenBracket><AndOr>{a}</AndOr><Column>{c}</Column>"
                f"<Condition>{cond}</Condition><Value>{v}</Value><CloseBracket>{cl}</CloseBracket></Expression>"
                for o, a, c, cond, v, cl in where
            )
            + "</Where>"
        )
    if order_by:
        parts.append("<OrderBy>" + "".join(f"<Column>{c}</Column>" for c in order_by) + "</OrderBy>")
    return "".join(parts) + "</Query>"


def porqry(key: str) -> str:
    return (
        '<?xml version="1.0" encoding="Windows-1252"?><Query xmlns:xsd="http://www.w3.org/2001/XMLSchema-instance"'
        f' xsd:noNamespaceSchemaLocation="PORQRY.XSD"><Key><PurchaseOrder>{key}</PurchaseOrder></Key>'
        "<Option><IncludeHistory>Y</IncludeHistory></Option></Query>"
    )


async def query(client: httpx.AsyncClient, user_id: str, xml_in: str, bo: str = "COMFND") -> httpx.Response:
    return await client.get(
        f"{REST}/Query/Query", params={"BusinessObject": bo, "UserId": user_id, "XmlIn": xml_in}
    )


def rows_of(response: httpx.Response) -> list[dict[str, str]]:
    root = fromstring(response.content)
    return [{child.tag: child.text or "" for child in row} for row in root.findall("Row")]


# -- e.net: logon, sessions ----------------------------------------------------------------------


async def test_logon_returns_34_hex_and_two_spaces_as_octet_stream(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{REST}/logon", params=LOGON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["server"] == "Microsoft-HTTPAPI/2.0"
    assert re.fullmatch(rb"[0-9A-F]{34}  ", response.content)


async def test_user_id_must_come_back_with_its_two_spaces(client: httpx.AsyncClient) -> None:
    user_id = await logon(client)
    stripped = await query(client, user_id.strip(), comfnd("ApSupplier", rows=1))
    assert stripped.status_code == 200
    assert stripped.text == "ERROR: Invalid UserId. You may need to log on again."
    raw = await client.get(
        f"{REST}/Query/Query?BusinessObject=COMFND&UserId={user_id.strip()}%20%20"
        f"&XmlIn={quote(comfnd('ApSupplier', rows=1))}"
    )
    assert len(rows_of(raw)) == 1
    logoff = await client.get(f"{REST}/logoff?UserId={quote(user_id)}")
    assert logoff.text == "0"
    again = await client.get(f"{REST}/logoff", params={"UserId": user_id})
    assert again.text.startswith("ERROR: ")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"OperatorPassword": "wrong"}, "ERROR: Invalid operator password"),
        ({"Operator": "NOBODY"}, "ERROR: Invalid operator code"),
        ({"CompanyId": "ZZZ"}, "ERROR: Company 'ZZZ' is not a valid company"),
        ({"CompanyPassword": "x"}, "ERROR: Invalid company password"),
    ],
)
async def test_logon_failures_are_error_text_with_http_200(
    client: httpx.AsyncClient, overrides: dict[str, str], expected: str
) -> None:
    response = await client.get(f"{REST}/logon", params={**LOGON, **overrides})
    assert (response.status_code, response.text) == (200, expected)


async def test_operator_code_is_case_insensitive_password_is_not(client: httpx.AsyncClient) -> None:
    assert not (await logon(client, Operator="mlc")).startswith("ERROR")
    assert (await logon(client, Operator="mlc", OperatorPassword="MLC-PASS")).startswith("ERROR")


async def test_second_logon_by_same_operator_evicts_the_first(client: httpx.AsyncClient) -> None:
    first = await logon(client)
    other = await logon(client, Operator="ADMIN", OperatorPassword="secret")
    second = await logon(client)
    assert first != second
    assert (await query(client, first, comfnd("ApSupplier", rows=1))).text.startswith("ERROR: Invalid UserId")
    assert len(rows_of(await query(client, second, comfnd("ApSupplier", rows=1)))) == 1
    assert len(rows_of(await query(client, other, comfnd("ApSupplier", rows=1)))) == 1


async def test_seats_run_out_and_logoff_frees_one(make_sim: Callable[..., SysproSim]) -> None:
    async with client_for(make_sim(enet_seats=2)) as client:
        admin = await logon(client, Operator="ADMIN", OperatorPassword="secret")
        await logon(client)
        refused = await logon(client, Operator="CLERK", OperatorPassword="clerk-pass")
        assert refused.startswith("ERROR: No e.net licence")
        assert (await client.get(f"{REST}/logoff", params={"UserId": admin})).text == "0"
        assert not (await logon(client, Operator="CLERK", OperatorPassword="clerk-pass")).startswith("ERROR")


async def test_idle_sessions_time_out_and_free_their_seat(
    make_sim: Callable[..., SysproSim], clock: ManualClock
) -> None:
    async with client_for(make_sim(session_timeout=600, enet_seats=1)) as client:
        user_id = await logon(client)
        clock.advance(seconds=599)
        assert len(rows_of(await query(client, user_id, comfnd("ApSupplier", rows=1)))) == 1
        clock.advance(seconds=599)  # activity restarted the clock
        assert len(rows_of(await query(client, user_id, comfnd("ApSupplier", rows=1)))) == 1
        clock.advance(seconds=600)
        expired = await query(client, user_id, comfnd("ApSupplier", rows=1))
        assert expired.text == "ERROR: Invalid UserId. You may need to log on again."
        assert not (await logon(client, Operator="ADMIN", OperatorPassword="secret")).startswith("ERROR")


async def test_overlapping_calls_on_one_user_id_are_refused(make_sim: Callable[..., SysproSim]) -> None:
    async with client_for(make_sim(latency=0.05)) as client:
        user_id = await logon(client)
        other = await logon(client, Operator="ADMIN", OperatorPassword="secret")
        xml_in = comfnd("ApSupplier", rows=1)
        first, second, elsewhere = await asyncio.gather(
            query(client, user_id, xml_in), query(client, user_id, xml_in), query(client, other, xml_in)
        )
        texts = sorted([first.text, second.text], key=lambda t: t.startswith("ERROR"))
        assert texts[0].startswith("<?xml")
        assert texts[1].startswith("ERROR: UserId is busy")
        assert elsewhere.text.startswith("<?xml")
        assert (await query(client, user_id, xml_in)).text.startswith("<?xml")  # serialised calls are fine


async def test_getversion_and_unknown_paths(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{REST}/getversion")).text == "8.0.0.21"
    assert (await client.get(f"{REST}/Query/Browse")).status_code == 404
    assert (await client.post(f"{REST}/logon", params=LOGON)).status_code == 405


async def test_huge_urls_are_refused_before_enet(client: httpx.AsyncClient) -> None:
    user_id = await logon(client)
    big = comfnd(
        "ApSupplier", where=tuple(("(", "Or", "Supplier", "EQ", f"S{i:05d}", ")") for i in range(90))
    )
    assert 16384 < len(quote(big)) < 65536  # over the limit, under httpx's own
    response = await query(client, user_id, big)
    assert response.status_code == 414
    assert "Request URL Too Long" in response.text


# -- e.net: COMFND ------------------------------------------------------------------------------


async def test_comfnd_pages_by_key_with_where_orderby_returnrows(
    client: httpx.AsyncClient, sim: SysproSim
) -> None:
    user_id = await logon(client)
    seen: list[str] = []
    last = ""
    for _ in range(10):
        where = (("(", "And", "PurchaseOrder", "GT", last, ")"),) if last else ()
        response = await query(
            client,
            user_id,
            comfnd(
                "PorMasterHdr",
                rows=100,
                columns=("PurchaseOrder", "OrderStatus"),
                where=where,
                order_by=("PurchaseOrder",),
            ),
        )
        page = rows_of(response)
        assert fromstring(response.content).findtext("RowsReturned") == f"{len(page):>8}"
        if not page:
            break
        seen += [r["PurchaseOrder"] for r in page]
        last = page[-1]["PurchaseOrder"]
    assert seen == [f" {n:05d}" for n in range(1, 241)]
    assert len(sim.data.rows["PorMasterHdr"]) == 240


async def test_comfnd_output_shape_matches_the_recordings(client: httpx.AsyncClient) -> None:
    user_id = await logon(client)
    response = await query(
        client,
        user_id,
        comfnd(
            "PorMasterHdr",
            rows=1,
            columns=("PurchaseOrder",),
            where=(("(", "And", "PurchaseOrder", "EQ", " 00001", ")"),),
            order_by=("PurchaseOrder",),
        ),
    )
    assert response.text == (
        '<?xml version="1.0" encoding="Windows-1252"?>\n'
        "<PorMasterHdr Language='05' Language2='EN' CssStyle='' DecFormat='1' DateFormat='01' Role='01' "
        "Version='8.0.004' OperatorPrimaryRole='   '>\n<HeaderDetails>\n<TableName>PorMasterHdr</TableName>\n"
        "<Columns>\n<Column>PurchaseOrder</Column>\n</Columns>\n<OrderBy>\n<Column>PurchaseOrder</Column>\n"
        "</OrderBy>\n</HeaderDetails>\n<Row>\n<PurchaseOrder> 00001</PurchaseOrder>\n</Row>\n"
        "<RowsReturned>       1</RowsReturned>\n</PorMasterHdr>\n "
    )


async def test_comfnd_stripped_key_matches_nothing(client: httpx.AsyncClient) -> None:
    user_id = await logon(client)
    response = await query(
        client, user_id, comfnd("PorMasterHdr", where=(("", "", "PurchaseOrder", "EQ", "00001", ""),))
    )
    assert rows_of(response) == []


@pytest.mark.parametrize(("value", "found"), [("acm001", 1), ("ACM001   ", 1), (" ACM001", 0)])
async def test_comfnd_compares_like_sql_server(client: httpx.AsyncClient, value: str, found: int) -> None:
    """Case-insensitive collation; trailing spaces ignored, leading spaces significant."""
    user_id = await logon(client)
    xml_in = comfnd("ApSupplier", columns=("Supplier",), where=(("", "", "Supplier", "EQ", value, ""),))
    assert len(rows_of(await query(client, user_id, xml_in))) == found


async def test_comfnd_brackets_or_like_and_dates(client: httpx.AsyncClient, sim: SysproSim) -> None:
    user_id = await logon(client)
    since = sim.today() - timedelta(days=20)
    where = (
        ("(", "And", "InvoiceDate", "GE", since.isoformat(), ""),
        ("(", "And", "Supplier", "LIKE", "mul%", ""),
        ("", "Or", "Supplier", "EQ", "cre001", "))"),
    )
    response = await query(
        client,
        user_id,
        comfnd("ApInvoice", columns=("Supplier", "Invoice", "InvoiceDate", "OrigInvValue"), where=where),
    )
    got = rows_of(response)
    expected = [
        r
        for r in sim.data.rows["ApInvoice"]
        if isinstance(r["InvoiceDate"], date)
        and r["InvoiceDate"] >= since
        and r["Supplier"] in ("MUL001", "CRE001")
    ]
    assert got and len(got) == len(expected)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["InvoiceDate"]) for r in got)
    assert all(re.fullmatch(r"\d+\.\d\d", r["OrigInvValue"]) for r in got)


async def test_comfnd_timestamp_is_hex_rowversion_and_filterable(
    client: httpx.AsyncClient, sim: SysproSim
) -> None:
    user_id = await logon(client)
    first = rows_of(
        await query(client, user_id, comfnd("PorMasterHdr", rows=1, columns=("PurchaseOrder", "TimeStamp")))
    )
    mark = first[0]["TimeStamp"]
    assert re.fullmatch(r"0x[0-9A-F]{16}", mark)
    latest = max(int(str(r["TimeStamp"])) for r in sim.data.rows["PorMasterHdr"])
    sim.set_po_status(" 00001", "1")
    after = rows_of(
        await query(
            client,
            user_id,
            comfnd(
                "PorMasterHdr",
                columns=("PurchaseOrder", "OrderStatus", "TimeStamp"),
                where=(("", "", "TimeStamp", "GT", f"0x{latest:016X}", ""),),
            ),
        )
    )
    assert [(r["PurchaseOrder"], r["OrderStatus"]) for r in after] == [(" 00001", "1")]
    assert int(after[0]["TimeStamp"], 16) > int(mark, 16)


async def test_timestamp_presence_is_configurable(make_sim: Callable[..., SysproSim]) -> None:
    async with client_for(make_sim(timestamp_tables=("ApInvoice",))) as client:
        user_id = await logon(client)
        response = await query(client, user_id, comfnd("PorMasterHdr", columns=("TimeStamp",)))
        assert response.text == "ERROR: Invalid column name 'TimeStamp'"
        assert (
            len(rows_of(await query(client, user_id, comfnd("ApInvoice", rows=2, columns=("TimeStamp",)))))
            == 2
        )


async def test_comfnd_errors(client: httpx.AsyncClient) -> None:
    user_id = await logon(client)
    assert (
        await query(client, user_id, comfnd("NoSuchTable"))
    ).text == "ERROR: Invalid object name 'NoSuchTable'"
    assert (await query(client, user_id, comfnd("ApInvoice", columns=("Nope",)))).text == (
        "ERROR: Invalid column name 'Nope'"
    )
    assert (await query(client, user_id, "<Query><TableName>ApInvoice")).text.startswith(
        "ERROR: XmlIn is not well formed"
    )
    assert (await query(client, user_id, comfnd("ApInvoice"), bo="APSQRY")).text.startswith(
        "ERROR: Business object"
    )
    bad = await query(
        client, user_id, comfnd("ApInvoice", where=(("", "", "InvoiceDate", "BETWEEN", "x", ""),))
    )
    root = fromstring(bad.content)
    assert root.tag == "query"
    assert root.findtext("condition/ErrorDescription") == "Condition 'BETWEEN' is invalid"
    bad_date = await query(
        client, user_id, comfnd("ApInvoice", where=(("", "", "InvoiceDate", "GE", "01/11/2026", ""),))
    )
    assert fromstring(bad_date.content).findtext("value/Value") == "01/11/2026"


async def test_non_ascii_names_are_windows_1252_bytes(client: httpx.AsyncClient) -> None:
    user_id = await logon(client)
    response = await query(client, user_id, comfnd("ApSupplier", columns=("Supplier", "SupplierName")))
    for name in (
        "Müller Industrietechnik",
        "Société Générale de Fournitures",
        "Crème &amp; Co",
        "Œuvre Mécanique SARL",
    ):
        assert name.encode("cp1252") in response.content
    assert "Müller".encode() not in response.content
    assert b"\x8cuvre" in response.content  # the Windows-1252 byte for the OE ligature, absent in Latin-1


# -- e.net: PORQRY -------------------------------------------------------------------------------


async def test_porqry_detail(client: httpx.AsyncClient, sim: SysproSim) -> None:
    key = sim.add_purchase_order(
        supplier="SOC001",
        lines=[("2804011COL", Decimal(38400), Decimal("1.25")), ("A100", Decimal(12), Decimal("1999.5"))],
    )
    user_id = await logon(client)
    response = await query(client, user_id, porqry(key), bo="PORQRY")
    root = fromstring(response.content)
    assert root.tag == "PorDetail" and root.get("Language") == "05"
    assert root.findtext("PurchaseOrder") == key == " 00241"
    assert root.findtext("SupplierName") == "Société Générale de Fournitures"
    assert (root.findtext("OrderStatus"), root.findtext("OrderStatusDescription")) == ("0", "In process")
    lines = root.findall("PurchaseOrderLine/Merchandise")
    assert [m.findtext("Line") for m in lines] == ["1", "2"]
    assert lines[0].findtext("MOrderQty") == "38,400.000"
    assert lines[0].findtext("Unedited_MOrderQty") == "        38400.000000"
    assert lines[1].findtext("MPrice") == "1999.50000"
    assert root.findtext("PurchaseOrderTotals/LocalValues/Edited_LocalOrderValue") == "71,994.00"
    assert root.findtext("OrderEntryDate") == "2026-11-02"


async def test_porqry_unknown_po_is_lower_cased_validation_xml(client: httpx.AsyncClient) -> None:
    user_id = await logon(client)
    response = await query(client, user_id, porqry("00001"), bo="PORQRY")  # stripped key: not found
    assert response.status_code == 200
    root = fromstring(response.content)
    assert root.tag == "query"
    assert root.findtext("key/purchaseorder") == "00001"
    assert root.findtext("purchaseorder/ErrorDescription") == "Purchase order '00001' not found"
    assert root.findtext("purchaseorder/ErrorNumber")


# -- OData ---------------------------------------------------------------------------------------


async def odata(client: httpx.AsyncClient, path: str, **params: str) -> httpx.Response:
    return await client.get(f"{ODATA}/{path}", params=params, auth=MLC)


async def test_odata_server_driven_paging(client: httpx.AsyncClient) -> None:
    response = await odata(client, "PorMasterHdr")
    keys: list[str] = []
    pages = 0
    while True:
        body = response.json()
        assert body["@odata.context"].endswith("/$metadata#PorMasterHdr")
        keys += [row["PurchaseOrder"] for row in body["value"]]
        pages += 1
        link = body.get("@odata.nextLink")
        if link is None:
            break
        assert link.startswith("http://syspro:31002" + ODATA)
        response = await client.get(link, auth=MLC)
    assert pages == 3
    assert keys == [f" {n:05d}" for n in range(1, 241)]


async def test_odata_top_select_orderby_and_page_size(make_sim: Callable[..., SysproSim]) -> None:
    async with client_for(make_sim(odata_page_size=40)) as client:
        first = (
            await odata(
                client,
                "ApInvoice",
                **{"$top": "50", "$select": "Invoice,OrigInvValue", "$orderby": "OrigInvValue desc"},
            )
        ).json()
        assert len(first["value"]) == 40 and set(first["value"][0]) == {"Invoice", "OrigInvValue"}
        second = (await client.get(first["@odata.nextLink"], auth=MLC)).json()
        assert len(second["value"]) == 10 and "@odata.nextLink" not in second
        values = [r["OrigInvValue"] for r in first["value"] + second["value"]]
        assert values == sorted(values, reverse=True)


async def test_odata_filter_on_dates_and_numbers(client: httpx.AsyncClient, sim: SysproSim) -> None:
    since = sim.today() - timedelta(days=30)
    flt = f"InvoiceDate ge {since.isoformat()} and (OrigInvValue gt 1000 or Supplier eq 'acm001')"
    body = (await odata(client, "ApInvoice", **{"$filter": flt, "$count": "true"})).json()
    expected = {
        r["Invoice"]
        for r in sim.data.rows["ApInvoice"]
        if isinstance(r["InvoiceDate"], date)
        and r["InvoiceDate"] >= since
        and (Decimal(str(r["OrigInvValue"])) > 1000 or r["Supplier"] == "ACM001")
    }
    assert expected and {r["Invoice"] for r in body["value"]} == expected
    assert body["@odata.count"] == len(expected)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["InvoiceDate"]) for r in body["value"])


async def test_backdated_posting_is_found_by_timestamp_not_by_invoice_date(
    client: httpx.AsyncClient, sim: SysproSim
) -> None:
    rows = (await odata(client, "ApInvoice", **{"$orderby": "TimeStamp desc", "$top": "1"})).json()["value"]
    mark = rows[0]["TimeStamp"]
    assert base64.b64decode(mark) == max(
        int(str(r["TimeStamp"])) for r in sim.data.rows["ApInvoice"]
    ).to_bytes(8, "big")
    old = sim.today() - timedelta(days=45)
    sim.post_ap_invoice(
        supplier="MUL001", invoice="LATE-1", amount=Decimal("99.95"), invoice_date=old, post_date=old
    )
    by_date = (
        await odata(client, "ApInvoice", **{"$filter": f"PostDate ge {sim.today().isoformat()}"})
    ).json()
    assert "LATE-1" not in {r["Invoice"] for r in by_date["value"]}
    by_stamp = (await odata(client, "ApInvoice", **{"$filter": f"TimeStamp gt binary'{mark}'"})).json()
    assert [(r["Invoice"], r["PostDate"]) for r in by_stamp["value"]] == [("LATE-1", old.isoformat())]


async def test_odata_timestamp_as_int64(make_sim: Callable[..., SysproSim]) -> None:
    sim = make_sim(odata_timestamp="int64")
    async with client_for(sim) as client:
        latest = max(int(str(r["TimeStamp"])) for r in sim.data.rows["PorMasterHdr"])
        sim.set_po_status(" 00007", "1")
        body = (await odata(client, "PorMasterHdr", **{"$filter": f"TimeStamp gt {latest}"})).json()
        assert [(r["PurchaseOrder"], r["OrderStatus"]) for r in body["value"]] == [(" 00007", "1")]
        assert body["value"][0]["TimeStamp"] > latest


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ("Nope eq 1", "Could not find a property named 'Nope' on type 'SYSPRO.ApInvoice'."),
        ("InvoiceDate ge '2026-11-01'", "incompatible types"),
        ("InvoiceDate ge 2026-11-01T00:00:00Z", "incompatible types"),
        ("TimeStamp gt 2000", "incompatible types"),
        ("Supplier eq", "Expression expected"),
        ("(Supplier eq 'A'", "Expression expected"),
        ("contains(Supplier,'A')", "not supported"),
        ("Supplier eq 'A' xor Invoice eq 'B'", "Syntax error"),
    ],
)
async def test_odata_bad_filter_is_400_with_odata_error(
    client: httpx.AsyncClient, flt: str, message: str
) -> None:
    response = await odata(client, "ApInvoice", **{"$filter": flt})
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    assert message in error["message"]


async def test_odata_bad_options_and_unknown_set(client: httpx.AsyncClient) -> None:
    assert (await odata(client, "ApInvoice", **{"$top": "-1"})).status_code == 400
    assert (await odata(client, "ApInvoice", **{"$expand": "Lines"})).status_code == 400
    assert (await odata(client, "ApInvoice", **{"$select": "Nope"})).status_code == 400
    missing = await odata(client, "GenMaster")
    assert missing.status_code == 404 and "error" in missing.json()


@pytest.mark.parametrize("auth", [None, ("MLC", "wrong"), ("NOBODY", "mlc-pass")])
async def test_odata_requires_basic_auth(client: httpx.AsyncClient, auth: tuple[str, str] | None) -> None:
    response = await client.get(f"{ODATA}/ApSupplier", auth=auth)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_odata_service_document_and_metadata(client: httpx.AsyncClient) -> None:
    doc = (await client.get(ODATA, auth=MLC)).json()
    assert {s["name"] for s in doc["value"]} == {"PorMasterHdr", "PorMasterDetail", "ApInvoice", "ApSupplier",
                                               "ApJnlSummary"}
    metadata = await client.get(f"{ODATA}/$metadata", auth=MLC)
    assert 'Name="TimeStamp" Type="Edm.Binary"' in metadata.text
    assert 'Name="InvoiceDate" Type="Edm.Date"' in metadata.text


async def test_odata_json_keeps_non_ascii_names(client: httpx.AsyncClient) -> None:
    body = (await odata(client, "ApSupplier", **{"$filter": "Supplier eq 'MUL001'"})).json()
    assert body["value"][0]["SupplierName"] == "Müller Industrietechnik"


# -- control API ---------------------------------------------------------------------------------


async def control(client: httpx.AsyncClient, action: str, **args: Any) -> httpx.Response:
    return await client.post(f"/_sim/{action}", json=args)


async def test_control_po_lifecycle_visible_in_odata(client: httpx.AsyncClient) -> None:
    created = await control(
        client,
        "add_purchase_order",
        supplier="CRE001",
        lines=[{"stock_code": "B2040", "quantity": 5, "price": "12.40"}],
    )
    key = created.json()["purchase_order"]
    before = (await odata(client, "PorMasterHdr", **{"$filter": f"PurchaseOrder eq '{key}'"})).json()[
        "value"
    ][0]
    assert before["OrderStatus"] == "0"
    stamp = (await control(client, "set_po_status", purchase_order=key, status="1")).json()["timestamp"]
    after = (await odata(client, "PorMasterHdr", **{"$filter": f"PurchaseOrder eq '{key}'"})).json()["value"][
        0
    ]
    assert after["OrderStatus"] == "1"
    assert base64.b64decode(after["TimeStamp"]) == stamp.to_bytes(8, "big")
    assert base64.b64decode(after["TimeStamp"]) > base64.b64decode(before["TimeStamp"])
    assert (await control(client, "set_po_status", purchase_order="99999", status="1")).status_code == 404
    assert (await control(client, "set_po_status", purchase_order=key, status="X")).status_code == 400


async def test_control_backdated_invoice(client: httpx.AsyncClient, sim: SysproSim) -> None:
    response = await control(
        client,
        "post_ap_invoice",
        supplier="NOR001",
        invoice="BD-7",
        amount="1234.50",
        invoice_date="2026-09-30",
        post_date="2026-10-01",
    )
    assert response.status_code == 200
    row = sim.data.find("ApInvoice", ("NOR001", "BD-7"))
    assert row is not None
    assert (row["InvoiceDate"], row["PostDate"], row["TimeStamp"]) == (
        date(2026, 9, 30),
        date(2026, 10, 1),
        response.json()["timestamp"],
    )


async def test_control_faults(client: httpx.AsyncClient) -> None:
    assert (await control(client, "fail_next", count=2)).status_code == 200
    assert (await client.get(f"{REST}/getversion")).status_code == 503
    assert (await odata(client, "ApSupplier")).status_code == 503
    assert (await client.get(f"{REST}/getversion")).text == "8.0.0.21"
    await control(client, "malform_next")
    truncated = await odata(client, "ApSupplier")
    assert truncated.status_code == 200
    with pytest.raises(ValueError):
        truncated.json()
    assert (await odata(client, "ApSupplier")).json()["value"]


async def test_control_sessions_clock_and_latency(client: httpx.AsyncClient, sim: SysproSim) -> None:
    user_id = await logon(client)
    assert (await control(client, "evict", operator="mlc")).json() == {"evicted": 1}
    assert (await query(client, user_id, comfnd("ApSupplier"))).text.startswith("ERROR: Invalid UserId")
    user_id = await logon(client)
    assert (await control(client, "expire_sessions")).json() == {"expired": 1}
    assert (await query(client, user_id, comfnd("ApSupplier"))).text.startswith("ERROR: Invalid UserId")
    user_id = await logon(client)
    await control(client, "advance_clock", seconds=1200)
    assert (await query(client, user_id, comfnd("ApSupplier"))).text.startswith("ERROR: Invalid UserId")
    assert (await control(client, "set_latency", seconds=0.01)).status_code == 200
    assert sim.latency == 0.01
    state = (await client.get("/_sim/state")).json()
    assert state["now"] == (START + timedelta(seconds=1200)).isoformat()
    assert (await control(client, "set_latency", seconds=-1)).status_code == 400
    assert (await control(client, "no_such_action")).status_code == 404


def test_naive_clock_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SysproSim(clock=lambda: datetime(2026, 11, 2, 9, 30))


def test_seed_is_deterministic(clock: ManualClock) -> None:
    a, b = SysproSim(clock=clock, seed=9), SysproSim(clock=clock, seed=9)
    assert a.data.rows["ApInvoice"] == b.data.rows["ApInvoice"]
    assert a.data.rows["ApInvoice"] != SysproSim(clock=clock, seed=10).data.rows["ApInvoice"]
