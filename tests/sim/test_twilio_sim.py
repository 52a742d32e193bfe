"""The Twilio simulator against Twilio's documented wire format (reference notes + OpenAPI)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from ml_connector.sim import twilio_wire as wire
from ml_connector.sim.twilio import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_API_KEY_SECRET,
    DEFAULT_API_KEY_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_SERVICE_SID,
    Account,
    FaultRule,
    MessagingService,
    Outcome,
    SimulatedDisconnect,
    TwilioSim,
    serve,
)
from tests.support.clock import ManualClock

AC, TOKEN = DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
KEY_SID, KEY_SECRET = DEFAULT_API_KEY_SID, DEFAULT_API_KEY_SECRET
MG = DEFAULT_SERVICE_SID
OTHER_AC = "AC" + "d" * 32
OTHER_TOKEN = "0" * 32
FROM = "+15005550006"
TO = "+15551230001"
TO_B = "+15551230002"
HOOK = "https://hooks.example.com/twilio/status"
MESSAGES = f"/2010-04-01/Accounts/{AC}/Messages.json"
SPEC = Path("/work/shared/reference/twilio-oai/twilio_api_v2010.json")

# api.v2010.account.message and api.v2010.account property names (twilio_api_v2010.json).
MESSAGE_FIELDS = {
    "body",
    "num_segments",
    "direction",
    "from",
    "to",
    "date_updated",
    "price",
    "error_message",
    "uri",
    "account_sid",
    "num_media",
    "status",
    "messaging_service_sid",
    "sid",
    "date_sent",
    "date_created",
    "error_code",
    "price_unit",
    "api_version",
    "subresource_uris",
}
ACCOUNT_FIELDS = {
    "auth_token",
    "date_created",
    "date_updated",
    "friendly_name",
    "owner_account_sid",
    "sid",
    "status",
    "subresource_uris",
    "type",
    "uri",
}
LIST_FIELDS = {
    "end",
    "first_page_uri",
    "next_page_uri",
    "page",
    "page_size",
    "previous_page_uri",
    "start",
    "uri",
    "messages",
}


# ---------------------------------------------------------------- helpers


@dataclass
class Hook:
    """A status-callback receiver: records every POST; answers from a script, then 200."""

    script: list[int] = field(default_factory=list)
    received: list[tuple[str, dict[str, str], httpx.Headers]] = field(default_factory=list)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = httpx.Headers([(k.decode(), v.decode()) for k, v in scope["headers"]])
        self.received.append((scope["path"], dict(parse_qsl(body.decode())), headers))
        status = self.script.pop(0) if self.script else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    @property
    def statuses(self) -> list[str]:
        return [params["MessageStatus"] for _, params, _ in self.received]


def make_sim(hook: Hook | None = None, **kwargs: Any) -> TwilioSim:
    kwargs.setdefault("callback_delay", (0.0, 0.0))
    if hook is not None:
        kwargs.setdefault("callback_transport", httpx.ASGITransport(app=hook))
    return TwilioSim(**kwargs)


def client_for(sim: TwilioSim, auth: tuple[str, str] | None = (AC, TOKEN)) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.create_app()), base_url="https://api.twilio.com", auth=auth
    )


@pytest.fixture
async def hook() -> Hook:
    return Hook()


@pytest.fixture
async def sim(hook: Hook) -> AsyncIterator[TwilioSim]:
    simulator = make_sim(hook)
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def api(sim: TwilioSim) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(sim) as client:
        yield client


async def send(api: httpx.AsyncClient, **form: Any) -> httpx.Response:
    data = {"To": TO, "From": FROM, "Body": "PO 4711 approved", **form}
    return await api.post(MESSAGES, data={k: v for k, v in data.items() if v is not None})


def assert_error(response: httpx.Response, status: int, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["code"] == code
    assert body["status"] == status
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert isinstance(body["message"], str) and body["message"]


# ---------------------------------------------------------------- auth


async def test_account_sid_and_auth_token_authenticate(api: httpx.AsyncClient) -> None:
    assert (await send(api)).status_code == 201


async def test_api_key_authenticates_for_its_account(sim: TwilioSim) -> None:
    async with client_for(sim, (KEY_SID, KEY_SECRET)) as client:
        response = await send(client)
        account = await client.get(f"/2010-04-01/Accounts/{AC}.json")
    assert response.status_code == 201
    assert response.json()["account_sid"] == AC
    assert account.status_code == 200
    assert account.json()["auth_token"] is None


@pytest.mark.parametrize(
    "auth",
    [
        None,
        (AC, "wrong-tökén"),
        (KEY_SID, "wrong-secret"),
        ("SK" + "9" * 32, KEY_SECRET),
        (OTHER_AC, OTHER_TOKEN),
    ],
    ids=["missing", "bad-token", "bad-key-secret", "unknown-key", "other-account-creds"],
)
async def test_bad_credentials_get_20003(auth: tuple[str, str] | None) -> None:
    sim = make_sim(accounts=(Account(), Account(sid=OTHER_AC, auth_token=OTHER_TOKEN)))
    async with client_for(sim, auth) as client:
        response = await send(client)
    assert_error(response, 401, 20003)
    assert response.json()["message"] == "Authentication Error - invalid username"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert TOKEN not in response.text
    assert sim.messages() == []


async def test_unknown_account_in_url_with_valid_credentials_gets_20003(api: httpx.AsyncClient) -> None:
    response = await api.post(f"/2010-04-01/Accounts/{OTHER_AC}/Messages.json", data={"To": TO})
    assert_error(response, 401, 20003)


async def test_api_key_of_another_account_gets_20003() -> None:
    sim = make_sim(accounts=(Account(), Account(sid=OTHER_AC, auth_token=OTHER_TOKEN)))
    async with client_for(sim, (KEY_SID, KEY_SECRET)) as client:
        response = await client.get(f"/2010-04-01/Accounts/{OTHER_AC}/Messages.json")
    assert_error(response, 401, 20003)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": None}, 21604),
        ({"From": None}, 21603),
        ({"Body": None}, 21602),
        ({"Body": ""}, 21602),
        ({"To": "5551230001"}, 21211),
        ({"To": "+0123"}, 21211),
        ({"To": FROM}, 21211),
        ({"From": "not a sender!"}, 21212),
        ({"From": "+15559999999"}, 21606),
        ({"Body": "x" * 1601}, 21617),
        ({"MessagingServiceSid": "MG123", "From": None}, 21705),
        ({"MessagingServiceSid": "MG" + "e" * 32, "From": None}, 21701),
        ({"StatusCallback": "ftp://hooks.example.com/cb"}, 21609),
        ({"StatusCallback": "https://bad_host.example.com/cb"}, 21609),
        ({"StatusCallback": "not a url"}, 21609),
        ({"StatusCallback": "https://hooks.example.com/" + "x" * 4000}, 21609),
        ({"ValidityPeriod": "0"}, 21624),
        ({"ValidityPeriod": "36001"}, 21624),
        ({"ValidityPeriod": "ten"}, 21624),
        ({"MediaUrl": [f"https://img.example.com/{i}.png" for i in range(11)]}, 21623),
        ({"To": "+15005550001"}, 21211),
        ({"To": "+15005550002"}, 21612),
        ({"To": "+15005550003"}, 21408),
        ({"To": "+15005550004"}, 21610),
        ({"To": "+15005550009"}, 21614),
        ({"From": "+15005550001"}, 21212),
        ({"From": "+15005550007"}, 21606),
        ({"From": "+15005550008"}, 21611),
    ],
)
async def test_create_validation_codes(
    api: httpx.AsyncClient, sim: TwilioSim, form: dict[str, Any], code: int
) -> None:
    response = await send(api, **form)
    assert_error(response, 400, code)
    assert sim.messages() == []


async def test_limits_themselves_are_accepted(api: httpx.AsyncClient) -> None:
    response = await send(
        api,
        Body="x" * 1600,
        ValidityPeriod="36000",
        StatusCallback=HOOK,
        MediaUrl=[f"https://img.example.com/{i}.png" for i in range(10)],
    )
    assert response.status_code == 201
    assert response.json()["num_media"] == "10"
    assert response.json()["sid"].startswith("MM")


async def test_json_body_carries_no_parameters(api: httpx.AsyncClient) -> None:
    response = await api.post(MESSAGES, json={"To": TO, "From": FROM, "Body": "hi"})
    assert_error(response, 400, 21604)


async def test_runtime_rejection_outcome(api: httpx.AsyncClient, sim: TwilioSim) -> None:
    sim.set_outcome(TO_B, Outcome(status="rejected", error_code=21610))
    assert_error(await send(api, To=TO_B), 400, 21610)
    assert (await send(api)).status_code == 201


def test_outcome_requires_matching_error_code() -> None:
    with pytest.raises(ValueError):
        Outcome(status="undelivered")
    with pytest.raises(ValueError):
        Outcome(status="delivered", error_code=30003)
    with pytest.raises(ValueError):
        Outcome(status="rejected", error_code=30003)


# ---------------------------------------------------------------- resources


def _spec_properties(schema: str) -> set[str] | None:
    if not SPEC.exists():
        return None
    spec = json.loads(SPEC.read_text())
    return set(spec["components"]["schemas"][schema]["properties"])


async def test_created_message_has_the_spec_shape(api: httpx.AsyncClient) -> None:
    response = await send(api, Body="Hello")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == MESSAGE_FIELDS
    assert _spec_properties("api.v2010.account.message") in (None, MESSAGE_FIELDS)
    assert re.fullmatch(r"SM[0-9a-f]{32}", body["sid"])
    assert body | {"sid": "", "date_created": "", "date_updated": "", "uri": "", "subresource_uris": {}} == {
        "account_sid": AC,
        "api_version": "2010-04-01",
        "body": "Hello",
        "date_created": "",
        "date_sent": None,
        "date_updated": "",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": FROM,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": None,
        "sid": "",
        "status": "queued",
        "subresource_uris": {},
        "to": TO,
        "uri": "",
    }
    assert body["uri"] == f"/2010-04-01/Accounts/{AC}/Messages/{body['sid']}.json"
    assert body["subresource_uris"]["media"] == f"/2010-04-01/Accounts/{AC}/Messages/{body['sid']}/Media.json"
    assert parsedate_to_datetime(body["date_created"]).tzinfo is not None
    assert body["date_created"].endswith(" +0000")


async def test_account_fetch_has_the_spec_shape(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/2010-04-01/Accounts/{AC}.json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == ACCOUNT_FIELDS
    assert _spec_properties("api.v2010.account") in (None, ACCOUNT_FIELDS)
    assert (body["sid"], body["status"], body["type"]) == (AC, "active", "Full")
    assert body["uri"] == f"/2010-04-01/Accounts/{AC}.json"


async def test_fetch_message_and_unknown_sid(api: httpx.AsyncClient) -> None:
    sid = (await send(api)).json()["sid"]
    fetched = await api.get(f"/2010-04-01/Accounts/{AC}/Messages/{sid}.json")
    assert fetched.status_code == 200 and fetched.json()["sid"] == sid
    missing = await api.get(f"/2010-04-01/Accounts/{AC}/Messages/SM{'0' * 32}.json")
    assert_error(missing, 404, 20404)


async def test_unknown_route_and_method(api: httpx.AsyncClient) -> None:
    assert_error(await api.get(f"/2010-04-01/Accounts/{AC}/Nope.json"), 404, 20404)
    assert_error(await api.delete(MESSAGES), 405, 20004)


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("é" * 160, 1),
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("ж" * 134, 2),
        ("ж" * 135, 3),
        ("😀" * 35, 1),
        ("😀" * 36, 2),
    ],
)
def test_segment_counting(body: str, segments: int) -> None:
    assert wire.count_segments(body) == segments


async def test_num_segments_on_the_resource(api: httpx.AsyncClient) -> None:
    assert (await send(api, Body="ж" * 71)).json()["num_segments"] == "2"


async def test_messaging_service_without_from_is_accepted_then_gets_a_pool_sender(
    api: httpx.AsyncClient, sim: TwilioSim, hook: Hook
) -> None:
    response = await send(api, From=None, MessagingServiceSid=MG, StatusCallback=HOOK)
    body = response.json()
    assert response.status_code == 201
    assert (body["status"], body["from"], body["num_segments"], body["messaging_service_sid"]) == (
        "accepted",
        None,
        "0",
        MG,
    )
    await sim.drain()
    final = (await api.get(f"/2010-04-01/Accounts/{AC}/Messages/{body['sid']}.json")).json()
    assert final["status"] == "delivered"
    assert final["from"] in MessagingService().pool
    assert final["num_segments"] == "1"
    assert hook.statuses == ["queued", "sent", "delivered"]
    assert all(params["MessagingServiceSid"] == MG for _, params, _ in hook.received)


async def test_service_status_callback_applies_when_message_has_none() -> None:
    hook = Hook()
    service = MessagingService(status_callback="https://hooks.example.com/service")
    sim = make_sim(hook, services=(service,))
    async with client_for(sim) as api:
        await send(api, MessagingServiceSid=MG)
        await sim.drain()
    assert [path for path, _, _ in hook.received] == ["/service", "/service"]
    await sim.aclose()


# ---------------------------------------------------------------- list


async def test_list_filters_by_to_and_walks_pages(api: httpx.AsyncClient) -> None:
    sids_a = []
    for i in range(7):
        sids_a.append((await send(api, Body=f"a{i}")).json()["sid"])
        await send(api, To=TO_B, Body=f"b{i}")
    first = await api.get(MESSAGES, params={"To": TO, "PageSize": 3})
    page = first.json()
    assert first.status_code == 200 and set(page) == LIST_FIELDS
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 3, 0, 2)
    assert page["previous_page_uri"] is None
    seen, pages, uri = [], [], first.request.url.raw_path.decode()
    while uri:
        page = (await api.get(uri)).json()
        pages.append(page)
        seen += [m["sid"] for m in page["messages"]]
        assert all(m["to"] == TO for m in page["messages"])
        uri = page["next_page_uri"]
        assert len(pages) < 10
    assert seen == list(reversed(sids_a))
    assert [len(p["messages"]) for p in pages] == [3, 3, 1]
    assert pages[-1]["next_page_uri"] is None
    assert pages[1]["start"] == 3
    back = (await api.get(pages[1]["previous_page_uri"])).json()
    assert [m["sid"] for m in back["messages"]] == [m["sid"] for m in pages[0]["messages"]]
    assert "To=%2B15551230001" in pages[0]["first_page_uri"]


async def test_list_default_page_size_and_newest_first(api: httpx.AsyncClient) -> None:
    sids = [(await send(api)).json()["sid"] for _ in range(3)]
    page = (await api.get(MESSAGES)).json()
    assert page["page_size"] == 50
    assert [m["sid"] for m in page["messages"]] == sids[::-1]


async def test_list_filters_by_from(api: httpx.AsyncClient) -> None:
    await send(api)
    other = (await send(api, From="+15017122661")).json()["sid"]
    page = (await api.get(MESSAGES, params={"From": "+15017122661"})).json()
    assert [m["sid"] for m in page["messages"]] == [other]


async def test_list_date_sent_filters_are_inclusive() -> None:
    clock = ManualClock(datetime(2025, 3, 4, 10, 0, tzinfo=UTC))
    sim = make_sim(clock=clock)
    sim.set_outcome("+15551239999", Outcome(status="failed", error_code=30006, via_sent=False))
    async with client_for(sim) as api:
        day1 = (await send(api, Body="d1")).json()["sid"]
        await sim.drain()
        clock.now += timedelta(days=1)
        day2 = (await send(api, Body="d2")).json()["sid"]
        await send(api, To="+15551239999")  # never sent: no date_sent
        await sim.drain()

        async def sids(**params: str) -> list[str]:
            response = await api.get(MESSAGES, params=params)
            assert response.status_code == 200, response.text
            return [m["sid"] for m in response.json()["messages"]]

        assert await sids(**{"DateSent": "2025-03-04"}) == [day1]
        assert await sids(**{"DateSent<": "2025-03-04"}) == [day1]
        assert await sids(**{"DateSent>": "2025-03-04"}) == [day2, day1]
        assert await sids(**{"DateSent>": "2025-03-05"}) == [day2]
        assert await sids(**{"DateSent>": "2025-03-06"}) == []
        assert len(await sids()) == 3
        raw = await api.get(MESSAGES + "?DateSent>=2025-03-05")
        assert [m["sid"] for m in raw.json()["messages"]] == [day2]
        assert "DateSent%3E=2025-03-05" in raw.json()["uri"]
    await sim.aclose()


@pytest.mark.parametrize(
    "params", [{"PageSize": "0"}, {"PageSize": "1001"}, {"DateSent": "yesterday"}, {"PageToken": "PAnope"}]
)
async def test_list_rejects_bad_parameters(api: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await api.get(MESSAGES, params=params)
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "more_info", "status"}


# ---------------------------------------------------------------- callbacks


def test_signature_matches_twilio_test_vector() -> None:
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
    assert wire.signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) == (
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )


async def test_callbacks_are_signed_ordered_and_update_the_resource(
    api: httpx.AsyncClient, sim: TwilioSim, hook: Hook
) -> None:
    sid = (await send(api, StatusCallback=HOOK)).json()["sid"]
    await sim.drain()
    assert hook.statuses == ["sent", "delivered"]
    validator = RequestValidator(TOKEN)
    for path, params, headers in hook.received:
        assert path == "/twilio/status"
        assert headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert validator.validate(HOOK, params, headers["x-twilio-signature"])
        assert not validator.validate(HOOK, {**params, "To": TO_B}, headers["x-twilio-signature"])
    sent, delivered = (params for _, params, _ in hook.received)
    assert sent == {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "sent",
        "MessageStatus": "sent",
        "AccountSid": AC,
        "From": FROM,
        "To": TO,
        "ApiVersion": "2010-04-01",
    }
    assert re.fullmatch(r"\d{10}", delivered.pop("RawDlrDoneDate"))
    assert delivered == sent | {"SmsStatus": "delivered", "MessageStatus": "delivered"}
    final = (await api.get(f"/2010-04-01/Accounts/{AC}/Messages/{sid}.json")).json()
    assert final["status"] == "delivered"
    assert final["date_sent"] is not None and final["price"] == "-0.00790" and final["price_unit"] == "USD"
    record = sim.message(sid)
    assert [s.status for s in record.statuses] == ["queued", "sent", "delivered"]
    assert [(c.status, c.attempt, c.ok) for c in record.callbacks] == [
        ("sent", 1, True),
        ("delivered", 1, True),
    ]


async def test_message_created_with_api_key_is_signed_with_auth_token(sim: TwilioSim, hook: Hook) -> None:
    async with client_for(sim, (KEY_SID, KEY_SECRET)) as client:
        await send(client, StatusCallback=HOOK)
    await sim.drain()
    assert len(hook.received) == 2
    for _, params, headers in hook.received:
        assert RequestValidator(TOKEN).validate(HOOK, params, headers["x-twilio-signature"])


async def test_no_callback_without_status_callback(
    api: httpx.AsyncClient, sim: TwilioSim, hook: Hook
) -> None:
    sid = (await send(api)).json()["sid"]
    await sim.drain()
    assert hook.received == []
    assert sim.message(sid).status == "delivered"


async def test_undelivered_number_reports_error_code(
    api: httpx.AsyncClient, sim: TwilioSim, hook: Hook
) -> None:
    sim.set_outcome(TO_B, Outcome(status="undelivered", error_code=30003))
    sid = (await send(api, To=TO_B, StatusCallback=HOOK)).json()["sid"]
    await sim.drain()
    assert hook.statuses == ["sent", "undelivered"]
    last = hook.received[-1][1]
    assert last["ErrorCode"] == "30003" and "RawDlrDoneDate" in last
    assert "ErrorCode" not in hook.received[0][1]
    final = (await api.get(f"/2010-04-01/Accounts/{AC}/Messages/{sid}.json")).json()
    assert (final["status"], final["error_code"], final["error_message"]) == (
        "undelivered",
        30003,
        "Unreachable destination handset",
    )


async def test_failed_without_sent(api: httpx.AsyncClient, sim: TwilioSim, hook: Hook) -> None:
    sim.set_outcome(TO_B, Outcome(status="failed", error_code=30006, via_sent=False))
    await send(api, To=TO_B, StatusCallback=HOOK)
    await sim.drain()
    assert hook.statuses == ["failed"]
    assert hook.received[0][1]["ErrorCode"] == "30006"
    assert "RawDlrDoneDate" not in hook.received[0][1]


async def test_callback_5xx_is_retried_once_and_recorded(
    api: httpx.AsyncClient, sim: TwilioSim, hook: Hook
) -> None:
    hook.script = [503, 500]
    sid = (await send(api, StatusCallback=HOOK)).json()["sid"]
    await sim.drain()
    attempts = [(c.status, c.attempt, c.result, c.ok) for c in sim.message(sid).callbacks]
    assert attempts == [("sent", 1, "503", False), ("sent", 2, "500", False), ("delivered", 1, "200", True)]
    tokens = {c.idempotency_token for c in sim.message(sid).callbacks if c.status == "sent"}
    assert len(tokens) == 1


async def test_callback_4xx_is_not_retried(api: httpx.AsyncClient, sim: TwilioSim, hook: Hook) -> None:
    hook.script = [403]
    sid = (await send(api, StatusCallback=HOOK)).json()["sid"]
    await sim.drain()
    assert [(c.status, c.result) for c in sim.message(sid).callbacks] == [
        ("sent", "403"),
        ("delivered", "200"),
    ]


async def test_callback_connection_failure_retry_count_follows_rc_override() -> None:
    calls: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        raise httpx.ConnectError("connection refused", request=request)

    sim = make_sim(callback_transport=httpx.MockTransport(refuse))
    async with client_for(sim) as api:
        default = (await send(api, StatusCallback=HOOK)).json()["sid"]
        await sim.drain()
        overridden = (await send(api, StatusCallback=HOOK + "#rc=0")).json()["sid"]
        await sim.drain()
    assert [(c.attempt, c.result, c.ok) for c in sim.message(default).callbacks] == [
        (1, "ConnectError", False),
        (2, "ConnectError", False),
        (1, "ConnectError", False),
        (2, "ConnectError", False),
    ]
    assert [c.attempt for c in sim.message(overridden).callbacks] == [1, 1]
    assert all("#" not in url for url in calls)
    assert sim.message(default).status == "delivered"
    await sim.aclose()


# ---------------------------------------------------------------- faults


async def test_429_for_the_next_request_with_retry_after(api: httpx.AsyncClient, sim: TwilioSim) -> None:
    sim.set_faults([FaultRule(action="429", operation="create_message", count=1, retry_after=2)])
    limited = await send(api)
    assert_error(limited, 429, 20429)
    assert limited.headers["retry-after"] == "2"
    assert sim.messages() == []
    assert (await send(api)).status_code == 201
    assert len(sim.messages()) == 1


async def test_429_without_retry_after_and_other_operations_untouched(
    api: httpx.AsyncClient, sim: TwilioSim
) -> None:
    sim.set_faults([FaultRule(action="429", operation="create_message")])
    limited = await send(api)
    assert_error(limited, 429, 20429)
    assert "retry-after" not in limited.headers
    assert (await api.get(MESSAGES)).status_code == 200


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503)])
async def test_5xx_json(api: httpx.AsyncClient, sim: TwilioSim, status: int, code: int) -> None:
    sim.set_faults([FaultRule(action="5xx", status=status)])
    assert_error(await send(api), status, code)
    assert sim.messages() == []


async def test_502_is_an_html_page(api: httpx.AsyncClient, sim: TwilioSim) -> None:
    sim.set_faults([FaultRule(action="5xx", status=502, every_nth=2)])
    statuses = [(await send(api)).status_code for _ in range(4)]
    assert statuses == [201, 502, 201, 502]
    response = await send(api)
    assert response.status_code == 201
    failed = await send(api)
    assert failed.headers["content-type"].startswith("text/html")


def test_fault_rule_validation() -> None:
    for bad in (
        {"action": "explode"},
        {"action": "429", "operation": "delete_everything"},
        {"action": "429", "count": 1, "every_nth": 2},
        {"action": "429", "probability": 1.5},
        {"action": "5xx", "status": 504},
    ):
        with pytest.raises(ValueError):
            FaultRule(**bad)


async def test_latency_is_async_and_adds_up() -> None:
    slept: list[float] = []
    inside, release = 0, asyncio.Event()

    async def sleep(seconds: float) -> None:
        nonlocal inside
        slept.append(seconds)
        inside += 1
        if inside == 20:
            release.set()
        await release.wait()

    sim = make_sim(latency=0.15, sleep=sleep)
    sim.set_faults([FaultRule(action="latency", operation="create_message", seconds=0.1)])
    async with client_for(sim) as api:
        responses = await asyncio.wait_for(asyncio.gather(*(send(api) for _ in range(20))), timeout=10)
        await api.get(MESSAGES)
    assert [r.status_code for r in responses] == [201] * 20
    assert slept[:20] == [pytest.approx(0.25)] * 20
    assert slept[20] == pytest.approx(0.15)
    await sim.aclose()


async def test_timeout_hangs_without_creating_the_message(api: httpx.AsyncClient, sim: TwilioSim) -> None:
    sim.set_faults([FaultRule(action="timeout", count=1, seconds=60)])
    request = asyncio.ensure_future(send(api))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(request), timeout=0.05)
    assert sim.messages() == []
    sim.release_hangs()
    with pytest.raises(httpx.RemoteProtocolError):
        await asyncio.wait_for(request, timeout=10)
    assert sim.messages() == []
    assert (await send(api)).status_code == 201


async def test_drop_after_accept_in_process(api: httpx.AsyncClient, sim: TwilioSim, hook: Hook) -> None:
    sim.set_faults([FaultRule(action="drop_after_accept", count=1)])
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await send(api, StatusCallback=HOOK)
    assert isinstance(caught.value, SimulatedDisconnect)
    (record,) = sim.messages()
    await sim.drain()
    assert sim.message(record.sid).status == "delivered"
    assert hook.statuses == ["sent", "delivered"]
    listed = (await api.get(MESSAGES, params={"To": TO})).json()["messages"]
    assert [m["sid"] for m in listed] == [record.sid]


async def test_callbacks_out_of_order(api: httpx.AsyncClient, sim: TwilioSim, hook: Hook) -> None:
    sim.set_faults([FaultRule(action="callbacks_out_of_order", count=1)])
    first = (await send(api, StatusCallback=HOOK)).json()["sid"]
    await sim.drain()
    await send(api, StatusCallback=HOOK)
    await sim.drain()
    assert hook.statuses == ["delivered", "sent", "sent", "delivered"]
    assert sim.message(first).status == "delivered"


async def test_callbacks_duplicated(api: httpx.AsyncClient, sim: TwilioSim, hook: Hook) -> None:
    sim.set_faults([FaultRule(action="callbacks_duplicated")])
    sid = (await send(api, StatusCallback=HOOK)).json()["sid"]
    await sim.drain()
    assert hook.statuses == ["sent", "sent", "delivered", "delivered"]
    assert hook.received[0][1] == hook.received[1][1]
    tokens = [h["i-twilio-idempotency-token"] for _, _, h in hook.received]
    assert len(set(tokens)) == 4
    assert len(sim.message(sid).callbacks) == 4


async def _run_seeded(seed: int) -> tuple[list[int], list[str]]:
    sim = make_sim(seed=seed)
    sim.set_faults([FaultRule(action="429", operation="create_message", probability=0.5)])
    async with client_for(sim) as api:
        statuses = [(await send(api)).status_code for _ in range(24)]
    sids = [r.sid for r in sim.messages()]
    await sim.aclose()
    return statuses, sids


async def test_seeded_fault_plans_replay_but_sids_are_never_reused() -> None:
    """A restarted simulator with the same seed replays its faults, yet hands out new SIDs: real
    Twilio never reuses one, and a reused SID makes a new message's callback look like a duplicate."""
    first, again, other = await _run_seeded(7), await _run_seeded(7), await _run_seeded(8)
    assert first[0] == again[0]
    assert set(first[0]) == {201, 429}
    assert other[0] != first[0]
    assert len(first[1]) == first[0].count(201)
    assert not set(first[1]) & set(again[1])
    assert all(re.fullmatch(r"SM[0-9a-f]{32}", sid) for sid in first[1] + again[1])


