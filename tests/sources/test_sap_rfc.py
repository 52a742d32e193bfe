"""SAP ECC in RFC mode against the agent simulator: the ugly parts, one test each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ml_connector.core.models import Delivery, Record, Status
from ml_connector.errors import SourceAuthError, SourceError, SourceUnavailable
from ml_connector.sim.sap_agent import SapAgentSim
from ml_connector.sources.sap_ecc import SapEccConfig
from ml_connector.sources.sap_odata import SapWhere
from ml_connector.sources.sap_rfc_client import AgentClient, RfcError, RfcResult, RfcReturnError, RfcUnavailable
from ml_connector.sources.sap_rfc_source import SapRfcSource
from ml_connector.sources.sap_rfc_table import FieldInfo, condition, convert, field_groups, in_list, where_lines
from ml_connector.sources.sap_rfc_table import quote as quote_of
from tests.contract.sap_rfc import AGENT_URL, TOKEN, rfc_config
from tests.support.clock import ManualClock

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)      # 16:00 in Berlin
SUPPLIER = "100000"


class Rig:
    def __init__(self, **sim: Any) -> None:
        self.clock = ManualClock(NOW)
        self.sim = SapAgentSim(clock=self.clock, token=TOKEN, **sim)
        self.sim.add_supplier(SUPPLIER, "Müller Präzision GmbH", phone="+49 89 1234567", email="sales@mueller.example")
        self.sim.add_supplier("200000", "Other AG")
        self.sim.add_group("001", "Einkauf 1", "+14155550100")
        self.sources: list[SapRfcSource] = []

    def source(self, page_size: int = 3, **overrides: Any) -> SapRfcSource:
        made = SapRfcSource("sap", rfc_config(page_size, **overrides),
                            transport=httpx.ASGITransport(self.sim.create_app()), clock=self.clock)
        self.sources.append(made)
        return made


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    made = Rig()
    yield made
    for source in made.sources:
        await source.aclose()


async def read(source: SapRfcSource, entity: str, since: datetime, until: datetime) -> list[Record]:
    return [r async for r in source.fetch(entity, since, until)]


def with_entities(**entities: Any) -> dict[str, Any]:
    return {"rfc": {"entities": entities}}


# -- pure: OPTIONS lines, field groups, values -----------------------------------------------------

def test_where_lines_are_72_characters_and_never_cut_a_literal() -> None:
    values = [f"NAME {n} O''BRIEN & SONS" for n in range(12)]
    clause = f"OBJECTCLAS = 'EINKBELEG' AND {in_list('NAME1', values)}"
    lines = where_lines(clause)
    assert len(lines) > 3 and all(len(line) <= 72 for line in lines)
    assert all(line.count("'") % 2 == 0 for line in lines)
    assert " ".join(lines) == " ".join(clause.split(" ")).replace("  ", " ")


def test_a_literal_longer_than_a_line_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than an OPTIONS line"):
        where_lines("NAME1 = '" + "x" * 80 + "'")


def test_conditions_pad_alpha_fields() -> None:
    assert condition(SapWhere(field="LIFNR", eq="100000"), {"LIFNR": 10}) == "LIFNR = '0000100000'"
    assert condition(SapWhere(field="XBLNR", ne="O'NEIL"), {}) == "XBLNR <> 'O''NEIL'"


def test_field_groups_fit_512_and_each_carries_the_key() -> None:
    fields = [FieldInfo("LIFNR", 0, 10, "C"), *(FieldInfo(f"F{n}", 0, 100, "C") for n in range(9))]
    groups = field_groups(fields, ["LIFNR"])
    assert all(g[0] == "LIFNR" for g in groups)
    assert all(10 + sum(101 for _ in g[1:]) <= 512 for g in groups)
    assert sorted(f for g in groups for f in g[1:]) == sorted(f"F{n}" for n in range(9))
    assert len(groups) == 3


def test_work_area_values_by_type() -> None:
    assert convert("P", "        1250.00-") == Decimal("-1250.00")
    assert convert("P", "           0.10 ") == Decimal("0.10")
    assert convert("D", "20240305") == date(2024, 3, 5)
    assert convert("D", "00000000") is None
    assert convert("T", "134500") == time(13, 45)
    assert convert("C", "0000100000  ") == "0000100000"


def test_failing_return_rows_name_message_class_and_number() -> None:
    ok = RfcResult("BAPI_X", {}, {}, [{"TYPE": "W", "ID": "ME", "NUMBER": "080", "MESSAGE": "just a warning"}])
    ok.raise_for_return("sap")
    bad = RfcResult("BAPI_X", {}, {}, [{"TYPE": "A", "ID": "ME", "NUMBER": "006",
                                        "MESSAGE": "Purchase order 4500000001 is being processed by user BUYER02"},
                                       {"TYPE": "S", "ID": "06", "NUMBER": "000", "MESSAGE": "fine"}])
    with pytest.raises(RfcReturnError, match=r"A ME/006: Purchase order 4500000001 is being processed") as caught:
        bad.raise_for_return("sap")
    assert "fine" not in str(caught.value) and len(caught.value.rows) == 1


# -- config ------------------------------------------------------------------------------------------

def test_config_needs_an_agent_and_keeps_sap_credentials_out() -> None:
    base = rfc_config().model_dump(mode="json", by_alias=True, exclude_none=True)
    base["agent"]["token"] = TOKEN
    with pytest.raises(ValidationError, match="needs agent"):
        SapEccConfig.model_validate({**base, "agent": None})
    with pytest.raises(ValidationError, match="holds the SAP logon"):
        SapEccConfig.model_validate({**base, "username": "MLC", "password": "x"})
    for cap in (0, 51):
        with pytest.raises(ValidationError, match="max_concurrent_calls"):
            SapEccConfig.model_validate({**base, "rfc": {**base["rfc"], "max_concurrent_calls": cap}})
    with pytest.raises(ValidationError, match="token or a client_cert"):
        SapEccConfig.model_validate({**base, "agent": {"url": AGENT_URL}})
    assert TOKEN not in repr(rfc_config())


# -- reading ------------------------------------------------------------------------------------------

async def test_change_documents_find_changed_pos_and_the_bapi_reads_them(rig: Rig) -> None:
    ebeln = rig.sim.create_po(lifnr=SUPPLIER, netwr="1250.50", items=3)
    rig.clock.advance(minutes=5)
    [record] = await read(rig.source(), "purchase_orders", NOW - timedelta(minutes=1), rig.clock())
    assert record.key == ebeln and record.changed_at == NOW
    assert record.data["VENDOR"] == "0000100000" and record.data["NET_VALUE"] == Decimal("1250.50")
    assert record.data["DELIVERY_DATE"] == date(2024, 3, 19) and len(record.data["ITEMS"]) == 3
    assert "BAPI_PO_GETDETAIL1" in rig.sim.calls


async def test_ekko_aedat_is_not_a_change_date_the_release_is_found_by_its_change_document(rig: Rig) -> None:
    ebeln = rig.sim.create_po(lifnr=SUPPLIER, at=NOW - timedelta(days=3))
    rig.clock.advance(minutes=5)
    rig.sim.release_po(ebeln)
    source = rig.source(**with_entities(purchase_orders={"kind": "change_documents", "watch": ["EKKO-FRGKE"]}))
    [record] = await read(source, "purchase_orders", NOW, rig.clock() + timedelta(seconds=1))
    assert record.changed_at == rig.clock() and record.data["REL_IND"] == "R"
    assert record.data["CREAT_DATE"] == date(2024, 3, 2)


async def test_watch_keeps_only_change_documents_touching_the_watched_fields(rig: Rig) -> None:
    created = [rig.sim.create_po(lifnr=SUPPLIER) for _ in range(45)]  # CHANGENR IN (...) over many lines
    rig.sim.release_po(created[7])
    source = rig.source(**with_entities(purchase_orders={"kind": "change_documents", "watch": ["EKKO-FRGZU"]}))
    records = await read(source, "purchase_orders", NOW - timedelta(minutes=1), NOW + timedelta(seconds=1))
    assert [r.key for r in records] == [created[7]]
    everything = await read(rig.source(), "purchase_orders", NOW - timedelta(minutes=1), NOW + timedelta(seconds=1))
    assert len(everything) == 45


async def test_a_late_change_document_is_read_with_its_own_time(rig: Rig) -> None:
    ebeln = rig.sim.create_po(lifnr=SUPPLIER, at=NOW - timedelta(minutes=20), committed=False)
    source = rig.source()
    assert await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1)) == []
    rig.sim.commit_updates()
    [record] = await read(source, "purchase_orders", NOW - timedelta(hours=1), NOW + timedelta(seconds=1))
    assert record.key == ebeln and record.changed_at == NOW - timedelta(minutes=20)


async def test_table_rows_are_typed_in_wall_time_and_judged_to_the_second(rig: Rig) -> None:
    rig.sim.post_invoice(lifnr=SUPPLIER, xblnr="RE-1", amount="99.95", at=NOW - timedelta(hours=2))
    belnr, _ = rig.sim.post_invoice(lifnr=SUPPLIER, xblnr="RE-2", amount="1234.56")
    source = rig.source()
    [record] = await read(source, "invoices", NOW - timedelta(minutes=1), NOW + timedelta(seconds=1))
    assert record.key == f"{belnr}|2024" and record.changed_at == NOW
    assert record.data["RMWWR"] == Decimal("1234.56") and record.data["CPUTM"] == time(16, 0)
    assert record.data["LIFNR"] == "0000100000"


async def test_rows_wider_than_512_are_read_in_field_groups_joined_by_key(rig: Rig) -> None:
    source = rig.source()
    found = await source.lookup("suppliers", SUPPLIER)
    assert found is not None and found.data["NAME1"] == "Müller Präzision GmbH"
    assert found.data["TELF1"] == "+49 89 1234567" and found.data["LOEVM"] == ""  # a field of the last group
    assert found.data["SMTP_ADDR"] == "sales@mueller.example"                      # joined from ADR6
    reads = sum(1 for c in rig.sim.calls if c == "RFC_READ_TABLE")
    assert reads >= 4  # LFA1 refused, then its groups, then ADR6
    again = await source.lookup("suppliers", "200000")
    assert again is not None and again.data["NAME1"] == "Other AG" and again.data["SMTP_ADDR"] == ""
    assert rig.sim.calls.count("DDIF_FIELDINFO_GET") == 1  # the groups are learnt once


async def test_paging_with_rowskips_reads_every_row_once(rig: Rig) -> None:
    made = [rig.sim.post_invoice(lifnr=SUPPLIER, xblnr=f"RE-{n}", amount="10.00")[0] for n in range(10)]
    records = await read(rig.source(page_size=3), "invoices", NOW - timedelta(minutes=1), NOW + timedelta(seconds=1))
    assert sorted(r.key.split("|")[0] for r in records) == sorted(made)
    assert [r.key for r in records] == sorted(r.key for r in records)  # SAP's order is not ours
    assert rig.sim.calls.count("RFC_READ_TABLE") == 4


async def test_bapi_lookups_and_objects_that_do_not_exist(rig: Rig) -> None:
    source = rig.source()
    found = await source.lookup("vendor_detail", SUPPLIER)
    assert found is not None and found.data["NAME"] == "Müller Präzision GmbH"
    assert await source.lookup("vendor_detail", "999999") is None
    assert await source.lookup("purchase_orders", "4500009999") is None
    with pytest.raises(SourceError, match="look-up"):
        await read(source, "vendor_detail", NOW - timedelta(minutes=1), NOW)


# -- errors -------------------------------------------------------------------------------------------

async def test_a_wrong_token_and_a_refused_sap_logon_are_auth_errors(rig: Rig) -> None:
    wrong = SapRfcSource("sap", rfc_config(agent={"url": AGENT_URL, "token": "not-it"}),
                         transport=httpx.ASGITransport(rig.sim.create_app()), clock=rig.clock)
    rig.sources.append(wrong)
    with pytest.raises(SourceAuthError, match="AGENT_UNAUTHORIZED.*agent token") as caught:
        await wrong.check()
    assert "not-it" not in str(caught.value)
    rig.sim.logon_refused = True
    with pytest.raises(SourceAuthError, match="RFC_LOGON_FAILURE.*locked user"):
        await rig.source().lookup("buyers", "001")
    assert rig.sim.calls == []


async def test_function_exceptions_name_their_key_and_are_not_retried(rig: Rig) -> None:
    source = rig.source(**with_entities(ghosts={"kind": "table", "table": "ZGHOST", "key": "ID"}))
    with pytest.raises(RfcError, match="TABLE_NOT_AVAILABLE") as caught:
        await source.lookup("ghosts", "1")
    assert not caught.value.retriable and source.agent.attempts == 1


async def test_check_names_a_field_the_table_lacks(rig: Rig) -> None:
    source = rig.source(**with_entities(buyers={"kind": "table", "table": "T024", "key": "EKGRP",
                                                "fields": ["EKNAM", "TELNR"]}))
    with pytest.raises(SourceError, match=r"entities.buyers.*T024 has no field TELNR; it has: MANDT, EKGRP"):
        await source.check()


async def test_system_failures_back_off_then_give_up_as_retriable(rig: Rig) -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(rig.sim.create_app())) as http:
        agent = AgentClient(http, url=AGENT_URL, token=TOKEN, client="100", source="sap", cap_size=5, retries=3,
                            retry_delay=0.5, sleep=sleep)
        rig.sim.fail_next(2, "RESOURCE_FAILURE")
        result = await agent.call("RFC_SYSTEM_INFO")
        assert result.exports["RFCSI_EXPORT"]["RFCSAPRL"] == "731" and delays == [0.5, 1.0]
        rig.sim.fail_next(4, "SYSTEM_FAILURE")
        with pytest.raises(RfcUnavailable, match="SYSTEM_FAILURE.*after 4 attempts") as caught:
            await agent.call("RFC_SYSTEM_INFO")
        assert caught.value.retriable and delays[2:] == [0.5, 1.0, 2.0]


async def test_a_truncated_answer_is_a_payload_error(rig: Rig) -> None:
    rig.sim.malform_next(1)
    with pytest.raises(SourceError, match="not a JSON object"):
        await rig.source().lookup("buyers", "001")


# -- the concurrency cap --------------------------------------------------------------------------------

async def test_the_cap_holds_across_sources_and_retries() -> None:
    rig = Rig(max_calls=50, latency=0.002)
    for n in range(30):
        rig.sim.add_group(f"{n + 100}", f"Group {n}", "+14155550100")
    first = rig.source(rfc={"max_concurrent_calls": 4, "entities": rfc_config().rfc.entities})  # type: ignore[union-attr]
    second = rig.source(rfc={"max_concurrent_calls": 4, "entities": rfc_config().rfc.entities})  # type: ignore[union-attr]
    rig.sim.fail_next(25, "SYSTEM_FAILURE")  # a burst of retries
    try:
        found = await asyncio.gather(*(source.lookup("buyers", f"{n + 100}")
                                       for n in range(30) for source in (first, second)))
    finally:
        for source in rig.sources:
            await source.aclose()
    assert all(r is not None for r in found)
    assert rig.sim.max_in_flight == 4  # the cap was reached, never passed
    assert first.agent.attempts + second.agent.attempts == 60 + 25
    assert rig.sim.refused_busy == 0


async def test_without_a_cap_the_resource_check_refuses() -> None:
    rig = Rig(max_calls=3, latency=0.002)
    source = rig.source(retries=0, rfc={"max_concurrent_calls": 10, "entities": rfc_config().rfc.entities})  # type: ignore[union-attr]
    try:
        results = await asyncio.gather(*(source.lookup("buyers", "001") for _ in range(10)), return_exceptions=True)
    finally:
        await source.aclose()
    refused = [r for r in results if isinstance(r, SourceUnavailable)]
    assert refused and all("RESOURCE_FAILURE" in str(r) for r in refused)


# -- check, describe, write-back -------------------------------------------------------------------------

async def test_check_reports_the_sap_system(rig: Rig) -> None:
    result = await rig.source().check()
    for key, value in {"release": "731", "client": "100", "user": "MLC_RFC", "system_id": "ECD",
                       "max_concurrent_calls": "5"}.items():
        assert result.details[key] == value
    assert "LFA1" in result.details["entity suppliers"]


async def test_check_refuses_an_agent_logged_on_to_another_client(rig: Rig) -> None:
    with pytest.raises(SourceError, match="client 100, not 200"):
        await rig.source(client="200").check()


async def test_describe_lists_tables_and_typed_fields(rig: Rig) -> None:
    found = await rig.source().describe()
    tables = found["RFC tables"]
    assert {"CDHDR", "CDPOS", "RBKP", "LFA1", "ADR6", "T024"} <= set(tables)
    assert tables["RBKP"]["properties"]["CPUDT"]["type"] == "DATS(8)"
    assert tables["RBKP"]["keys"] == ["MANDT", "BELNR", "GJAHR"]


def delivery(status: Status = Status.DELIVERED) -> Delivery:
    return Delivery(notification_id=42, flow="po_released", entity="purchase_orders", record_key="4500000001",
                    provider_id="SM" + "a" * 32, status=status, error_code=None, error_message=None,
                    created_at=NOW, finished_at=NOW + timedelta(seconds=9))


async def test_write_back_commits_in_the_same_session(rig: Rig) -> None:
    source = rig.source(write_back={"enabled": True})
    await source.write_back(delivery())
    [row] = rig.sim.deliveries()
    assert row["NOTIFICATION_ID"] == "42" and row["STATUS"] == "delivered" and row["FINISHED_AT"] == "20240305150009"
    assert rig.sim.calls[-2:] == ["Z_MLC_DELIVERY_STATUS", "BAPI_TRANSACTION_COMMIT"]
    assert rig.sim.sessions == {}  # ended


async def test_write_back_rejected_by_the_module_rolls_back_and_names_the_message(rig: Rig) -> None:
    source = rig.source(write_back={"enabled": True, "parameters": {"NOTIFICATION_ID": "notification_id"}})
    with pytest.raises(RfcReturnError, match="E ZMLC/002: Status is initial"):
        await source.write_back(delivery())
    assert rig.sim.deliveries() == [] and "BAPI_TRANSACTION_COMMIT" not in rig.sim.calls
    assert rig.sim.calls[-1] == "BAPI_TRANSACTION_ROLLBACK" and rig.sim.sessions == {}


async def test_write_back_is_off_by_default(rig: Rig) -> None:
    await rig.source().write_back(delivery())
    assert rig.sim.calls == []


async def test_a_changed_po_the_bapi_refuses_stops_the_poll_with_sap_message(rig: Rig) -> None:
    rig.sim.create_po(lifnr=SUPPLIER, ekgrp="009")
    rig.sim.display_blocked.add("009")
    source = rig.source()
    with pytest.raises(RfcReturnError, match=r"BAPI_PO_GETDETAIL1 4500000001: E ME/045: No authorization"):
        await read(source, "purchase_orders", NOW - timedelta(minutes=1), NOW + timedelta(seconds=1))
    with pytest.raises(RfcReturnError, match="ME/045"):  # not "does not exist": a look-up says so too
        await source.lookup("purchase_orders", "4500000001")


async def test_a_mistyped_client_cert_is_a_clear_error(tmp_path: Any) -> None:
    with pytest.raises(SourceError, match=r"agent.client_cert: cannot load .*nope.pem"):
        SapRfcSource("sap", rfc_config(agent={"url": "https://agent.test", "token": TOKEN,
                                              "client_cert": str(tmp_path / "nope.pem")}))


# -- OPTIONS lines as SAP reads them (the adapter's splitting, the simulator's parser) ---------------------

@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="latin-1", exclude_categories=("Cc", "Cs")),
                        min_size=1, max_size=34), min_size=1, max_size=8), st.integers(min_value=0, max_value=7))
def test_any_clause_survives_the_72_character_lines(values: list[str], pick: int) -> None:
    from ml_connector.sim.sap_agent_data import Field
    from ml_connector.sim.sap_agent_where import compile_where, join_lines

    clause = f"LAND1 = 'DE' AND ( {in_list('NAME1', values)} OR NAME1 = {quote_of(values[0])} )"
    lines = where_lines(clause)
    assert all(len(line) <= 72 for line in lines)
    fields = {"NAME1": Field("NAME1", "C", 60, ""), "LAND1": Field("LAND1", "C", 3, "")}
    predicate = compile_where(join_lines(lines), fields)  # SAP's reading: no OPTION_NOT_VALID
    chosen = values[pick % len(values)]
    assert predicate({"NAME1": chosen, "LAND1": "DE"})
    assert not predicate({"NAME1": chosen, "LAND1": "AT"})


async def test_a_field_group_still_too_wide_is_halved(rig: Rig) -> None:
    source = rig.source()
    # what the dictionary said was wrong: pretend the key alone leaves room for everything
    source.reader.groups[("LFA1", ())] = [["LIFNR", *(f.name for f in (await source.reader.dictionary("LFA1"))
                                                   if f.name != "LIFNR")]]
    found = await source.lookup("suppliers", SUPPLIER)
    assert found is not None and found.data["NAME1"] == "Müller Präzision GmbH" and found.data["LOEVM"] == ""
    learnt = source.reader.groups[("LFA1", ())]
    assert len(learnt) > 1 and all(g[0] == "LIFNR" for g in learnt)
