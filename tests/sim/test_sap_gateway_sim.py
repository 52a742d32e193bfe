"""The Gateway simulator on the wire, read with plain httpx (never the adapter)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ml_connector.sim.sap_gateway import SapGatewaySim
from tests.support.clock import ManualClock

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
ROOT = "http://sapgw.test/sap/opu/odata/sap/ZMM_PO_SRV;v=0001/"
AUTH = ("MLC_ODATA", "mlc-pass")


def make(**options: Any) -> tuple[SapGatewaySim, ManualClock]:
    clock = ManualClock(NOW)
    sim = SapGatewaySim(clock=clock, **options)
    sim.add_supplier("100000", "Müller")
    return sim, clock


@pytest.fixture
async def client() -> AsyncIterator[tuple[SapGatewaySim, httpx.AsyncClient]]:
    sim, _ = make()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.create_app())) as http:
        yield sim, http


async def get(http: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response:
    return await http.get(ROOT + path, params={"sap-client": "100", "$format": "json", **kwargs.pop("params", {})},
                          **kwargs)


async def test_basic_logon_creates_a_security_session(client: tuple[SapGatewaySim, httpx.AsyncClient]) -> None:
    sim, http = client
    first = await get(http, "PurchaseOrderSet", auth=AUTH)
    assert first.status_code == 200
    assert "SAP_SESSIONID_ECD_100" in first.cookies and first.cookies["sap-usercontext"] == "sap-client=100"
    again = await get(http, "PurchaseOrderSet")  # cookies only
    assert again.status_code == 200 and sim.logins == 1
    sim.expire_sessions()
    lost = await get(http, "PurchaseOrderSet")
    assert lost.status_code == 401 and "Basic realm" in lost.headers["www-authenticate"]


async def test_sessions_time_out_and_icf_may_say_400() -> None:
    sim, clock = make(session_loss=400)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.create_app())) as http:
        assert (await get(http, "PurchaseOrderSet", auth=AUTH)).status_code == 200
        clock.advance(timedelta(hours=1))
        lost = await get(http, "PurchaseOrderSet")
        assert lost.status_code == 400 and "Session not found" in lost.text


@pytest.mark.parametrize("params", [{"sap-client": "200"}, {}])
async def test_wrong_client_or_password_is_401(client: tuple[SapGatewaySim, httpx.AsyncClient],
                                               params: dict[str, str]) -> None:
    _, http = client
    auth = AUTH if params else ("MLC_ODATA", "nope")
    response = await http.get(ROOT + "PurchaseOrderSet", params={"sap-client": "100", **params}, auth=auth)
    assert response.status_code == 401


async def test_csrf_is_fetched_on_a_get_and_required_on_writes(client: tuple[SapGatewaySim, httpx.AsyncClient]) -> None:
    sim, http = client
    audit = "http://sapgw.test/sap/opu/odata/sap/ZMLC_AUDIT_SRV/"
    body = {"NotificationId": "1", "Status": "delivered"}
    refused = await http.post(audit + "DeliveryStatusSet", json=body, auth=AUTH, params={"sap-client": "100"})
    assert refused.status_code == 403 and refused.text == "CSRF token validation failed"
    assert refused.headers["x-csrf-token"] == "Required"
    fetched = await http.get(audit, headers={"x-csrf-token": "Fetch"}, params={"sap-client": "100"})
    token = fetched.headers["x-csrf-token"]
    created = await http.post(audit + "DeliveryStatusSet", json=body, headers={"x-csrf-token": token},
                              params={"sap-client": "100"})
    assert created.status_code == 201 and sim.tables.audit["1"]["Status"] == "delivered"
    sim.expire_sessions()  # the token dies with its session
    await get(http, "", auth=AUTH)
    stale = await http.post(audit + "DeliveryStatusSet", json=body, headers={"x-csrf-token": token},
                            params={"sap-client": "100"})
    assert stale.status_code == 403


async def test_metadata_carries_sap_annotations(client: tuple[SapGatewaySim, httpx.AsyncClient]) -> None:
    _, http = client
    text = (await http.get(ROOT + "$metadata", auth=AUTH)).text
    assert 'Name="ChangedOn" Type="Edm.DateTime"' in text and 'sap:display-format="Date"' in text
    assert 'Name="ChangedAt" Type="Edm.Time"' in text and 'Name="Netwr" Type="Edm.Decimal"' in text
    assert "xmlns:sap=\"http://www.sap.com/Protocols/SAPData\"" in text


async def test_values_on_the_wire(client: tuple[SapGatewaySim, httpx.AsyncClient]) -> None:
    sim, http = client
    ebeln = sim.create_po(lifnr="100000", netwr="1250.50")
    d = (await get(http, "PurchaseOrderSet", auth=AUTH, params={"$inlinecount": "allpages"})).json()["d"]
    row = d["results"][0]
    assert d["__count"] == "1"
    assert row["Ebeln"] == ebeln and row["Lifnr"] == "0000100000" and row["Netwr"] == "1250.50"
    assert row["ChangedOn"] == "/Date(1709596800000)/" and row["ChangedAt"] == "PT16H00M00S"  # Berlin wall time
    assert row["Frgzu"] == "" and row["__metadata"]["type"] == "ZMM_PO_SRV.PurchaseOrder"


async def test_filters_are_honoured_unless_the_service_ignores_them() -> None:
    for ignore, expected in (([], 1), (["ZMM_PO_SRV"], 2)):
        sim, _ = make(ignore_filter=ignore)
        sim.create_po(lifnr="100000")
        sim.create_po(lifnr="200000")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.create_app())) as http:
            d = (await get(http, "PurchaseOrderSet", auth=AUTH, params={"$filter": "Lifnr eq '0000100000'"})).json()
        assert len(d["d"]["results"]) == expected


async def test_server_paging_refuses_skip_and_chains_skiptokens() -> None:
    sim, _ = make(server_paging=["PurchaseOrderSet"], server_page_size=2)
    made = [sim.create_po(lifnr="100000") for _ in range(5)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.create_app())) as http:
        refused = await get(http, "PurchaseOrderSet", auth=AUTH, params={"$skip": "0", "$top": "2"})
        assert refused.status_code == 501 and refused.json()["error"]["message"]["value"]
        seen: list[str] = []
        url: str | None = ROOT + "PurchaseOrderSet?$format=json&sap-client=100"
        while url:
            d = (await http.get(url)).json()["d"]
            seen += [r["Ebeln"] for r in d["results"]]
            url = d.get("__next")
        assert seen == made


async def test_late_change_documents_appear_when_committed(client: tuple[SapGatewaySim, httpx.AsyncClient]) -> None:
    sim, http = client
    ebeln = sim.create_po(lifnr="100000", at=NOW - timedelta(minutes=20), committed=False)
    assert (await get(http, "PurchaseOrderSet", auth=AUTH)).json()["d"]["results"] == []
    sim.commit_updates()
    [row] = (await get(http, "PurchaseOrderSet")).json()["d"]["results"]
    assert row["Ebeln"] == ebeln and row["ChangedAt"] == "PT15H40M00S"  # stamped at the dialog step


async def test_errors_json_or_xml(client: tuple[SapGatewaySim, httpx.AsyncClient]) -> None:
    _, http = client
    as_json = await get(http, "PurchaseOrderSet", auth=AUTH, params={"$filter": "Nope eq 1"})
    error = as_json.json()["error"]
    assert as_json.status_code == 400 and "Nope" in error["message"]["value"]
    assert error["innererror"]["transactionid"] and error["innererror"]["errordetails"][0]["severity"] == "error"
    as_xml = await http.get(ROOT + "NoSuchSet", params={"sap-client": "100"})
    assert as_xml.status_code == 404 and as_xml.text.startswith("<?xml") and "<message" in as_xml.text
    with pytest.raises(json.JSONDecodeError):
        json.loads(as_xml.text)


async def test_a_malformed_body_is_truncated(client: tuple[SapGatewaySim, httpx.AsyncClient]) -> None:
    sim, http = client
    sim.malform_next()
    with pytest.raises(json.JSONDecodeError):
        json.loads((await get(http, "PurchaseOrderSet", auth=AUTH)).text)