# ---------------------------------------------------------------- control API


async def test_control_api_over_http(api: httpx.AsyncClient, sim: TwilioSim) -> None:
    assert (await api.get("/_sim/health")).json()["status"] == "ok"
    faults = await api.post("/_sim/faults", json={"seed": 3, "rules": [{"action": "429", "count": 1}]})
    assert faults.status_code == 200
    assert (await send(api)).status_code == 429
    outcome = await api.post(
        "/_sim/outcomes", json={"outcomes": {TO_B: {"status": "failed", "error_code": 30006}}}
    )
    assert outcome.status_code == 200
    await send(api, To=TO_B)
    await sim.drain()
    (listed,) = (await api.get("/_sim/messages")).json()["messages"]
    assert listed["status"] == "failed" and listed["error_code"] == 30006
    assert [s["status"] for s in listed["statuses"]] == ["queued", "sent", "failed"]
    assert (await api.post("/_sim/latency", json={"seconds": 0})).status_code == 200
    assert (await api.post("/_sim/faults", json={"rules": [{"action": "boom"}]})).status_code == 400
    assert (await api.post("/_sim/faults", content=b"{not json")).status_code == 400
    assert (await api.post("/_sim/outcomes", json={"outcomes": {TO: {"status": "lost"}}})).status_code == 400
    assert (await api.post("/_sim/reset")).status_code == 200
    assert (await api.get("/_sim/messages")).json()["messages"] == []
    assert (await send(api, To=TO_B)).status_code == 201


