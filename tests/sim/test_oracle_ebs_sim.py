"""The Oracle EBS simulator behaves like EBS, quirks included (ISG REST, ORDS, control API)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ml_connector.sim.oracle_ebs import EbsSim, ServiceNames
from tests.support.clock import ManualClock

ISGUSER = ("ISGUSER", "welcome1")
NOGRANT = ("NOGRANT", "welcome1")
EVENTS = "/webservices/rest/xx_mlc_events"
AUDIT = "/webservices/rest/xx_mlc_audit"
SINCE_ALL = "2024-01-01T00:00:00"
START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York (EST, -05:00)

PAYABLES = {"Responsibility": "PAYABLES_MANAGER", "RespApplication": "SQLAP",
            "SecurityGroup": "STANDARD", "NLSLanguage": "AMERICAN", "Org_Id": "204"}
PURCHASING = {"Responsibility": "PURCHASING_SUPER_USER", "RespApplication": "PO",
              "SecurityGroup": "STANDARD", "NLSLanguage": "AMERICAN"}
QUERY_KEYS = {"Responsibility": "ctx_responsibility", "RespApplication": "ctx_respapplication",
              "SecurityGroup": "ctx_securitygroup", "NLSLanguage": "ctx_nlslanguage", "Org_Id": "ctx_orgid"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_sim(clock: ManualClock) -> Callable[..., EbsSim]:
    def make(**overrides: Any) -> EbsSim:
        return EbsSim(**{"clock": clock, **overrides})
    return make


@pytest.fixture
def sim(make_sim: Callable[..., EbsSim]) -> EbsSim:
    return make_sim()


def client_for(sim: EbsSim) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.create_app()), base_url="http://ebs.test")


@pytest.fixture
async def client(sim: EbsSim) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(sim) as c:
        yield c


def payload(method: str, params: dict[str, Any], header: dict[str, str] | None = None) -> dict[str, Any]:
    inner: dict[str, Any] = {"InputParameters": params}
    if header is not None:
        inner["RESTHeader"] = header
    return {f"{method.upper()}_Input": inner}


async def call(
    client: httpx.AsyncClient,
    method: str,
    inputs: dict[str, Any],
    header: dict[str, str] | None = PAYABLES,
    auth: tuple[str, str] | None = ISGUSER,
    base: str = EVENTS,
    **kwargs: Any,
) -> httpx.Response:
    return await client.post(f"{base}/{method}/", json=payload(method, inputs, header),
                             auth=auth or httpx.USE_CLIENT_DEFAULT, **kwargs)


async def login_token(client: httpx.AsyncClient) -> str:
    token: str = (await client.get("/webservices/rest/login", auth=ISGUSER)).json()["response"]["data"][
        "accessToken"]
    return token


def out(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()["OutputParameters"]
    return result


def rows(output: dict[str, Any], table: str) -> list[dict[str, Any]]:
    """Normalise the `_ITEM` quirk (object for one row, list for many, nothing for none)."""
    item = output[table].get(f"{table}_ITEM")
    if item is None:
        return []
    return item if isinstance(item, list) else [item]


# -- authentication and sessions ---------------------------------------------------------------


async def test_login_cookie_and_logout(client: httpx.AsyncClient) -> None:
    login = await client.get("/webservices/rest/login", auth=ISGUSER)
    data = login.json()["response"]["data"]
    assert login.status_code == 200
    assert (data["accessTokenName"], data["ebsVersion"], data["userName"]) == ("VIS", "12.2.10", "ISGUSER")
    cookie = {"Cookie": f"VIS={data['accessToken']}"}

    ok = await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL}, auth=None, headers=cookie)
    assert out(ok)["X_RETURN_STATUS"] == "S"

    bye = await client.get("/webservices/rest/logout", headers=cookie)
    assert bye.status_code == 200
    dead = await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL}, auth=None, headers=cookie)
    assert dead.status_code == 401
    assert dead.headers["www-authenticate"].startswith("Basic")
    assert dead.json()["ISGServiceFault"]["Code"] == "ISG_INVALID_SESSION"


async def test_dead_token_is_401_even_with_basic(client: httpx.AsyncClient) -> None:
    resp = await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL}, headers={"Cookie": "VIS=nope"})
    assert resp.status_code == 401


async def test_login_xml_variant(client: httpx.AsyncClient) -> None:
    resp = await client.get("/webservices/rest/login", auth=ISGUSER, headers={"Accept": "application/xml"})
    assert resp.headers["content-type"].startswith("application/xml")
    assert "<accessTokenName>VIS</accessTokenName>" in resp.text
    assert "<userName>ISGUSER</userName>" in resp.text


@pytest.mark.parametrize("auth", [("ISGUSER", "wrong"), ("NOBODY", "welcome1"), None])
async def test_bad_or_missing_basic_is_401(client: httpx.AsyncClient, auth: tuple[str, str] | None) -> None:
    resp = await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL}, auth=auth)
    assert resp.status_code == 401
    assert resp.json()["ISGServiceFault"]["Code"] == "ISG_AUTHENTICATION_FAILED"
    login = await client.get("/webservices/rest/login", auth=auth)
    assert login.status_code == 401


async def test_session_expires_by_age(make_sim: Callable[..., EbsSim], clock: ManualClock) -> None:
    sim = make_sim(session_ttl=600)
    async with client_for(sim) as client:
        token = (await client.get("/webservices/rest/login", auth=ISGUSER)).json()["response"]["data"]
        cookie = {"Cookie": f"VIS={token['accessToken']}"}
        clock.advance(seconds=599)
        assert (await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL}, auth=None,
                           headers=cookie)).status_code == 200
        clock.advance(seconds=1)
        expired = await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL}, auth=None, headers=cookie)
        assert expired.status_code == 401
        assert expired.json()["ISGServiceFault"]["Code"] == "ISG_INVALID_SESSION"


async def test_control_expires_all_sessions_and_shifts_clock(client: httpx.AsyncClient, sim: EbsSim) -> None:
    token = await login_token(client)
    expired = await client.post("/_sim/expire_sessions")
    assert expired.json() == {"expired": 1}
    resp = await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL}, auth=None,
                      headers={"Cookie": f"VIS={token}"})
    assert resp.status_code == 401

    await client.post("/_sim/set_clock_offset", json={"seconds": 3600})
    assert sim.now_local() == datetime(2024, 3, 5, 11, 0)


def test_naive_clock_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        EbsSim(clock=lambda: datetime(2024, 3, 5, 10, 0))


# -- application context -----------------------------------------------------------------------


def _context_request(mode: str) -> dict[str, Any]:
    """The PAYABLES context placed where ``mode`` expects it."""
    if mode == "body":
        return {"header": PAYABLES}
    if mode == "query":
        return {"header": None, "params": {QUERY_KEYS[k]: v for k, v in PAYABLES.items()}}
    return {"header": None, "headers": {QUERY_KEYS[k]: v for k, v in PAYABLES.items()}}


@pytest.mark.parametrize("mode", ["body", "query", "header"])
async def test_context_honoured_only_where_deployed(make_sim: Callable[..., EbsSim], mode: str) -> None:
    sim = make_sim(context_mode=mode)
    async with client_for(sim) as client:
        honoured = await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL},
                              **_context_request(mode))
        found = rows(out(honoured), "X_INVOICES")
        assert {r["ORG_ID"] for r in found} == {204}
        assert len(found) == 6
        for other in {"body", "query", "header"} - {mode}:
            ignored = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL},
                                     **_context_request(other)))
            assert ignored["X_RETURN_STATUS"] == "S"
            assert rows(ignored, "X_INVOICES") == []


async def test_missing_context_empties_multi_org_data_but_not_people(client: httpx.AsyncClient) -> None:
    invoices = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL}, header=None))
    assert invoices["X_RETURN_STATUS"] == "S"
    assert invoices["X_INVOICES"] == {}
    people = out(await call(client, "get_changed_people", {"P_SINCE": SINCE_ALL}, header=None))
    assert len(rows(people, "X_PEOPLE")) == 7


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ({**PAYABLES, "Responsibility": "SYSTEM_ADMINISTRATOR", "RespApplication": "SYSADMIN"},
         "SYSTEM_ADMINISTRATOR is not valid for user ISGUSER"),
        ({**PAYABLES, "RespApplication": "PO"}, "Application short name PO"),
        ({**PAYABLES, "NLSLanguage": "KLINGON"}, "KLINGON"),
    ],
)
async def test_wrong_context_is_a_business_error(
    client: httpx.AsyncClient, header: dict[str, str], fragment: str
) -> None:
    result = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL}, header=header))
    assert result["X_RETURN_STATUS"] == "E"
    assert fragment in result["X_MSG_DATA"]
    assert rows(result, "X_INVOICES") == []


async def test_org_outside_responsibility_is_empty(client: httpx.AsyncClient) -> None:
    by_context = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL},
                                header={**PAYABLES, "Org_Id": "458"}))
    by_param = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL, "P_ORG_ID": 458}))
    assert (by_context["X_RETURN_STATUS"], rows(by_context, "X_INVOICES")) == ("S", [])
    assert (by_param["X_RETURN_STATUS"], rows(by_param, "X_INVOICES")) == ("S", [])
    purchasing = out(await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL}, header=PURCHASING))
    assert {r["ORG_ID"] for r in rows(purchasing, "X_POS")} == {204, 458}


async def test_token_session_remembers_context_basic_does_not(client: httpx.AsyncClient) -> None:
    token = await login_token(client)
    cookie = {"Cookie": f"VIS={token}"}
    await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL}, auth=None, headers=cookie)
    remembered = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL}, header=None,
                                auth=None, headers=cookie))
    assert len(rows(remembered, "X_INVOICES")) == 6
    basic = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL}, header=None))
    assert rows(basic, "X_INVOICES") == []


# -- service routing and faults ----------------------------------------------------------------


async def test_unknown_alias_and_method_are_html_404(client: httpx.AsyncClient) -> None:
    alias = await call(client, "get_changed_invoices", {}, base="/webservices/rest/xx_gone")
    method = await call(client, "get_everything", {})
    for resp in (alias, method):
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("text/html")
        assert "Not Found" in resp.text


async def test_method_segment_is_case_insensitive_and_wrapper_lenient(client: httpx.AsyncClient) -> None:
    body = {"PROCESS_ORDER_Input": {"RESTHeader": PAYABLES, "InputParameters": {"P_SINCE": SINCE_ALL}}}
    resp = await client.post(f"{EVENTS}/GET_CHANGED_INVOICES/", json=body, auth=ISGUSER)
    assert len(rows(out(resp), "X_INVOICES")) == 6


async def test_ungranted_user_gets_isg_fault(client: httpx.AsyncClient) -> None:
    resp = await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL}, auth=NOGRANT)
    assert resp.status_code == 500
    fault = resp.json()["ISGServiceFault"]
    assert fault["Code"] == "ISG_USER_NOT_AUTHORIZED"
    assert "NOGRANT" in fault["Message"] and fault["Resolution"]
    assert fault["ServiceDetails"]["ServiceName"] == "xx_mlc_events"
    assert fault["ServiceDetails"]["OperationName"] == "get_changed_invoices"
    assert fault["ServiceDetails"]["InstanceId"]


async def test_bad_payload_and_media_type(client: httpx.AsyncClient) -> None:
    garbage = await client.post(f"{EVENTS}/get_changed_invoices/", content=b"{not json",
                                headers={"Content-Type": "application/json"}, auth=ISGUSER)
    assert garbage.status_code == 400
    assert garbage.json()["ISGServiceFault"]["Code"] == "ISG_INVALID_REQUEST"
    xml = await client.post(f"{EVENTS}/get_changed_invoices/", content=b"<x/>",
                            headers={"Content-Type": "application/xml"}, auth=ISGUSER)
    assert xml.status_code == 415
    get = await client.get(f"{EVENTS}/get_changed_invoices/", auth=ISGUSER)
    assert get.status_code == 405


async def test_web_tier_fault_for_next_calls(client: httpx.AsyncClient, sim: EbsSim) -> None:
    await client.post("/_sim/fail_next", json={"count": 2, "status": 502})
    first = await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL})
    second = await client.get("/ords/xxmlc/po_headers/", auth=ISGUSER)
    third = await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL})
    assert (first.status_code, second.status_code, third.status_code) == (502, 502, 200)
    assert "Proxy Error" in first.text
    sim.fail_next(1, 503)
    assert (await client.get("/webservices/rest/login", auth=ISGUSER)).status_code == 503


async def test_malformed_payload_for_next_call_only(client: httpx.AsyncClient) -> None:
    await client.post("/_sim/malform_next", json={})
    broken = await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL})
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.text)
    assert out(await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL}))["X_RETURN_STATUS"] == "S"


# -- changed-since services --------------------------------------------------------------------


async def test_item_quirk_object_list_and_empty(client: httpx.AsyncClient) -> None:
    one = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL, "P_MAX_ROWS": 1}))
    assert isinstance(one["X_INVOICES"]["X_INVOICES_ITEM"], dict)
    many = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL, "P_MAX_ROWS": "3"}))
    assert isinstance(many["X_INVOICES"]["X_INVOICES_ITEM"], list)
    assert len(many["X_INVOICES"]["X_INVOICES_ITEM"]) == 3
    none = out(await call(client, "get_changed_invoices", {"P_SINCE": "2030-01-01T00:00:00"}))
    assert none["X_INVOICES"] == {}
    assert none["X_RETURN_STATUS"] == "S" and none["X_MSG_DATA"] is None
    assert none["@xmlns:xsi"] == "http://www.w3.org/2001/XMLSchema-instance"


async def test_rows_ordered_and_paged_by_offset(client: httpx.AsyncClient) -> None:
    full = rows(out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL})), "X_INVOICES")
    keys = [(r["LAST_UPDATE_DATE"], r["INVOICE_ID"]) for r in full]
    assert keys == sorted(keys)
    pages = []
    for offset in (0, 2, 4, 6):
        page = out(await call(client, "get_changed_invoices",
                              {"P_SINCE": SINCE_ALL, "P_MAX_ROWS": 2, "P_OFFSET": offset}))
        pages.extend(rows(page, "X_INVOICES"))
    assert pages == full


async def test_since_is_strict_about_format_and_null(client: httpx.AsyncClient) -> None:
    zoned = out(await call(client, "get_changed_invoices", {"P_SINCE": "2024-01-01T00:00:00-05:00"}))
    assert zoned["X_RETURN_STATUS"] == "E" and "ORA-01861" in zoned["X_MSG_DATA"]
    missing = out(await call(client, "get_changed_invoices", {}))
    assert (missing["X_RETURN_STATUS"], missing["X_INVOICES"]) == ("S", {})
    bad_number = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL, "P_MAX_ROWS": "ten"}))
    assert bad_number["X_RETURN_STATUS"] == "E" and "ORA-06502" in bad_number["X_MSG_DATA"]


async def test_dates_are_server_local_with_configurable_format(make_sim: Callable[..., EbsSim]) -> None:
    for fmt, expected in (("iso_offset", "2024-03-04T10:15:00.000-05:00"), ("naive", "2024-03-04 10:15:00")):
        async with client_for(make_sim(date_format=fmt)) as client:
            since = out(await call(client, "get_changed_invoices", {"P_SINCE": "2024-03-04T00:00:00"}))
            assert [r["LAST_UPDATE_DATE"] for r in rows(since, "X_INVOICES")] == [expected]


async def test_validation_surfaces_through_distribution_dates(
    client: httpx.AsyncClient, sim: EbsSim, clock: ManualClock
) -> None:
    clock.advance(hours=1)  # 11:00 local
    ords_before = (await client.get("/ords/xxmlc/ap_invoices/10002", auth=ISGUSER)).json()
    resp = await client.post("/_sim/validate_invoice", json={"invoice_id": 10002})
    assert resp.json() == {"key": 10002, "txn": None}

    changed = rows(out(await call(client, "get_changed_invoices", {"P_SINCE": "2024-03-05T10:30:00"})),
                   "X_INVOICES")
    assert [(r["INVOICE_ID"], r["APPROVAL_STATUS"], r["LAST_UPDATE_DATE"]) for r in changed] == [
        (10002, "APPROVED", "2024-03-05T11:00:00.000-05:00")]
    # The header (all a plain table read sees) did not move.
    ords_after = (await client.get("/ords/xxmlc/ap_invoices/10002", auth=ISGUSER)).json()
    assert ords_after["last_update_date"] == ords_before["last_update_date"] == "2024-02-29T10:15:00Z"
    assert sim.tables.invoices[10002].last_update_date == datetime(2024, 2, 29, 10, 15)


async def test_holds_keep_invoice_needing_reapproval(client: httpx.AsyncClient, sim: EbsSim) -> None:
    def status(invoice_id: int) -> str:
        return sim.tables.approval_status(sim.tables.invoices[invoice_id])

    assert [status(i) for i in (10001, 10002, 10003, 10004, 10006)] == [
        "APPROVED", "NEVER APPROVED", "NEEDS REAPPROVAL", "CANCELLED", "NEEDS REAPPROVAL"]
    sim.validate_invoice(10003)
    assert status(10003) == "NEEDS REAPPROVAL"
    sim.validate_invoice(10003, release_holds=True)
    assert status(10003) == "APPROVED"
    sim.validate_invoice(10001, hold="DIST VARIANCE")
    assert status(10001) == "NEEDS REAPPROVAL"


async def test_late_commit_is_invisible_until_committed(client: httpx.AsyncClient, clock: ManualClock) -> None:
    staged = (await client.post("/_sim/approve_po", json={"po_header_id": 5003, "commit": False})).json()
    assert staged["txn"]
    clock.advance(minutes=30)  # 10:30 local: a poll now, from a 10:20 watermark, sees nothing
    window = {"P_SINCE": "2024-03-05T09:59:00"}
    assert rows(out(await call(client, "get_changed_pos", window, header=PURCHASING)), "X_POS") == []

    assert (await client.post("/_sim/commit", json={"txn": staged["txn"]})).json() == {"ok": True}
    after_watermark = {"P_SINCE": "2024-03-05T10:20:00"}
    assert rows(out(await call(client, "get_changed_pos", after_watermark, header=PURCHASING)), "X_POS") == []
    late = rows(out(await call(client, "get_changed_pos", window, header=PURCHASING)), "X_POS")
    assert [(r["SEGMENT1"], r["AUTHORIZATION_STATUS"], r["LAST_UPDATE_DATE"]) for r in late] == [
        ("4503", "APPROVED", "2024-03-05T10:00:00.000-05:00")]


async def test_locked_po_is_a_business_error_naming_it(client: httpx.AsyncClient) -> None:
    await client.post("/_sim/lock", json={"table": "po", "key": 5004, "user": "MBROWN"})
    locked = out(await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL}, header=PURCHASING))
    assert locked["X_RETURN_STATUS"] == "E"
    assert "4504" in locked["X_MSG_DATA"] and "locked" in locked["X_MSG_DATA"]
    assert "MBROWN" in locked["X_MSG_DATA"]
    assert rows(locked, "X_POS") == []
    # A page that does not reach the locked row still works.
    before = out(await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL, "P_MAX_ROWS": 2},
                            header=PURCHASING))
    assert before["X_RETURN_STATUS"] == "S"
    await client.post("/_sim/unlock", json={"table": "po", "key": 5004})
    unlocked = out(await call(client, "get_changed_pos", {"P_SINCE": SINCE_ALL}, header=PURCHASING))
    assert unlocked["X_RETURN_STATUS"] == "S" and len(rows(unlocked, "X_POS")) == 6


async def test_future_dated_hire_turns_current_without_an_update(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    today = rows(out(await call(client, "get_changed_people", {"P_SINCE": "2024-03-05T00:00:00"})),
                 "X_PEOPLE")
    assert [(r["PERSON_ID"], r["EFFECTIVE_START_DATE"]) for r in today] == [
        (106, "2024-03-06T00:00:00.000-05:00")]
    not_yet = out(await call(client, "get_person", {"P_PERSON_ID": 106}))
    assert not_yet["X_RETURN_STATUS"] == "E"

    clock.advance(days=1)
    since_last_poll = out(await call(client, "get_changed_people", {"P_SINCE": "2024-03-05T10:00:00"}))
    assert since_last_poll["X_PEOPLE"] == {}
    hired = out(await call(client, "get_person", {"P_PERSON_ID": "106"}))
    assert hired["X_RETURN_STATUS"] == "S"
    assert hired["X_PERSON"]["FULL_NAME"] == "Future, Robin"
    assert hired["X_PHONES"]["X_PHONES_ITEM"]["PHONE_NUMBER"] == "(773) 555-0123"


async def test_person_phones_are_free_text(client: httpx.AsyncClient, sim: EbsSim) -> None:
    pat = out(await call(client, "get_person", {"P_PERSON_ID": 101}))
    assert [(p["PHONE_TYPE"], p["PHONE_NUMBER"]) for p in rows(pat, "X_PHONES")] == [
        ("M", "(312) 555-0142"), ("W1", "312.555.0199 x12")]
    sam = out(await call(client, "get_person", {"P_PERSON_ID": 103}))
    assert {p["PHONE_NUMBER"] for p in rows(sam, "X_PHONES")} == {"", "ext 4411 only"}

    sim.change_phone(101, "M", "+1 312 555 0143")
    sim.change_phone(101, "W1", None)
    pat = out(await call(client, "get_person", {"P_PERSON_ID": 101}))
    assert isinstance(pat["X_PHONES"]["X_PHONES_ITEM"], dict)
    assert pat["X_PHONES"]["X_PHONES_ITEM"]["PHONE_NUMBER"] == "+1 312 555 0143"


async def test_hire_through_control_api(client: httpx.AsyncClient) -> None:
    resp = await client.post("/_sim/hire",
                             json={"first_name": "Kim", "last_name": "New", "mobile": "555 0100"})
    person_id = resp.json()["key"]
    person = out(await call(client, "get_person", {"P_PERSON_ID": person_id}))
    assert person["X_PERSON"]["LAST_UPDATE_DATE"] == "2024-03-05T10:00:00.000-05:00"
    assert (await client.post("/_sim/no_such_action", json={})).status_code == 404
    assert (await client.post("/_sim/approve_po", json={"po_header_id": 1})).status_code == 404


async def test_custom_names_are_honoured(make_sim: Callable[..., EbsSim]) -> None:
    names = ServiceNames(events_alias="xx_ap_events", methods={"changed_invoices": "invoices_since"},
                         params={"since": "P_FROM"})
    async with client_for(make_sim(names=names)) as client:
        resp = await call(client, "invoices_since", {"P_FROM": SINCE_ALL},
                          base="/webservices/rest/xx_ap_events")
        assert len(rows(out(resp), "X_INVOICES")) == 6
        old = await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL})
        assert old.status_code == 404


# -- write-back --------------------------------------------------------------------------------


async def test_record_delivery_is_stored(client: httpx.AsyncClient) -> None:
    params = {"P_SOURCE_TABLE": "PO_HEADERS_ALL", "P_SOURCE_ID": "5001", "P_MESSAGE_SID": "SM" + "a" * 32,
              "P_STATUS": "delivered", "P_ERROR_CODE": None, "P_SENT_AT": "2024-03-05T09:58:00",
              "P_FINAL_AT": "2024-03-05T09:59:30"}
    result = out(await call(client, "record_delivery", params, base=AUDIT))
    assert result["X_RETURN_STATUS"] == "S" and result["X_AUDIT_ID"] == 1
    audit = (await client.get("/_sim/audit")).json()
    assert audit == [{
        "audit_id": 1, "source_table": "PO_HEADERS_ALL", "source_id": "5001", "message_sid": "SM" + "a" * 32,
        "status": "delivered", "error_code": None, "sent_at": "2024-03-05T09:58:00",
        "final_at": "2024-03-05T09:59:30", "user_name": "ISGUSER", "creation_date": "2024-03-05T10:00:00",
    }]
    missing = out(await call(client, "record_delivery", {**params, "P_MESSAGE_SID": None}, base=AUDIT))
    assert missing["X_RETURN_STATUS"] == "E" and "P_MESSAGE_SID" in missing["X_MSG_DATA"]
    assert len((await client.get("/_sim/audit")).json()) == 1


# -- ORDS --------------------------------------------------------------------------------------


async def test_ords_paging_links_and_has_more(client: httpx.AsyncClient) -> None:
    first = (await client.get("/ords/xxmlc/po_headers/", params={"limit": 4}, auth=ISGUSER)).json()
    assert (first["hasMore"], first["limit"], first["offset"], first["count"]) == (True, 4, 0, 4)
    rels = {link["rel"]: link["href"] for link in first["links"]}
    assert {"self", "describedby", "first", "next"} <= set(rels)
    assert "offset=4" in rels["next"]
    assert first["items"][0]["links"][0] == {"rel": "self", "href": "http://ebs.test/ords/xxmlc/po_headers/5001"}
    second = (await client.get(rels["next"], auth=ISGUSER)).json()
    assert (second["hasMore"], second["offset"], second["count"]) == (False, 4, 2)
    assert "prev" in {link["rel"] for link in second["links"]}
    assert "next" not in {link["rel"] for link in second["links"]}
    default = (await client.get("/ords/xxmlc/people/", auth=ISGUSER)).json()
    assert (default["limit"], default["count"]) == (25, 7)


async def test_ords_dates_carry_a_false_z_and_filters_compare_naively(client: httpx.AsyncClient) -> None:
    # Invoice 10007 was updated at 10:15 New York time (15:15 UTC).
    def query(op: str, value: str) -> dict[str, str]:
        return {"q": json.dumps({"invoice_id": 10007, "last_update_date": {op: {"$date": value}}})}

    async def ids(params: dict[str, str]) -> list[int]:
        body = (await client.get("/ords/xxmlc/ap_invoices/", params=params, auth=ISGUSER)).json()
        return [item["invoice_id"] for item in body["items"]]

    item = (await client.get("/ords/xxmlc/ap_invoices/10007", auth=ISGUSER)).json()
    assert item["last_update_date"] == "2024-03-04T10:15:00Z"
    assert await ids(query("$gte", "2024-03-04T10:15:00Z")) == [10007]
    assert await ids(query("$gt", "2024-03-04T10:15:00Z")) == []
    # The true instant (15:15Z) does not match the local wall time stored in the row.
    assert await ids(query("$gte", "2024-03-04T15:15:00Z")) == []
    # An explicit offset is converted to UTC first, then compared as naive.
    assert await ids(query("$eq", "2024-03-04T05:15:00-05:00")) == [10007]
    assert await ids(query("$gt", "2024-03-04T05:15:00-05:00")) == []


async def test_ords_q_operators_and_orderby(client: httpx.AsyncClient) -> None:
    q = {"org_id": {"$in": [204]}, "segment1": {"$like": "450%"}, "authorization_status": {"$ne": "APPROVED"},
         "$orderby": {"last_update_date": "desc"}}
    body = (await client.get("/ords/xxmlc/po_headers/", params={"q": json.dumps(q)}, auth=ISGUSER)).json()
    assert [i["segment1"] for i in body["items"]] == ["4506", "4504", "4503", "4502"]
    nulls = {"approved_date": {"$null": None}, "$or": [{"segment1": "4502"}, {"segment1": {"$eq": "4506"}}]}
    body = (await client.get("/ords/xxmlc/po_headers/", params={"q": json.dumps(nulls)}, auth=ISGUSER)).json()
    assert [i["segment1"] for i in body["items"]] == ["4502", "4506"]


@pytest.mark.parametrize("q", ["{not json", json.dumps({"no_such_column": 1}),
                               json.dumps({"last_update_date": {"$gt": "2024-01-01"}}),
                               json.dumps({"org_id": {"$regex": "x"}})])
async def test_ords_bad_q_is_400(client: httpx.AsyncClient, q: str) -> None:
    resp = await client.get("/ords/xxmlc/po_headers/", params={"q": q}, auth=ISGUSER)
    assert resp.status_code == 400
    assert resp.json()["code"] == "BadRequest"
    assert resp.json()["type"].startswith("tag:oracle.com,2020:error/")


async def test_ords_auth_and_unknown_objects(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ords/xxmlc/po_headers/")).status_code == 401
    assert (await client.get("/ords/xxmlc/po_headers/", auth=NOGRANT)).status_code == 403
    assert (await client.get("/ords/xxmlc/gl_balances/", auth=ISGUSER)).status_code == 404
    big = (await client.get("/ords/xxmlc/po_headers/", params={"limit": 5000}, auth=ISGUSER)).json()
    assert big["limit"] == 500


async def test_ords_offset_paging_drifts_when_rows_change(client: httpx.AsyncClient, sim: EbsSim) -> None:
    params = {"q": json.dumps({"$orderby": {"last_update_date": "asc"}}), "limit": "3"}
    page1 = (await client.get("/ords/xxmlc/po_headers/", params=params, auth=ISGUSER)).json()
    seen = [i["segment1"] for i in page1["items"]]
    assert seen == ["4501", "4502", "4503"]
    sim.approve_po(5002)  # moves 4502 to the end, shifting everything after it up one
    page2 = (await client.get("/ords/xxmlc/po_headers/", params={**params, "offset": "3"},
                              auth=ISGUSER)).json()
    seen += [i["segment1"] for i in page2["items"]]
    assert "4504" not in seen  # skipped by the shift
    assert seen.count("4502") == 2


# -- the XML-to-JSON bridge style ----------------------------------------------------------------


async def test_bridged_style_renders_strings_and_nil_objects(make_sim: Callable[..., EbsSim]) -> None:
    sim = make_sim(json_style="bridged")
    async with client_for(sim) as client:
        one = out(await call(client, "get_changed_invoices", {"P_SINCE": SINCE_ALL, "P_MAX_ROWS": 1}))
        none = out(await call(client, "get_changed_invoices", {"P_SINCE": "2030-01-01T00:00:00"}))
        page = (await client.get("/ords/xxmlc/ap_invoices/?limit=1", auth=ISGUSER)).json()
        empty = (await client.get('/ords/xxmlc/ap_invoices/?q={"invoice_id":{"$eq":1}}', auth=ISGUSER)).json()
    row = one["X_INVOICES"]["X_INVOICES_ITEM"]
    assert row["INVOICE_ID"] == "10001" and isinstance(row["INVOICE_AMOUNT"], str)
    assert row["HOLD_COUNT"] == "0"
    assert row["CANCELLED_DATE"] == {"@xsi:nil": "true"}
    assert one["X_MSG_DATA"] == {"@xsi:nil": "true"} and one["X_RETURN_STATUS"] == "S"
    assert none["X_INVOICES"] == {"@xsi:nil": "true"}  # an empty PL/SQL table
    assert one["@xmlns:xsi"] == "http://www.w3.org/2001/XMLSchema-instance"
    assert isinstance(page["items"], dict) and page["hasMore"] == "true" and page["limit"] == "1"
    assert page["items"]["invoice_id"] == "10001"
    assert empty["items"] == {"@xsi:nil": "true"} and empty["hasMore"] == "false"


def test_unknown_json_style_is_refused() -> None:
    with pytest.raises(ValueError, match="json_style"):
        EbsSim(json_style="xml")  # type: ignore[arg-type]


HR_CONTEXT = {"Responsibility": "US_HRMS_MANAGER", "RespApplication": "PER"}


async def test_people_with_nested_phones_and_a_key_filter(make_sim: Callable[..., EbsSim]) -> None:
    sim = make_sim(nested_phones=True)
    async with client_for(sim) as client:
        one = out(await call(client, "get_changed_people", {"P_SINCE": "2000-01-01T00:00:00", "P_PERSON_ID": 101},
                             header=HR_CONTEXT))
        everyone = out(await call(client, "get_changed_people", {"P_SINCE": "2000-01-01T00:00:00"},
                                  header=HR_CONTEXT))
    (pat,) = rows(one, "X_PEOPLE")
    assert [p["PHONE_TYPE"] for p in pat["PHONES"]["PHONES_ITEM"]] == ["M", "W1"]
    by_id = {r["PERSON_ID"]: r for r in rows(everyone, "X_PEOPLE")}
    assert by_id[102]["PHONES"]["PHONES_ITEM"]["PHONE_TYPE"] == "M"  # one phone: a bare object
    assert by_id[106]["PHONES"] == {}  # starts tomorrow: no phone current today
    assert len(by_id) > 1


async def test_people_rows_carry_no_phones_by_default(client: httpx.AsyncClient) -> None:
    everyone = out(await call(client, "get_changed_people", {"P_SINCE": "2000-01-01T00:00:00"}, header=HR_CONTEXT))
    assert all("PHONES" not in r for r in rows(everyone, "X_PEOPLE"))


async def test_supplier_bank_account_change_surfaces_through_the_site(
        client: httpx.AsyncClient, sim: EbsSim, clock: ManualClock) -> None:
    before = out(await call(client, "get_changed_supplier_sites", {"P_SINCE": SINCE_ALL}))
    sites = {r["VENDOR_SITE_ID"]: r for r in rows(before, "X_SITES")}
    assert 7004 not in sites  # org 458: outside PAYABLES_MANAGER's operating unit
    account = sim.tables.site_account(sim.tables.sites[7003])
    assert account is not None and sites[7003]["MASKED_BANK_ACCOUNT_NUM"].endswith(account.bank_account_num[-4:])
    assert set(sites[7003]["MASKED_BANK_ACCOUNT_NUM"][:-4]) == {"X"}
    site_date = sim.tables.sites[7003].last_update_date
    clock.advance(timedelta(minutes=5))
    since = sim.now_local().strftime("%Y-%m-%dT%H:%M:%S")
    result = await client.post("/_sim/change_bank_account", json={
        "vendor_site_id": 7003, "bank_name": "Elsewhere Bank", "account_num": "99887766"})
    assert result.status_code == 200
    after = rows(out(await call(client, "get_changed_supplier_sites", {"P_SINCE": since})), "X_SITES")
    assert [(r["VENDOR_SITE_ID"], r["BANK_NAME"], r["MASKED_BANK_ACCOUNT_NUM"]) for r in after] == [
        (7003, "Elsewhere Bank", "XXXX7766")]
    assert after[0]["EXT_BANK_ACCOUNT_ID"] != sites[7003]["EXT_BANK_ACCOUNT_ID"]
    assert sim.tables.sites[7003].last_update_date == site_date  # only IBY's rows moved


async def test_supplier_site_address_change(client: httpx.AsyncClient, sim: EbsSim, clock: ManualClock) -> None:
    clock.advance(timedelta(minutes=5))
    since = sim.now_local().strftime("%Y-%m-%dT%H:%M:%S")
    sim.change_supplier_site(7001, address_line1="1 Harbor Way")
    (row,) = rows(out(await call(client, "get_changed_supplier_sites", {"P_SINCE": since})), "X_SITES")
    assert (row["VENDOR_SITE_ID"], row["ADDRESS_LINE1"], row["VENDOR_NAME"]) == (7001, "1 Harbor Way",
                                                                                  "Northwind Traders")
