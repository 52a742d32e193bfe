"""The SAP RFC agent simulator on the wire, without the adapter: protocol v1 and SAP's rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ml_connector.sim.sap_agent import SapAgentSim
from tests.support.clock import ManualClock

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # 16:00 in Berlin
TOKEN = "sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def wire() -> AsyncIterator[tuple[SapAgentSim, httpx.AsyncClient]]:
    sim = SapAgentSim(clock=ManualClock(NOW), token=TOKEN)
    sim.add_supplier("100000", "Müller Präzision GmbH", email="sales@mueller.example")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.create_app()), base_url="http://agent") as http:
        yield sim, http


async def read_table(http: httpx.AsyncClient, table: str, fields: list[str] | None = None,
                     options: list[str] | None = None, **imports: Any) -> httpx.Response:
    body = {"function": "RFC_READ_TABLE", "imports": {"QUERY_TABLE": table, **imports},
            "tables": {"FIELDS": [{"FIELDNAME": f} for f in fields or []],
                       "OPTIONS": [{"TEXT": line} for line in options or []]}}
    return await http.post("/rfc/v1/call", json=body, headers=AUTH)


def error(response: httpx.Response) -> dict[str, Any]:
    found: dict[str, Any] = response.json()["error"]
    return found


async def test_a_bad_token_is_refused_before_sap(wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    sim, http = wire
    response = await http.post("/rfc/v1/call", json={"function": "RFC_SYSTEM_INFO"},
                               headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and error(response)["type"] == "AGENT_UNAUTHORIZED"
    assert sim.calls == []


async def test_a_refused_sap_logon_is_rfc_logon_failure(wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    sim, http = wire
    sim.logon_refused = True
    response = await http.get("/rfc/v1/info", headers=AUTH)
    assert response.status_code == 502 and error(response)["type"] == "RFC_LOGON_FAILURE"


async def test_fields_come_back_with_offsets_and_values_padded(wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    sim, http = wire
    sim.post_invoice(lifnr="100000", xblnr="RE-1", amount="-12.50")
    response = await read_table(http, "RBKP", ["BELNR", "LIFNR", "RMWWR", "CPUDT"], DELIMITER="|")
    tables = response.json()["tables"]
    assert [(f["FIELDNAME"], f["OFFSET"], f["LENGTH"], f["TYPE"]) for f in tables["FIELDS"]] == [
        ("BELNR", "000000", "000010", "C"), ("LIFNR", "000011", "000010", "C"), ("RMWWR", "000022", "000016", "P"),
        ("CPUDT", "000039", "000008", "D")]
    assert tables["DATA"] == [{"WA": "5105600001|0000100000|          12.50-|20240305"}]


async def test_wider_than_512_is_data_buffer_exceeded(wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    _, http = wire
    response = await read_table(http, "LFA1", DELIMITER="|")
    assert response.status_code == 422
    assert error(response) | {"key": "DATA_BUFFER_EXCEEDED", "message_class": "AD", "message_number": "559",
                              "message_v1": "LFA1", "message_v2": "512"} == error(response)
    assert (await read_table(http, "LFA1", ["LIFNR", "NAME1"], DELIMITER="|")).status_code == 200


async def test_options_lines_longer_than_72_or_cutting_a_literal_are_invalid(
        wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    _, http = wire
    long_line = "NAME1 = 'Müller Präzision GmbH' OR NAME1 = 'Müller Präzision GmbH und Co. KG'"
    assert len(long_line) > 72
    too_long = await read_table(http, "LFA1", ["LIFNR"], [long_line])
    assert error(too_long)["key"] == "OPTION_NOT_VALID"
    cut = await read_table(http, "LFA1", ["LIFNR"], ["NAME1 = 'Müller Präzision", "GmbH'"])
    assert error(cut)["key"] == "OPTION_NOT_VALID"
    whole = await read_table(http, "LFA1", ["LIFNR"], ["NAME1 = 'Müller Präzision GmbH'", "AND LAND1 = 'DE'"])
    assert whole.json()["tables"]["DATA"] == [{"WA": "0000100000"}]


async def test_where_clauses_in_between_like_and_parentheses(wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    sim, http = wire
    for n in range(5):
        sim.post_invoice(lifnr="100000", xblnr=f"RE-{n}", amount=f"{n}00.00")
    found = await read_table(http, "RBKP", ["XBLNR"], ["( XBLNR IN ( 'RE-1' , 'RE-3' ) OR XBLNR LIKE 'RE-4%' )",
                                                       "AND RMWWR BETWEEN '100' AND '400'"])
    assert sorted(r["WA"].strip() for r in found.json()["tables"]["DATA"]) == ["RE-1", "RE-3", "RE-4"]
    bad = await read_table(http, "RBKP", ["XBLNR"], ["NOSUCHFIELD = 'x'"])
    assert error(bad)["key"] == "OPTION_NOT_VALID"


async def test_unknown_tables_and_fields(wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    sim, http = wire
    assert error(await read_table(http, "ZNOPE"))["key"] == "TABLE_NOT_AVAILABLE"
    assert error(await read_table(http, "LFA1", ["LIFNR", "NOPE"]))["key"] == "TABLE_WITHOUT_DATA"
    sim.not_authorized.add("LFA1")
    assert error(await read_table(http, "LFA1", ["LIFNR"]))["key"] == "NOT_AUTHORIZED"


async def test_rowskips_rowcount_page_in_an_order_that_is_not_the_key(
        wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    sim, http = wire
    made = [sim.post_invoice(lifnr="100000", xblnr=f"RE-{n}", amount="1.00")[0] for n in range(9)]
    pages = [(await read_table(http, "RBKP", ["BELNR"], ROWSKIPS=skip, ROWCOUNT=4)).json()["tables"]["DATA"]
             for skip in (0, 4, 8)]
    assert [len(p) for p in pages] == [4, 4, 1]
    seen = [r["WA"] for p in pages for r in p]
    assert sorted(seen) == sorted(made) and seen != sorted(made)
    assert (await read_table(http, "RBKP", ["BELNR"], NO_DATA="X")).json()["tables"]["DATA"] == []


async def test_change_documents_of_a_late_v1_update_appear_at_commit_stamped_in_the_past(
        wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    sim, http = wire
    ebeln = sim.create_po(lifnr="100000", at=NOW - timedelta(minutes=30), committed=False)
    assert (await read_table(http, "CDHDR", ["OBJECTID"])).json()["tables"]["DATA"] == []
    assert (await read_table(http, "EKKO", ["EBELN"])).json()["tables"]["DATA"] == []
    sim.commit_updates()
    rows = (await read_table(http, "CDHDR", ["OBJECTID", "UDATE", "UTIME", "TCODE"], DELIMITER="|"))
    [row] = rows.json()["tables"]["DATA"]
    assert row["WA"].split("|")[0].strip() == ebeln and row["WA"].split("|")[1:3] == ["20240305", "153000"]
    sim.release_po(ebeln)
    where = ["TABNAME = 'EKKO'", "AND FNAME = 'FRGKE'"]
    both = await read_table(http, "CDPOS", ["FNAME", "VALUE_OLD", "VALUE_NEW"], where, DELIMITER="|")
    assert error(both)["key"] == "DATA_BUFFER_EXCEEDED"  # 30 + 254 + 254 + 2 delimiters > 512
    items = await read_table(http, "CDPOS", ["FNAME", "VALUE_NEW"], where, DELIMITER="|")
    [change] = items.json()["tables"]["DATA"]
    assert [p.strip() for p in change["WA"].split("|")] == ["FRGKE", "R"]


async def test_bapi_po_getdetail1_and_an_unknown_po(wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    sim, http = wire
    ebeln = sim.create_po(lifnr="100000", netwr="300.00", items=2)
    body = (await http.post("/rfc/v1/call", json={"function": "BAPI_PO_GETDETAIL1",
                                                  "imports": {"PURCHASEORDER": ebeln}}, headers=AUTH)).json()
    assert body["exports"]["POHEADER"]["VENDOR"] == "0000100000" and body["return"] == []
    assert [i["NET_PRICE"] for i in body["tables"]["POITEM"]] == ["150.00", "150.00"]
    missing = (await http.post("/rfc/v1/call", json={"function": "BAPI_PO_GETDETAIL1",
                                                     "imports": {"PURCHASEORDER": "4500009999"}}, headers=AUTH)).json()
    assert [(r["TYPE"], r["ID"], r["NUMBER"]) for r in missing["return"]] == [("E", "06", "019")]


async def test_more_calls_than_the_resource_check_allows_are_resource_failures() -> None:
    sim = SapAgentSim(clock=ManualClock(NOW), token=TOKEN, max_calls=2, latency=0.002)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.create_app()), base_url="http://agent") as http:
        answers = await asyncio.gather(*(http.post("/rfc/v1/call", json={"function": "RFC_SYSTEM_INFO"},
                                                   headers=AUTH) for _ in range(6)))
    refused = [a for a in answers if a.status_code == 503]
    assert refused and all(error(a)["type"] == "RESOURCE_FAILURE" for a in refused)
    assert sim.max_in_flight == 2 and sim.refused_busy == len(refused)


async def test_writes_are_stored_only_by_a_commit_in_the_same_session(
        wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    sim, http = wire
    write = {"function": "Z_MLC_DELIVERY_STATUS", "imports": {"NOTIFICATION_ID": "1", "STATUS": "delivered"}}
    await http.post("/rfc/v1/call", json=write, headers=AUTH)
    await http.post("/rfc/v1/call", json={"function": "BAPI_TRANSACTION_COMMIT"}, headers=AUTH)
    assert sim.deliveries() == []  # two stateless calls: two user contexts
    session = (await http.post("/rfc/v1/sessions", headers=AUTH)).json()["session"]
    await http.post(f"/rfc/v1/sessions/{session}/call", json=write, headers=AUTH)
    assert sim.deliveries() == []
    await http.post(f"/rfc/v1/sessions/{session}/call", json={"function": "BAPI_TRANSACTION_COMMIT",
                                                              "imports": {"WAIT": "X"}}, headers=AUTH)
    assert [d["NOTIFICATION_ID"] for d in sim.deliveries()] == ["1"]
    assert (await http.delete(f"/rfc/v1/sessions/{session}", headers=AUTH)).status_code == 204


async def test_armed_faults_and_a_truncated_body(wire: tuple[SapAgentSim, httpx.AsyncClient]) -> None:
    sim, http = wire
    sim.fail_next(1, "SYSTEM_FAILURE")
    failed = await http.post("/rfc/v1/call", json={"function": "RFC_SYSTEM_INFO"}, headers=AUTH)
    assert failed.status_code == 503 and error(failed)["type"] == "SYSTEM_FAILURE"
    sim.malform_next(1)
    cut = await http.post("/rfc/v1/call", json={"function": "RFC_SYSTEM_INFO"}, headers=AUTH)
    with pytest.raises(ValueError):
        cut.json()