async def test_reset_restores_magic_numbers_but_not_old_sids(api: httpx.AsyncClient, sim: TwilioSim) -> None:
    sim.set_outcome("+15005550004", Outcome())
    first_sid = (await send(api)).json()["sid"]
    sim.reset()
    assert_error(await send(api, To="+15005550004"), 400, 21610)
    assert (await send(api)).json()["sid"] != first_sid


async def test_naive_clock_is_rejected() -> None:
    sim = make_sim(clock=lambda: datetime(2025, 1, 1))  # noqa: DTZ001 - the point of the test
    async with client_for(sim) as api:
        with pytest.raises(ValueError, match="timezone-aware"):
            await send(api)


# ---------------------------------------------------------------- over real HTTP (uvicorn on loopback)


async def test_over_loopback_create_fetch_and_drop(hook: Hook) -> None:
    sim = make_sim(hook)
    async with serve(sim) as base_url, httpx.AsyncClient(base_url=base_url, auth=(AC, TOKEN)) as api:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        created = await send(api, StatusCallback=HOOK)
        assert created.status_code == 201
        fetched = await api.get(f"/2010-04-01/Accounts/{AC}/Messages/{created.json()['sid']}.json")
        assert fetched.json()["sid"] == created.json()["sid"]
        sim.set_faults([FaultRule(action="drop_after_accept", count=1)])
        with pytest.raises(httpx.RemoteProtocolError):
            await send(api, Body="dropped")
        assert [r.resource["body"] for r in sim.messages()] == ["PO 4711 approved", "dropped"]
        sim.set_faults([FaultRule(action="timeout", count=1, seconds=60)])
        with pytest.raises(httpx.ReadTimeout):
            await api.post(MESSAGES, data={"To": TO, "From": FROM, "Body": "late"}, timeout=0.3)
        assert len(sim.messages()) == 2
        assert (await send(api)).status_code == 201
        await sim.drain()
    assert hook.statuses == ["sent", "delivered"]
    await sim.aclose()


