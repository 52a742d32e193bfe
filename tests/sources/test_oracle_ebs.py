"""Oracle EBS adapter against the EBS simulator: context, faults, clocks, look-ups, write-back, hires."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.models import Delivery, Record, Status
from ml_connector.core.templates import compile_template
from ml_connector.errors import SourceAuthError, SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.runtime.poller import LOOKBACK, FlowRuntime, Poller
from ml_connector.sim.oracle_ebs import EbsSim
from ml_connector.sources import retrying
from ml_connector.sources.oracle_ebs import OracleEbsConfig, OracleEbsSource, items_of
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NotificationFilter
from ml_connector.store.sql import SqlStore
from tests.support.clock import ManualClock

START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # 10:00 EST
PAYABLES = {"responsibility": "PAYABLES_MANAGER", "application": "SQLAP", "org_id": 204}
PURCHASING = {"responsibility": "PURCHASING_SUPER_USER", "application": "PO"}
HR = {"responsibility": "US_HRMS_MANAGER", "application": "PER"}
ENTITIES: dict[str, Any] = {
    "invoices": {"method": "get_changed_invoices", "output": "X_INVOICES", "key": "INVOICE_ID",
                 "table": "AP_INVOICES_ALL", "page_size": 4},
    "pos": {"method": "get_changed_pos", "output": "X_POS", "key": "PO_HEADER_ID", "context": PURCHASING},
    "people": {"method": "get_changed_people", "output": "X_PEOPLE", "key": "PERSON_ID", "context": HR,
               "effective_start": "EFFECTIVE_START_DATE", "effective_end": "EFFECTIVE_END_DATE",
               "lookup": {"method": "get_person", "param": "P_PERSON_ID", "output": "X_PERSON",
                          "pivot": {}}},
}
ORDS_ENTITIES: dict[str, Any] = {
    "invoices": {"object": "ap_invoices", "key": "invoice_id", "changed_at": "last_update_date"},
    "people": {"object": "people", "key": "person_id", "changed_at": "last_update_date",
               "effective_start": "effective_start_date", "effective_end": "effective_end_date"},
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def make(clock: ManualClock) -> AsyncIterator[Callable[..., tuple[EbsSim, OracleEbsSource]]]:
    """Factory: (simulator, source) with simulator options in `sim` and config overrides."""
    built: list[OracleEbsSource] = []

    def build(sim: EbsSim | dict[str, Any] | None = None, **overrides: Any) -> tuple[EbsSim, OracleEbsSource]:
        the_sim = sim if isinstance(sim, EbsSim) else EbsSim(clock=clock, **(sim or {}))
        raw: dict[str, Any] = {
            "type": "oracle_ebs", "base_url": "http://ebs.test", "username": "ISGUSER",
            "password": "welcome1", "timezone": "America/New_York", "retry_delay": 0,
            "context": PAYABLES, "entities": ENTITIES, **overrides,
        }
        source = OracleEbsSource("ebs", OracleEbsConfig.model_validate(raw),
                                 transport=httpx.ASGITransport(the_sim.create_app()),
                                 clock=the_sim.now_utc)
        built.append(source)
        return the_sim, source

    yield build
    for source in built:
        await source.aclose()


async def read(source: OracleEbsSource, entity: str, since: datetime, until: datetime) -> list[Record]:
    return [r async for r in source.fetch(entity, since, until)]


MONTH = timedelta(days=40)


# -- application context --------------------------------------------------------------------


@pytest.mark.parametrize(("sim_mode", "our_mode"),
                         [("body", "body"), ("query", "query"), ("header", "headers")])
async def test_each_context_mode_reaches_the_service(make: Any, sim_mode: str, our_mode: str) -> None:
    _, source = make({"context_mode": sim_mode}, context_mode=our_mode)
    records = await read(source, "invoices", START - MONTH, START)
    assert {r.data["ORG_ID"] for r in records} == {204} and len(records) == 6
    assert "warning" not in (await source.check()).details


async def test_context_sent_where_the_service_does_not_read_it_is_explained(make: Any) -> None:
    _, source = make({"context_mode": "query"}, context_mode="body")
    assert await read(source, "invoices", START - MONTH, START) == []
    warning = (await source.check()).details["warning"]
    assert "PAYABLES_MANAGER" in warning and "'body'" in warning and "context" in warning


async def test_rejected_context_is_an_error_naming_the_service(make: Any) -> None:
    _, source = make(context={"responsibility": "PAYABLES_MANAGER", "application": "PO", "org_id": 204})
    with pytest.raises(SourceError, match=r"xx_mlc_events/get_changed_invoices returned error: "
                                          r"Application short name PO") as caught:
        await read(source, "invoices", START - MONTH, START)
    assert type(caught.value) is SourceError and not caught.value.retriable


# -- payload shapes -------------------------------------------------------------------------


def test_item_collections_as_object_list_or_empty() -> None:
    row = {"INVOICE_ID": 1}
    assert items_of({"X_I_ITEM": row}, "X_I") == [row]
    assert items_of({"X_I_ITEM": [row, row]}, "X_I") == [row, row]
    assert items_of({}, "X_I") == [] and items_of(None, "X_I") == [] and items_of("", "X_I") == []
    with pytest.raises(SourcePayloadError, match="X_I"):
        items_of(42, "X_I")


async def test_single_row_page_is_read(make: Any) -> None:
    sim, source = make()
    key = sim.add_invoice().key
    records = await read(source, "invoices", START, START + timedelta(seconds=1))
    assert [r.key for r in records] == [str(key)]


# -- faults -----------------------------------------------------------------------------------


async def test_ungranted_method_names_the_grant(make: Any) -> None:
    _, source = make(username="NOGRANT")
    with pytest.raises(SourceAuthError, match=r"ISG_USER_NOT_AUTHORIZED.*grant xx_mlc_events/"
                                              r"get_changed_invoices to user NOGRANT"):
        await source.check()


async def test_wrong_password_is_an_auth_error_without_the_password(make: Any) -> None:
    for auth in ("session", "basic"):
        _, source = make(password="s3cret-pw", auth=auth)
        with pytest.raises(SourceAuthError) as caught:
            await source.check()
        assert "s3cret-pw" not in str(caught.value)


async def test_unknown_alias_is_404_with_a_hint(make: Any) -> None:
    _, source = make(service="xx_mlc_evnts")
    with pytest.raises(SourceError, match=r"xx_mlc_evnts/get_changed_invoices: not found \(HTTP 404\)"):
        await source.check()


@pytest.mark.parametrize("status", [502, 503])
async def test_web_tier_errors_are_retried_with_backoff(make: Any, monkeypatch: pytest.MonkeyPatch,
                                                        status: int) -> None:
    delays: list[float] = []

    async def no_sleep(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr(retrying.asyncio, "sleep", no_sleep)
    sim, source = make(retries=3, retry_delay=0.5)
    sim.fail_next(3, status)
    assert len(await read(source, "invoices", START - MONTH, START)) == 6
    assert len(delays) == 3  # full jitter: each wait anywhere up to the doubling ceiling
    assert all(0 <= d <= ceiling for d, ceiling in zip(delays, [0.5, 1.0, 2.0], strict=True))
    sim.fail_next(4, status)
    with pytest.raises(SourceUnavailable, match=f"HTTP {status} 4 time") as caught:
        await read(source, "invoices", START - MONTH, START)
    assert caught.value.retriable


async def test_locked_record_is_retriable_and_named(make: Any) -> None:
    sim, source = make()
    sim.lock("invoice", 10003, user="JSMITH")
    with pytest.raises(SourceUnavailable, match="INV-1003 is locked by user JSMITH") as caught:
        await read(source, "invoices", START - MONTH, START)
    assert caught.value.retriable
    sim.unlock("invoice", 10003)
    assert len(await read(source, "invoices", START - MONTH, START)) == 6


async def test_truncated_answer_is_a_payload_error(make: Any) -> None:
    sim, source = make(auth="basic")
    sim.malform_next()
    with pytest.raises(SourcePayloadError, match="not valid JSON"):
        await read(source, "invoices", START - MONTH, START)


# -- time zones -------------------------------------------------------------------------------


def _instants(day_utc: datetime, minutes: range) -> list[datetime]:
    return [day_utc + timedelta(minutes=m) for m in minutes]


@pytest.mark.parametrize("date_format", ["iso_offset", "naive"])
@pytest.mark.parametrize("change", [
    datetime(2024, 11, 3, 4, 0, tzinfo=UTC),   # 00:00 EDT; 01:00-02:00 happens twice
    datetime(2024, 3, 10, 5, 0, tzinfo=UTC),   # 00:00 EST; 02:00-03:00 never happens
])
async def test_dst_windows_neither_lose_nor_repeat(make: Any, clock: ManualClock, date_format: str,
                                                   change: datetime) -> None:
    clock.now = change
    sim, source = make({"date_format": date_format}, auth="basic")
    made: list[str] = []
    for at in _instants(change, range(20, 200, 20)):  # every 20 minutes across the change
        clock.now = at
        made.append(str(sim.add_invoice().key))
    clock.now = change + timedelta(hours=5)
    seen: list[str] = []
    for hour in range(4):  # consecutive one-hour windows
        since = change + timedelta(hours=hour)
        seen += [r.key for r in await read(source, "invoices", since, since + timedelta(hours=1))]
    assert sorted(seen) == sorted(made)


async def test_fall_back_window_asks_early_enough(make: Any, clock: ManualClock) -> None:
    """01:30 EST comes after 01:45 EDT; asking "since 01:45" in wall time would miss it."""
    clock.now = datetime(2024, 11, 3, 6, 30, tzinfo=UTC)  # 01:30 EST
    sim, source = make(auth="basic")
    key = str(sim.add_invoice().key)
    since = datetime(2024, 11, 3, 5, 45, tzinfo=UTC)  # 01:45 EDT
    records = await read(source, "invoices", since, since + timedelta(hours=1))
    assert [r.key for r in records] == [key]
    assert records[0].changed_at == clock.now


async def test_ords_dates_with_z_are_server_local(make: Any) -> None:
    sim, isg = make(auth="basic")
    _, ords = make(sim, mode="ords", auth="basic", ords_path="/ords/xxmlc", entities=ORDS_ENTITIES)
    by_isg = {r.key: r.changed_at for r in await read(isg, "invoices", START - MONTH, START)}
    by_ords = {r.key: r.changed_at for r in await read(ords, "invoices", START - MONTH, START)}
    assert by_isg and all(by_ords[k] == v for k, v in by_isg.items())
    assert by_ords["10001"] == datetime(2024, 2, 28, 15, 15, tzinfo=UTC)  # 10:15 EST, sent as 10:15Z


# -- date-tracked people --------------------------------------------------------------------------


async def test_date_track_rows_collapse_to_the_row_that_matters(make: Any) -> None:
    sim, source = make()
    tomorrow = date(2024, 3, 6)
    sim.hire("Kim", "Later", start=tomorrow)
    people = {r.key: r for r in await read(source, "people", START - MONTH, START + timedelta(seconds=1))}
    assert people["105"].data["CURRENT_EMPLOYEE_FLAG"] is None  # the ex-employee row in effect now
    assert people["105"].data["EFFECTIVE_NOW"] == "Y"
    assert people["106"].data["EFFECTIVE_NOW"] == "N"  # seeded: starts tomorrow
    assert [r.key for r in await read(source, "people", START - MONTH, START + timedelta(seconds=1))
            ].count("105") == 1


async def test_ords_people_collapse_too(make: Any) -> None:
    _, ords = make(mode="ords", auth="basic", ords_path="/ords/xxmlc", entities=ORDS_ENTITIES)
    people = [r async for r in ords.fetch("people", START - MONTH, START)]
    assert [p.key for p in people].count("105") == 1
    assert {p.key: p.data["EFFECTIVE_NOW"] for p in people}["106"] == "N"


async def test_hire_fires_once_after_midnight_through_the_lookback_poll(make: Any, tmp_path: Path) -> None:
    sim, source = make()
    spec = FlowSpec.model_validate({
        "source": "ebs", "entity": "people",
        "schedule": {"every": "1m", "overlap": "5m", "lookback": {"every": "1h", "window": "62d"}},
        "trigger": {"all": [{"field": "EFFECTIVE_NOW", "becomes": "Y"},
                            {"field": "CURRENT_EMPLOYEE_FLAG", "eq": "Y"}]},
        "recipients": [{"static": ["+14155552671"]}],
        "sender": "demo.ops", "template": "{{ FULL_NAME }} starts today",
    })
    flow = FlowRuntime("hired", spec, source, compile_template("hired", spec.template), "demo",
                       "+15005550006", "US")
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
    poller = Poller(flow, store, sim.now_utc)

    def hires() -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in store.list_notifications(NotificationFilter(flow="hired")):
            counts[n.record_key] = counts.get(n.record_key, 0) + 1
        return counts

    try:
        await poller.poll()
        sim.set_clock_offset(60)
        kim = str(sim.hire("Kim", "Later", start=date(2024, 3, 6), mobile="(312) 555-0101").key)
        for hours in (0.1, 4, 13):  # 10:06, 14:00, 23:00 EST: main and lookback polls see 'N'
            sim.set_clock_offset(hours * 3600)
            await poller.poll()
            await poller.poll(LOOKBACK)
        assert hires() == {}
        sim.set_clock_offset(14.5 * 3600)  # 00:30 EST the next day; no row was updated
        await poller.poll()
        assert hires() == {}  # the main poll's window no longer reaches the hire
        await poller.poll(LOOKBACK)
        assert hires() == {kim: 1, "106": 1}  # Kim, and the seeded hire starting the same day
        sim.set_clock_offset(15.5 * 3600)
        await poller.poll(LOOKBACK)
        await poller.poll()
        assert hires() == {kim: 1, "106": 1}
    finally:
        store.close()


# -- look-ups and write-back ----------------------------------------------------------------------


async def test_person_lookup_carries_phones_by_type(make: Any) -> None:
    _, source = make()
    person = await source.lookup("people", "101")
    assert person is not None
    assert (person.data["PHONE_M"], person.data["PHONE_W1"]) == ("(312) 555-0142", "312.555.0199 x12")
    assert person.data["FULL_NAME"] == "Buyer, Pat"
    assert await source.lookup("people", "999") is None


async def test_nested_phones_are_read_when_there_is_no_sibling_table() -> None:
    answer = {"OutputParameters": {"X_RETURN_STATUS": "S", "X_PERSON": {
        "PERSON_ID": 7, "LAST_UPDATE_DATE": "2024-03-01T10:00:00",
        "X_PHONES": {"X_PHONES_ITEM": [{"PHONE_TYPE": "M", "PHONE_NUMBER": "312 555 0100"},
                                       {"PHONE_TYPE": "M", "PHONE_NUMBER": "312 555 0199"}]}}}}
    config = OracleEbsConfig.model_validate({
        "type": "oracle_ebs", "base_url": "http://ebs.test", "username": "U", "password": "p",
        "auth": "basic", "timezone": "America/New_York", "entities": ENTITIES})
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=answer))
    source = OracleEbsSource("ebs", config, transport=transport)
    try:
        person = await source.lookup("people", "7")
    finally:
        await source.aclose()
    assert person is not None and person.data["PHONE_M"] == "312 555 0100"
    assert "X_PHONES" not in person.data


async def test_write_back_lands_in_the_audit_table(make: Any) -> None:
    sim, source = make()
    delivery = Delivery(notification_id=1, flow="invoice_validated", entity="invoices", record_key="10003",
                        provider_id="SM" + "a" * 32, status=Status.DELIVERED, error_code=None,
                        error_message=None, created_at=START, finished_at=START + timedelta(seconds=7))
    await source.write_back(delivery)
    (row,) = sim.audit_rows()
    assert (row["source_table"], row["source_id"], row["status"], row["user_name"]) == (
        "AP_INVOICES_ALL", "10003", "DELIVERED", "ISGUSER")
    assert (row["sent_at"], row["final_at"]) == ("2024-03-05T10:00:00", "2024-03-05T10:00:07")
    assert row["message_sid"] == "SM" + "a" * 32 and row["error_code"] is None


async def test_logout_on_close(make: Any) -> None:
    sim, source = make()
    await source.check()
    assert sim.session_count() == 1
    await source.aclose()
    assert sim.session_count() == 0


# -- answers through an XML-to-JSON bridge --------------------------------------------------------


async def test_bridged_answers_read_like_native_ones(make: Any, tmp_path: Path) -> None:
    """Empty windows are empty, nil fields None, and numeric strings compare as numbers."""
    sim, source = make({"json_style": "bridged"})
    spec = FlowSpec.model_validate({
        "source": "ebs", "entity": "invoices",
        "schedule": {"every": "1m", "overlap": "5m"},
        "trigger": {"all": [{"field": "APPROVAL_STATUS", "becomes": "APPROVED"},
                            {"field": "INVOICE_AMOUNT", "gte": 100}, {"field": "HOLD_COUNT", "eq": 0},
                            {"field": "CANCELLED_DATE", "is_null": True}]},
        "recipients": [{"static": ["+14155552671"]}],
        "sender": "demo.ops", "template": "{{ INVOICE_NUM }} validated",
    })
    flow = FlowRuntime("validated", spec, source, compile_template("validated", spec.template), "demo",
                       "+15005550006", "US")
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
    poller = Poller(flow, store, sim.now_utc)
    try:
        await poller.poll()  # the baseline
        sim.set_clock_offset(60)
        await poller.poll()  # an empty window: a nil table, not a row without INVOICE_ID
        sim.set_clock_offset(120)
        sim.validate_invoice(10007)  # derived: only the distributions move
        sim.set_clock_offset(180)
        report = await poller.poll()
        assert report.inserted == 1
        (view,) = store.list_notifications(NotificationFilter(flow="validated"))
        assert view.record_key == "10007"
    finally:
        store.close()
    records = await read(source, "invoices", START - MONTH, sim.now_utc())
    first = next(r for r in records if r.key == "10001")
    assert first.data["CANCELLED_DATE"] is None and first.data["INVOICE_ID"] == "10001"


async def test_bridged_ords_pages_and_single_rows(make: Any) -> None:
    sim, source = make({"json_style": "bridged"}, mode="ords", auth="basic", ords_path="/ords/xxmlc",
                       entities={**ORDS_ENTITIES, "invoices": {**ORDS_ENTITIES["invoices"], "page_size": 1}})
    records = await read(source, "invoices", START - MONTH, sim.now_utc())
    assert len(records) == len(sim.tables.invoices)
    assert await read(source, "invoices", START + MONTH, START + 2 * MONTH) == []
    found = await source.lookup("invoices", "10002")
    assert found is not None and found.key == "10002"
    assert await source.lookup("invoices", "1") is None


async def test_nil_message_data_does_not_hide_the_messages() -> None:
    nil = {"@xsi:nil": "true"}
    answer = {"OutputParameters": {"X_RETURN_STATUS": "E", "X_MSG_DATA": nil, "X_INVOICES": nil,
                                   "X_MESSAGES": {"X_MESSAGES_ITEM": {"MESSAGE_TEXT": "Period 03-24 is closed"}}}}
    config = OracleEbsConfig.model_validate({
        "type": "oracle_ebs", "base_url": "http://ebs.test", "username": "U", "password": "p",
        "auth": "basic", "timezone": "America/New_York", "entities": ENTITIES})
    source = OracleEbsSource("ebs", config, transport=httpx.MockTransport(lambda _: httpx.Response(200, json=answer)))
    try:
        with pytest.raises(SourceError) as caught:
            await read(source, "invoices", START - MONTH, START)
    finally:
        await source.aclose()
    assert str(caught.value).endswith("returned error: Period 03-24 is closed")


# -- write-back as configuration ------------------------------------------------------------------


def _delivery(**overrides: Any) -> Delivery:
    base: dict[str, Any] = {
        "notification_id": 1, "flow": "invoice_validated", "entity": "invoices", "record_key": "10003",
        "provider_id": "SM" + "b" * 32, "status": Status.DELIVERED, "error_code": None,
        "error_message": None, "created_at": START, "finished_at": START + timedelta(seconds=7)}
    return Delivery(**{**base, **overrides})


async def test_write_back_parameter_names_and_fields_are_configuration(make: Any) -> None:
    from ml_connector.sim.oracle_ebs import ServiceNames

    names = ServiceNames(audit_alias="xx_twilio_log", methods={"record_delivery": "log_sms"}, params={
        "source_table": "P_TABLE_NAME", "source_id": "P_PK_VALUE", "message_sid": "P_TWILIO_SID",
        "status": "P_DELIVERY_STATUS", "sent_at": "P_CREATED", "final_at": "P_COMPLETED"})
    sim, source = make({"names": names}, write_back={
        "service": "xx_twilio_log", "method": "log_sms",
        "params": {"P_TABLE_NAME": "source_table", "P_PK_VALUE": "record_key", "P_TWILIO_SID": "message_sid",
                   "P_DELIVERY_STATUS": "status", "P_CREATED": "sent_at", "P_COMPLETED": "final_at"},
        "status_codes": {"delivered": "D"}})
    await source.write_back(_delivery())
    (row,) = sim.audit_rows()
    assert (row["source_table"], row["source_id"], row["message_sid"], row["status"]) == (
        "AP_INVOICES_ALL", "10003", "SM" + "b" * 32, "D")
    assert (row["sent_at"], row["final_at"]) == ("2024-03-05T10:00:00", "2024-03-05T10:00:07")


async def test_write_back_date_format_and_missing_values_left_out() -> None:
    sent: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        import json
        sent.append(json.loads(request.content)["RECORD_DELIVERY_Input"]["InputParameters"])
        return httpx.Response(200, json={"OutputParameters": {"X_RETURN_STATUS": "S"}})

    config = OracleEbsConfig.model_validate({
        "type": "oracle_ebs", "base_url": "http://ebs.test", "username": "U", "password": "p",
        "auth": "basic", "timezone": "America/New_York", "entities": ENTITIES,
        "write_back": {"date_format": "%d-%b-%Y %H:%M:%S"}})
    source = OracleEbsSource("ebs", config, transport=httpx.MockTransport(answer))
    try:
        await source.write_back(_delivery(provider_id=None, status=Status.FAILED,
                                          error_message="no usable phone number"))
    finally:
        await source.aclose()
    assert sent == [{"P_SOURCE_TABLE": "AP_INVOICES_ALL", "P_SOURCE_ID": "10003", "P_STATUS": "FAILED",
                     "P_SENT_AT": "05-Mar-2024 10:00:00", "P_FINAL_AT": "05-Mar-2024 10:00:07"}]


async def test_failed_before_twilio_is_written_back_with_what_it_has(make: Any) -> None:
    no_sid = _delivery(provider_id=None, status=Status.FAILED)
    lenient, source = make({"audit_required": frozenset()})
    await source.write_back(no_sid)
    assert [(r["status"], r["message_sid"]) for r in lenient.audit_rows()] == [("FAILED", None)]
    strict, source = make(write_back={"params": {
        "P_SOURCE_TABLE": "source_table", "P_SOURCE_ID": "record_key", "P_STATUS": "status",
        "P_MESSAGE_SID": {"field": "message_sid", "default": "NOT SENT"}}})
    await source.write_back(no_sid)
    assert [(r["status"], r["message_sid"]) for r in strict.audit_rows()] == [("FAILED", "NOT SENT")]


def test_write_back_statuses_must_be_final() -> None:
    with pytest.raises(ValueError, match="only final statuses"):
        OracleEbsConfig.model_validate({
            "type": "oracle_ebs", "base_url": "http://ebs.test", "username": "U", "password": "p",
            "timezone": "America/New_York", "entities": ENTITIES,
            "write_back": {"statuses": ["delivered", "sent"]}})


# -- phones nested in the record -------------------------------------------------------------------


PEOPLE_NESTED: dict[str, Any] = {
    "method": "get_changed_people", "output": "X_PEOPLE", "key": "PERSON_ID", "context": HR,
    "effective_start": "EFFECTIVE_START_DATE", "effective_end": "EFFECTIVE_END_DATE",
    "pivot": {"collection": "PHONES"},
}


@pytest.mark.parametrize("style", ["native", "bridged"])
async def test_phones_nested_in_the_entitys_own_rows_are_recipient_fields(make: Any, style: str) -> None:
    from ml_connector.core.flowspec import FieldRecipient
    from ml_connector.runtime.recipients import RecipientResolver

    sim, source = make({"nested_phones": True, "json_style": style},
                       entities={**ENTITIES, "people": PEOPLE_NESTED})
    sim.hire("No", "Phone", start=sim.today())
    people = {r.key: r for r in await read(source, "people", START - timedelta(days=3000), START + MONTH)}
    assert people["101"].data["PHONE_M"] == "(312) 555-0142" and people["101"].data["PHONE_W1"]
    assert "PHONES" not in people["101"].data
    assert people["102"].data["PHONE_M"] == "+44 20 7946 0958"  # one phone: a bare object
    assert not any(name.startswith("PHONE_") for name in people["201"].data)  # none: empty or nil
    resolver = RecipientResolver(source, "US")
    spec = [FieldRecipient(field=["PHONE_M", "PHONE_W1"])]
    (pat,) = await resolver.resolve(spec, people["101"])
    assert (pat.field, pat.phone) == ("PHONE_M", "+13125550142")
    (sam,) = await resolver.resolve(spec, people["103"])  # M is empty, W1 is "ext 4411 only"
    assert sam.phone is None and "PHONE_M: empty" in str(sam.reason)


@pytest.mark.parametrize("param", [{"param": "P_PERSON_ID"}, {}], ids=["key-filter", "no-filter"])
async def test_lookup_through_the_changed_since_method(make: Any, param: dict[str, str]) -> None:
    people = {**PEOPLE_NESTED, "lookup": {"via": "changed_since", **param}}
    _, source = make({"nested_phones": True}, entities={**ENTITIES, "people": people})
    buyer = await source.lookup("people", "101")
    assert buyer is not None and buyer.data["PHONE_M"] == "(312) 555-0142"
    leaver = await source.lookup("people", "105")  # two date-track rows: the one in effect now
    assert leaver is not None and leaver.data["CURRENT_EMPLOYEE_FLAG"] is None
    assert await source.lookup("people", "999") is None


async def test_lookup_key_filter_is_sent_and_fewer_rows_are_read(make: Any) -> None:
    filtered = {**PEOPLE_NESTED, "page_size": 2, "lookup": {"via": "changed_since", "param": "P_PERSON_ID"}}
    unfiltered = {**filtered, "lookup": {"via": "changed_since"}}
    _, narrow = make({"nested_phones": True}, entities={**ENTITIES, "people": filtered})
    _, wide = make({"nested_phones": True}, entities={**ENTITIES, "people": unfiltered})
    await narrow.lookup("people", "101")
    await wide.lookup("people", "101")
    assert narrow.calls < wide.calls


def test_lookup_config_says_what_is_missing() -> None:
    def config(lookup: dict[str, Any]) -> None:
        OracleEbsConfig.model_validate({
            "type": "oracle_ebs", "base_url": "http://ebs.test", "username": "U", "password": "p",
            "timezone": "America/New_York", "entities": {"people": {**PEOPLE_NESTED, "lookup": lookup}}})

    with pytest.raises(ValueError, match="via: changed_since"):
        config({"param": "P_PERSON_ID"})
    with pytest.raises(ValueError, match="leave out `method`"):
        config({"via": "changed_since", "method": "get_person"})
    with pytest.raises(ValueError, match="YYYY-MM-DDTHH:MM:SS"):
        config({"via": "changed_since", "since": "01-JAN-1900"})


# -- supplier changes (examples/oracle-ebs.yaml) --------------------------------------------------


async def test_example_supplier_flow_alerts_ap_on_bank_account_and_site_changes(tmp_path: Path) -> None:
    from ml_connector.config import load_config

    example = Path(__file__).parents[2] / "examples" / "oracle-ebs.yaml"
    config = load_config(example, {})
    section = config.sources["ebs"]
    assert isinstance(section, OracleEbsConfig)
    spec = config.flows["supplier_changed"]
    clock = ManualClock(START)
    sim = EbsSim(clock=clock)
    source = OracleEbsSource("ebs", section, transport=httpx.ASGITransport(sim.create_app()), clock=clock)
    flow = FlowRuntime("supplier_changed", spec, source, compile_template("supplier_changed", spec.template),
                       "demo", "+15005550006", "US")
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
    poller = Poller(flow, store, clock)
    try:
        await poller.poll()  # the baseline: nothing is news
        assert store.list_notifications(NotificationFilter(flow="supplier_changed")) == []
        clock.advance(timedelta(minutes=5))
        sim.change_bank_account(7003, bank_name="Elsewhere Bank", account_num="99887766")
        clock.advance(timedelta(minutes=5))
        await poller.poll()
        clock.advance(timedelta(minutes=5))
        sim.change_supplier_site(7001, address_line1="1 Harbor Way")
        clock.advance(timedelta(minutes=5))
        await poller.poll()
        await poller.poll(LOOKBACK)  # re-reading the day notifies nothing again
        views = store.list_notifications(NotificationFilter(flow="supplier_changed"))
        assert sorted(v.record_key for v in views) == ["7001", "7003"]
        bodies = {v.record_key: v.body for v in views}
        assert "Elsewhere Bank XXXX7766" in str(bodies["7003"]) and "99887766" not in str(bodies["7003"])
        assert "1 Harbor Way" in str(bodies["7001"])
    finally:
        store.close()
        await source.aclose()


def test_nil_objects_are_recognised_only_when_they_hold_nothing() -> None:
    from ml_connector.sources.oracle_ebs_json import as_flag, as_list, is_nil, unbridged

    assert is_nil({"@xsi:nil": "true"}) and is_nil({"@xsi:nil": "true", "@xmlns:xsi": "http://x"})
    assert not is_nil({"@xsi:nil": "false"}) and not is_nil({"@xsi:nil": "true", "NAME": "x"}) and not is_nil({})
    assert unbridged({"A": {"@xsi:nil": "true"}, "B": [{"@xsi:nil": "true"}, "1"]}) == {"A": None, "B": [None, "1"]}
    assert (as_list(None), as_list({"a": 1}), as_list([1])) == ([], [{"a": 1}], [1])
    assert (as_flag("false"), as_flag("true"), as_flag(True), as_flag(None)) == (False, True, True, False)
