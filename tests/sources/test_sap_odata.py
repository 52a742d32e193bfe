"""SAP ECC in OData mode against the Gateway simulator: the ugly parts, one test each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from ml_connector.core.models import Delivery, Record, Status
from ml_connector.core.templates import compile_template
from ml_connector.errors import SourceAuthError, SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.sim.sap_gateway import SapGatewaySim
from ml_connector.sources.sap_ecc import SapEccConfig
from ml_connector.sources.sap_odata_http import sap_message
from ml_connector.sources.sap_odata_source import SapODataSource
from ml_connector.sources.sap_odata_values import alpha_pad, changed_at, instant, parse_date, parse_time
from tests.support.clock import ManualClock

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)      # 16:00 in Berlin
BASE = "http://sapgw.test:44300"
SUPPLIER = "100000"


def config(**overrides: Any) -> SapEccConfig:
    raw: dict[str, Any] = {
        "type": "sap_ecc", "base_url": BASE, "client": "100", "username": "MLC_ODATA", "password": "mlc-pass",
        "timezone": "Europe/Berlin", "retry_delay": 0,
        "services": {"po": "/sap/opu/odata/sap/ZMM_PO_SRV;v=0001/", "inv": "ZMM_SUPPLIER_INVOICE_SRV",
                     "audit": "/sap/opu/odata/sap/ZMLC_AUDIT_SRV/"},
        "entities": {
            "purchase_orders": {"service": "po", "entity_set": "PurchaseOrderSet", "key": "Ebeln",
                                "alpha": {"Lifnr": 10}, "change": {"date": "ChangedOn", "time": "ChangedAt"},
                                "page_size": 2},
            "invoices": {"service": "inv", "entity_set": "SupplierInvoiceSet", "key": ["Belnr", "Gjahr"],
                         "alpha": {"Lifnr": 10}, "change": {"date": "Cpudt", "time": "Cputm"},
                         "where": [{"field": "Lifnr", "eq": SUPPLIER}]},
            "suppliers": {"service": "po", "entity_set": "SupplierSet", "key": "Lifnr", "alpha": {"Lifnr": 10}},
            "buyers": {"service": "po", "entity_set": "PurchasingGroupSet", "key": "Ekgrp"},
        },
    }
    raw.update(overrides)
    return SapEccConfig.model_validate(raw)


class Rig:
    def __init__(self, **sim: Any) -> None:
        self.clock = ManualClock(NOW)
        self.sim = SapGatewaySim(clock=self.clock, **sim)
        self.sim.add_supplier(SUPPLIER, "Müller Präzision GmbH", phone="+49 89 1234567",
                              contacts=[("Anna Weber", "+49 89 1234500", "anna@mueller.example")])
        self.sim.add_supplier("200000", "Other AG")
        self.sim.add_group("001", "Einkauf 1", "+14155550100")
        self.sources: list[SapODataSource] = []

    def source(self, **overrides: Any) -> SapODataSource:
        made = SapODataSource("sap", config(**overrides), transport=httpx.ASGITransport(self.sim.create_app()),
                              clock=self.clock)
        self.sources.append(made)
        return made


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = Rig()
    yield made
    for source in made.sources:
        await source.aclose()


async def read(source: SapODataSource, entity: str, since: datetime, until: datetime) -> list[Record]:
    return [r async for r in source.fetch(entity, since, until)]


# -- values -----------------------------------------------------------------------------------------

def test_date_forms() -> None:
    assert parse_date("/Date(1704067200000)/") == (datetime(2024, 1, 1), None)
    assert parse_date("/Date(981173106000+0060)/") == (datetime(2001, 2, 3, 4, 5, 6), 60)
    assert parse_date("/Date(-86400000)/") == (datetime(1969, 12, 31), None)
    # no offset: SAP wall time in the system's zone; with an offset: a real instant
    assert instant("/Date(1709650800000)/", BERLIN) == datetime(2024, 3, 5, 14, 0, tzinfo=UTC)
    assert instant("/Date(1709650800000+0060)/", BERLIN) == datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="OData v2 date"):
        parse_date("2024-03-05")


def test_dats_and_tims_are_wall_time_in_the_sap_zone() -> None:
    assert parse_time("PT13H45M00S") == time(13, 45)
    assert parse_time("PT0S") == time(0)
    assert changed_at("/Date(1709596800000)/", "PT13H45M00S", BERLIN) == datetime(2024, 3, 5, 12, 45, tzinfo=UTC)
    # summer time: Berlin is UTC+2
    assert changed_at("/Date(1720051200000)/", "PT08H00M00S", BERLIN) == datetime(2024, 7, 4, 6, 0, tzinfo=UTC)
    assert changed_at("", "PT08H00M00S", BERLIN) is None
    with pytest.raises(ValueError):
        parse_time("13:45")


def test_alpha_padding_and_the_template_filter() -> None:
    assert alpha_pad("100000", 10) == "0000100000"
    assert alpha_pad("0000100000", 10) == "0000100000"
    assert alpha_pad("ACME-01", 10) == "ACME-01"
    template = compile_template("t", "Supplier {{ Lifnr | alpha }}, PO {{ Ebeln | alpha }}, {{ Name | alpha }}")
    assert template.render({"Lifnr": "0000100000", "Ebeln": "4500000001", "Name": "ACME"}) == \
        "Supplier 100000, PO 4500000001, ACME"


async def test_values_are_typed_by_metadata(rig: Rig) -> None:
    ebeln = rig.sim.create_po(lifnr=SUPPLIER, netwr="1234567.89")
    [record] = await read(rig.source(), "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))
    assert record.key == ebeln
    assert record.data["Netwr"] == Decimal("1234567.89")          # Edm.Decimal string, exact
    assert record.data["Bedat"] == date(2024, 3, 5)                # sap:display-format="Date"
    assert record.data["ChangedAt"] == time(16, 0)                 # Edm.Time
    assert record.data["Frgzu"] == ""                               # empty CHAR
    assert record.data["Lifnr"] == "0000100000"
    assert "__metadata" not in record.data
    assert record.changed_at == NOW


# -- sessions, CSRF ---------------------------------------------------------------------------------

async def test_the_session_cookie_is_reused_instead_of_the_password(rig: Rig) -> None:
    rig.sim.create_po(lifnr=SUPPLIER)
    source = rig.source()
    await source.check()
    for _ in range(3):
        await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))
    assert rig.sim.logins == 1
    rig.sim.expire_sessions()
    await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))
    assert rig.sim.logins == 2  # Basic once more after the session was lost


async def test_a_session_timing_out_by_the_clock_logs_on_again(rig: Rig) -> None:
    source = rig.source()
    await source.check()
    rig.clock.advance(timedelta(hours=1))  # past the 30 minute security session timeout
    await read(source, "purchase_orders", NOW, NOW + timedelta(hours=2))
    assert rig.sim.logins == 2


def delivery() -> Delivery:
    return Delivery(notification_id=42, flow="po_released", entity="purchase_orders", record_key="4500000001",
                    provider_id="SM" + "0" * 32, status=Status.DELIVERED, error_code=None, error_message=None,
                    created_at=NOW, finished_at=NOW + timedelta(seconds=5))


WRITE_BACK = {"enabled": True, "service": "audit", "entity_set": "DeliveryStatusSet",
              "fields": {"NotificationId": "notification_id", "Flow": "flow", "RecordKey": "record_key",
                         "MessageSid": "provider_id", "Status": "status", "FinishedAt": "finished_at"}}


async def test_writes_fetch_a_csrf_token_and_refetch_once_when_it_expired(rig: Rig) -> None:
    source = rig.source(write_back=WRITE_BACK)
    await source.write_back(delivery())
    assert rig.sim.tables.audit["42"]["Status"] == "delivered"
    fetches = [r for r in rig.sim.requests if r.startswith("GET /sap/ZMLC_AUDIT_SRV/?")]
    assert len(fetches) == 1
    # the token dies with its session: 403 "CSRF token validation failed", refetch, retry once
    rig.sim.csrf.clear()
    await source.write_back(_with_id(delivery(), 43))
    assert "43" in rig.sim.tables.audit
    assert len([r for r in rig.sim.requests if r.startswith("GET /sap/ZMLC_AUDIT_SRV/?")]) == 2


def _with_id(value: Delivery, notification_id: int) -> Delivery:
    from dataclasses import replace
    return replace(value, notification_id=notification_id)


async def test_reads_never_fetch_a_csrf_token(rig: Rig) -> None:
    rig.sim.create_po(lifnr=SUPPLIER)
    await rig.source().check()
    assert not rig.sim.csrf


async def test_a_csrf_failure_twice_is_an_error(rig: Rig) -> None:
    source = rig.source(write_back=WRITE_BACK)
    rig.sim.csrf_failures = 2
    with pytest.raises(SourceAuthError, match="CSRF"):
        await source.write_back(delivery())
    assert "42" not in rig.sim.tables.audit
    rig.sim.csrf_failures = 1
    await source.write_back(delivery())  # one failure: refetched and retried
    assert "42" in rig.sim.tables.audit


# -- filters and DATS day granularity ---------------------------------------------------------------

async def test_a_dats_filter_reads_the_whole_day_and_times_are_judged_here(rig: Rig) -> None:
    early = rig.sim.create_po(lifnr=SUPPLIER, at=NOW - timedelta(hours=5))   # 11:00 the same day
    late = rig.sim.create_po(lifnr=SUPPLIER)                                  # 16:00
    source = rig.source()
    records = await read(source, "purchase_orders", NOW - timedelta(minutes=10), NOW + timedelta(seconds=1))
    assert [r.key for r in records] == [late]
    query = rig.sim.requests[-1]
    assert "ChangedOn+ge+datetime%272024-03-05T00%3A00%3A00%27" in query  # the day only
    assert source.outside["purchase_orders"] == 0  # the early PO is in the filter's day: not a warning
    both = await read(source, "purchase_orders", NOW - timedelta(hours=6), NOW + timedelta(seconds=1))
    assert [r.key for r in both] == [early, late]


async def test_polls_across_a_day_never_fire_twice(rig: Rig) -> None:
    """Windows that re-read the same day yield each change once per window it lies in."""
    made = [rig.sim.create_po(lifnr=SUPPLIER, at=NOW - timedelta(minutes=m)) for m in (50, 30, 10)]
    source = rig.source()
    seen: list[str] = []
    for start in range(-60, 0, 20):  # three adjoining 20-minute windows of one day
        since = NOW + timedelta(minutes=start)
        seen += [r.key for r in await read(source, "purchase_orders", since, since + timedelta(minutes=20))]
    assert seen == made


async def test_a_service_that_ignores_the_filter_floods_no_one_and_check_warns() -> None:
    rig = Rig(ignore_filter=["ZMM_SUPPLIER_INVOICE_SRV"])
    mine = rig.sim.post_invoice(lifnr=SUPPLIER, xblnr="INV-1", amount="99.50")
    rig.sim.post_invoice(lifnr="200000", xblnr="INV-1", amount="10.00")               # another supplier
    rig.sim.post_invoice(lifnr=SUPPLIER, xblnr="OLD", amount="1.00", at=NOW - timedelta(days=30))
    source = rig.source()
    try:
        records = await read(source, "invoices", NOW - timedelta(minutes=5), NOW + timedelta(seconds=1))
        assert [r.key for r in records] == ["|".join(mine)]
        assert source.outside["invoices"] == 2
        result = await source.check()
        assert "ignores" in result.details["warning"] and "invoices" in result.details["warning"]
    finally:
        await source.aclose()


async def test_a_service_that_honours_the_filter_gives_no_warning(rig: Rig) -> None:
    rig.sim.post_invoice(lifnr=SUPPLIER, xblnr="INV-1", amount="99.50")
    rig.sim.post_invoice(lifnr="200000", xblnr="INV-2", amount="10.00")
    result = await rig.source().check()
    assert "warning" not in result.details


async def test_alpha_keys_are_padded_in_filters_and_lookups(rig: Rig) -> None:
    source = rig.source()
    found = await source.lookup("suppliers", "100000")
    assert found is not None and found.key == "0000100000" and found.data["Name1"] == "Müller Präzision GmbH"
    assert "SupplierSet('0000100000')" in rig.sim.requests[-1]
    assert await source.lookup("suppliers", "999999") is None
    buyer = await source.lookup("buyers", "001")
    assert buyer is not None and buyer.data["Telfn"] == "+14155550100"
    rig.sim.post_invoice(lifnr=SUPPLIER, xblnr="INV-1", amount="1")
    await read(source, "invoices", NOW - timedelta(minutes=5), NOW + timedelta(seconds=1))
    assert "Lifnr+eq+%270000100000%27" in rig.sim.requests[-1]


async def test_composite_keys_address_the_entity(rig: Rig) -> None:
    belnr, gjahr = rig.sim.post_invoice(lifnr=SUPPLIER, xblnr="INV-9", amount="12.30")
    found = await rig.source().lookup("invoices", f"{belnr}|{gjahr}")
    assert found is not None and found.data["Rmwwr"] == Decimal("12.30")
    assert f"SupplierInvoiceSet(Belnr='{belnr}',Gjahr='{gjahr}')" in rig.sim.requests[-1]


# -- paging ----------------------------------------------------------------------------------------

async def test_a_501_on_skip_switches_to_server_paging() -> None:
    rig = Rig(server_paging=["PurchaseOrderSet"], server_page_size=2)
    made = [rig.sim.create_po(lifnr=SUPPLIER) for _ in range(5)]
    source = rig.source()
    try:
        records = await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))
        assert [r.key for r in records] == made
        gets = [r for r in rig.sim.requests if "PurchaseOrderSet" in r]
        assert "%24skip=0" in gets[0] and all("%24skip=" not in r for r in gets[1:])
        assert sum("skiptoken" in r for r in gets) == 2
        before = len(rig.sim.requests)
        await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))
        assert all("%24skip=" not in r for r in rig.sim.requests[before:])  # remembered
    finally:
        await source.aclose()


async def test_the_same_next_link_twice_is_an_error(rig: Rig) -> None:
    def looping(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("$metadata"):
            return httpx.Response(200, content=_metadata(rig))
        return httpx.Response(200, json={"d": {"results": [{"Ebeln": "4500000001", "ChangedOn": "/Date(1709596800000)/",
                                                            "ChangedAt": "PT16H00M00S"}],
                                               "__next": f"{BASE}/sap/opu/odata/sap/ZMM_PO_SRV;v=0001/"
                                                         "PurchaseOrderSet?$skiptoken='x'"}})
    source = SapODataSource("sap", config(), transport=httpx.MockTransport(looping), clock=rig.clock)
    with pytest.raises(SourcePayloadError, match="repeats"):
        await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))
    await source.aclose()


def _metadata(rig: Rig) -> bytes:
    from ml_connector.sim.sap_gateway_data import SERVICES, metadata_xml
    return metadata_xml("ZMM_PO_SRV", SERVICES["ZMM_PO_SRV"]).encode()


@pytest.mark.parametrize("count", ["3", 3])
def test_count_as_string_or_number(count: Any) -> None:
    from ml_connector.sources.sap_odata_reader import parse_page
    page = parse_page(httpx.Response(200, json={"d": {"__count": count, "results": []}}).content, "x", "sap")
    assert page.count == 3


def test_a_count_that_is_no_number_is_a_payload_error() -> None:
    from ml_connector.sources.sap_odata_reader import parse_page
    with pytest.raises(SourcePayloadError, match="__count"):
        parse_page(b'{"d": {"__count": "many", "results": []}}', "x", "sap")


# -- errors ----------------------------------------------------------------------------------------

def test_sap_error_json_and_xml_are_read() -> None:
    body = {"error": {"code": "/IWBEP/CM_MGW_RT/021", "message": {"lang": "en", "value": "Resource not found"},
                      "innererror": {"transactionid": "ABC123",
                                     "errordetails": [{"message": "Supplier 42 is locked", "severity": "error"}]}}}
    said = sap_message(httpx.Response(404, json=body))
    assert (said.code, said.text, said.transaction) == ("/IWBEP/CM_MGW_RT/021", "Resource not found", "ABC123")
    assert "Supplier 42 is locked" in said.describe() and "ABC123" in said.describe()
    minimal = sap_message(httpx.Response(500, json={"error": {"message": {"value": "Gateway Error"}}}))
    assert minimal.text == "Gateway Error"
    xml = (b'<?xml version="1.0"?><error xmlns="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">'
           b'<code>SY/530</code><message xml:lang="en">Purchase order 4500000001 is locked by BUYER01</message>'
           b'<innererror><transactionid>T1</transactionid></innererror></error>')
    said = sap_message(httpx.Response(400, content=xml))
    assert (said.code, said.transaction) == ("SY/530", "T1")
    assert said.text == "Purchase order 4500000001 is locked by BUYER01"
    assert sap_message(httpx.Response(500, content=b"<html><body>ICM</body></html>")).text == ""


async def test_errors_name_the_service_entity_set_and_sap_text(rig: Rig) -> None:
    source = rig.source(entities={"x": {"service": "po", "entity_set": "PurchaseOrderSet", "key": "Ebeln",
                                        "where": [{"field": "Nope", "eq": "1"}]}})
    with pytest.raises(SourceError) as caught:
        await read(source, "x", NOW - timedelta(hours=1), NOW)
    text = str(caught.value)
    assert "ZMM_PO_SRV/PurchaseOrderSet" in text and "Property 'Nope' not found" in text and "transaction" in text
    assert not caught.value.retriable


async def test_5xx_is_retried_and_4xx_is_not(rig: Rig) -> None:
    rig.sim.create_po(lifnr=SUPPLIER)
    source = rig.source()
    await source.check()
    rig.sim.fail_next(2, 503)
    assert len(await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))) == 1
    rig.sim.fail_next(10, 500)
    with pytest.raises(SourceUnavailable, match="4 attempts"):
        await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))
    rig.sim.faults.statuses.clear()
    bad = rig.source(entities={"x": {"service": "po", "entity_set": "PurchaseOrderSet", "key": "Ebeln",
                                     "where": [{"field": "Nope", "eq": "1"}]}})
    await bad.entity_set("x")
    calls = len(rig.sim.requests)
    with pytest.raises(SourceError, match="HTTP 400"):
        await read(bad, "x", NOW - timedelta(hours=1), NOW)
    assert len(rig.sim.requests) - calls == 1  # a 400 is not retried


@pytest.mark.parametrize("case", ["password", "locked", "client"])
async def test_401_says_the_three_causes(case: str) -> None:
    rig = Rig(locked=["MLC_ODATA"] if case == "locked" else ())
    overrides: dict[str, Any] = {"password": "wrong"} if case == "password" else {}
    if case == "client":
        overrides["client"] = "200"
    source = rig.source(**overrides)
    with pytest.raises(SourceAuthError) as caught:
        await source.check()
    text = str(caught.value)
    assert "wrong password" in text and "locked user" in text and "client" in text and "wrong" not in "mlc-pass"
    assert "mlc-pass" not in text
    await source.aclose()


async def test_check_reports_the_system_and_fails_on_unknown_properties(rig: Rig) -> None:
    result = await rig.source().check()
    assert result.details["release"] == "731" and result.details["client"] == "100"
    assert result.details["user"] == "MLC_ODATA"
    assert "ZMM_PO_SRV" in result.details["services"] and "ZMM_SUPPLIER_INVOICE_SRV" in result.details["services"]
    bad = rig.source(entities={"x": {"service": "po", "entity_set": "PurchaseOrderSet", "key": "Ebeln",
                                     "select": ["Netwr", "Frgzu", "Lastchange"]}})
    with pytest.raises(SourceError, match="no property Lastchange; it has: Ebeln, Bukrs"):
        await bad.check()
    wrong_set = rig.source(entities={"x": {"service": "po", "entity_set": "POSet", "key": "Ebeln"}})
    with pytest.raises(SourceError, match="no entity set 'POSet'; it has: PurchaseOrderSet, PurchasingGroupSet"):
        await wrong_set.check()


async def test_check_says_when_public_info_is_off() -> None:
    rig = Rig(public_info=False)
    source = rig.source()
    assert "not reported" in (await source.check()).details["release"]
    await source.aclose()


async def test_a_malformed_page_is_a_payload_error(rig: Rig) -> None:
    rig.sim.create_po(lifnr=SUPPLIER)
    source = rig.source()
    await source.check()
    rig.sim.malform_next(1)
    with pytest.raises(SourcePayloadError, match="not JSON"):
        await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))


async def test_describe_lists_entity_sets_and_typed_properties(rig: Rig) -> None:
    found = await rig.source().describe()
    po = found["ZMM_PO_SRV"]["PurchaseOrderSet"]
    assert po["keys"] == ["Ebeln"]
    assert po["properties"]["Netwr"]["type"] == "Edm.Decimal"
    assert po["properties"]["ChangedOn"]["display_format"] == "Date"
    assert "SupplierInvoiceSet" in found["ZMM_SUPPLIER_INVOICE_SRV"]


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="mode rfc needs agent"):
        config(mode="rfc")
    with pytest.raises(ValueError, match="needs username and password"):
        config(username=None)
    with pytest.raises(ValueError, match="three digits"):
        config(client="1")
    with pytest.raises(ValueError, match="unknown service 'nope'"):
        config(entities={"x": {"service": "nope", "entity_set": "A", "key": "K"}})
    assert config().service_root("inv") == f"{BASE}/sap/opu/odata/sap/ZMM_SUPPLIER_INVOICE_SRV/"
    assert "mlc-pass" not in repr(config())


async def test_icf_session_not_found_logs_on_again_once() -> None:
    rig = Rig(session_loss=400)
    rig.sim.create_po(lifnr=SUPPLIER)
    source = rig.source()
    await source.check()
    rig.sim.expire_sessions()
    assert len(await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))) == 1
    assert rig.sim.logins == 2
    await source.aclose()


async def test_the_logon_client_is_the_configured_one(rig: Rig) -> None:
    source = rig.source()
    await source.check()
    assert source.gateway.session_client() == "100"
    assert all("sap-client=100" in r and "sap-language=EN" in r for r in rig.sim.requests)


async def test_check_names_write_back_properties_the_service_lacks(rig: Rig) -> None:
    assert "DeliveryStatusSet" in (await rig.source(write_back=WRITE_BACK).check()).details["write_back"]
    wrong = {**WRITE_BACK, "fields": {**WRITE_BACK["fields"], "Zstatus": "status"}}  # type: ignore[dict-item]
    with pytest.raises(SourceError, match="has no Zstatus; it has: NotificationId"):
        await rig.source(write_back=wrong).check()


async def test_a_next_link_on_a_skip_page_is_followed_to_the_end(rig: Rig) -> None:
    """A service that caps $top itself and adds __next: its links, then no $skip continuation."""
    urls: list[str] = []
    row = {"ChangedOn": "/Date(1709596800000)/", "ChangedAt": "PT16H00M00S"}

    def capped(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("$metadata"):
            return httpx.Response(200, content=_metadata(rig))
        urls.append(str(request.url))
        if "skiptoken" in str(request.url):  # a full last page (page_size 2), no __next: the end
            return httpx.Response(200, json={"d": {"results": [{**row, "Ebeln": "4500000003"},
                                                               {**row, "Ebeln": "4500000004"}]}})
        return httpx.Response(200, json={"d": {"results": [{**row, "Ebeln": "4500000001"},
                                                           {**row, "Ebeln": "4500000002"}],
                                               "__next": "PurchaseOrderSet?$skiptoken='2'"}})
    source = SapODataSource("sap", config(), transport=httpx.MockTransport(capped), clock=rig.clock)
    records = await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))
    assert [r.key for r in records] == ["4500000001", "4500000002", "4500000003", "4500000004"]
    assert len(urls) == 2 and "sap-client=100" in urls[1]
    await source.aclose()


def test_change_filters_by_granularity() -> None:
    from ml_connector.sources import sap_odata as odata
    from ml_connector.sources.sap_odata_metadata import EntitySet, Property

    since, until = datetime(2024, 3, 5, 22, 30, tzinfo=UTC), datetime(2024, 3, 5, 23, 30, tzinfo=UTC)
    day = odata.SapODataEntity.model_validate({"entity_set": "S", "key": "K", "change": {"date": "D", "time": "T"}})
    # 22:30 UTC is 23:30 in Berlin (the 5th); 23:30 UTC is already the 6th there
    assert odata.change_filter(day, None, since, until, BERLIN) == [
        "D ge datetime'2024-03-05T00:00:00'", "D le datetime'2024-03-06T00:00:00'"]
    full = odata.SapODataEntity.model_validate({"entity_set": "S", "key": "K", "change": {"date": "D"}})
    assert odata.change_filter(full, None, since, until, BERLIN) == ["D ge datetime'2024-03-05T23:30:00'"]
    offset = EntitySet("S", "T", ("K",), {"D": Property("D", "Edm.DateTimeOffset")})
    assert odata.change_filter(full, offset, since, until, BERLIN) == ["D ge datetimeoffset'2024-03-05T22:30:00Z'"]
    dats = EntitySet("S", "T", ("K",), {"D": Property("D", "Edm.DateTime", date_only=True)})
    assert odata.granularity(full, dats) == "day"
    unfilterable = EntitySet("S", "T", ("K",), {"D": Property("D", "Edm.DateTime", filterable=False)})
    assert odata.change_filter(full, unfilterable, since, until, BERLIN) == []  # judged client-side only
    snapshot = odata.SapODataEntity.model_validate({"entity_set": "S", "key": "K"})
    assert odata.change_filter(snapshot, None, since, until, BERLIN) == []