async def test_twilio_python_reads_the_simulator_over_loopback() -> None:
    sim = make_sim()
    async with serve(sim) as base_url:

        def with_twilio_python() -> tuple[str, str, int | None]:
            client = Client(AC, TOKEN)
            client.api.base_url = base_url
            message = client.messages.create(to=TO, from_=FROM, body="hello")
            try:
                client.messages.create(to="+15005550001", from_=FROM, body="hello")
            except TwilioRestException as exc:
                return message.sid, message.status, exc.code
            return message.sid, message.status, None

        sid, status, code = await asyncio.wait_for(asyncio.to_thread(with_twilio_python), timeout=30)
    assert (status, code) == ("queued", 21211)
    assert sim.message(sid).to == TO
    await sim.aclose()


async def test_serve_handles_concurrent_requests() -> None:
    sim = make_sim()
    credentials = base64.b64encode(f"{AC}:{TOKEN}".encode()).decode()
    form = {"To": TO, "From": FROM, "Body": "PO 4711 approved"}
    gate = asyncio.Semaphore(64)

    async def create(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
        async with gate, session.post(url, data=form) as response:
            return response.status, (await response.json())["sid"]

    async with (
        serve(sim) as base_url,
        aiohttp.ClientSession(headers={"Authorization": f"Basic {credentials}"}) as session,
    ):
        url = base_url + MESSAGES
        results = await asyncio.wait_for(
            asyncio.gather(*(create(session, url) for _ in range(600))), timeout=60
        )
        await sim.drain()
    assert {status for status, _ in results} == {201}
    assert len({sid for _, sid in results}) == 600
    assert {r.status for r in sim.messages()} == {"delivered"}
    await sim.aclose()
