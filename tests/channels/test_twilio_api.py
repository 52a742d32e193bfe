"""TwilioClient against a strict, scripted in-process Twilio: what goes on the wire, and errors."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest

from ml_connector.channels.http import AsgiTransport, ResponseLost
from ml_connector.channels.twilio_api import (
    TwilioApiError,
    TwilioClient,
    TwilioProtocolError,
    parse_retry_after,
)

AC = "AC" + "0123456789abcdef" * 2
SK = "SK" + "fedcba9876543210" * 2
MG = "MG" + "00112233445566778899aabbccddeeff"
SM = "SM" + "a" * 32
TOKEN = "auth-token-s3cret"
KEY_SECRET = "key-secret-s3cret"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
MESSAGES = f"/2010-04-01/Accounts/{AC}/Messages.json"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    raw_query: str
    headers: dict[str, str]
    form: list[tuple[str, str]]


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class FakeTwilio:
    """Answers a script of (method, path) -> Reply in order; anything else fails the test.

    Every request must carry the expected Basic credentials."""

    user: str
    password: str
    script: list[tuple[str, str, Reply]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def expect(self, method: str, path: str, reply: Reply) -> FakeTwilio:
        self.script.append((method, path, reply))
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        raw_query = scope["query_string"].decode()
        form = parse_qsl(body.decode(), keep_blank_values=True) if body else []
        self.seen.append(Seen(scope["method"], scope["path"], parse_qsl(raw_query), raw_query, headers, form))
        expected_auth = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if headers.get("authorization") != expected_auth:
            self.problems.append("bad or missing Authorization")
        if scope["method"] == "POST" and headers.get("content-type") != "application/x-www-form-urlencoded":
            self.problems.append("POST without form content type")
        if not self.script:
            self.problems.append(f"unexpected request {scope['method']} {scope['path']}")
            reply = Reply(599, {"message": "unexpected"})
        else:
            method, path, reply = self.script.pop(0)
            if (method, path) != (scope["method"], scope["path"]):
                self.problems.append(f"expected {method} {path}, got {scope['method']} {scope['path']}")
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        content_type = (
            b"content-type",
            b"text/html" if isinstance(reply.body, bytes) else b"application/json",
        )
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [content_type] + [(k.encode(), v.encode()) for k, v in reply.headers],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def verify(self) -> None:
        assert self.problems == []
        assert self.script == [], "expected requests never came"


def message(**overrides: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "sid": SM,
        "account_sid": AC,
        "to": "+15551230001",
        "from": "+15557650002",
        "body": "PO 4711 approved",
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "date_created": "Thu, 15 Jan 2026 12:00:00 +0000",
        "date_sent": None,
        "error_code": None,
        "error_message": None,
    }
    resource.update(overrides)
    return resource


@pytest.fixture
def fake() -> FakeTwilio:
    return FakeTwilio(AC, TOKEN)


@pytest.fixture
async def client(fake: FakeTwilio) -> AsyncIterator[TwilioClient]:
    c = TwilioClient(AC, auth_token=TOKEN, transport=AsgiTransport(fake), clock=lambda: NOW)
    yield c
    await c.aclose()


# --- construction -------------------------------------------------------------------------------


def test_api_key_and_token_are_exclusive() -> None:
    with pytest.raises(ValueError, match="either auth_token or api_key"):
        TwilioClient(AC, auth_token=TOKEN, api_key_sid=SK, api_key_secret=KEY_SECRET)
    with pytest.raises(ValueError, match="credentials missing"):
        TwilioClient(AC)
    with pytest.raises(ValueError, match="credentials missing"):
        TwilioClient(AC, api_key_sid=SK)


def test_bad_sids_are_refused_without_echo() -> None:
    token_like = "0123456789abcdef0123456789abcdef"
    with pytest.raises(ValueError) as info:
        TwilioClient(token_like, auth_token=TOKEN)  # token pasted into the SID field
    assert token_like not in str(info.value) and TOKEN not in str(info.value)
    assert "32-character" in str(info.value)
    with pytest.raises(ValueError, match="api_key_sid") as info:
        TwilioClient(AC, api_key_sid=KEY_SECRET, api_key_secret=KEY_SECRET)
    assert KEY_SECRET not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.twilio.com",
        "ftp://x",
        "https://user:pw@api.twilio.com",
        "https://api.twilio.com/?a=1",
        "nohost",
    ],
)
def test_base_url_must_be_safe(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        TwilioClient(AC, auth_token=TOKEN, base_url=url)


def test_plain_http_allowed_on_loopback() -> None:
    assert (
        TwilioClient(AC, auth_token=TOKEN, base_url="http://127.0.0.1:4010/").base_url
        == "http://127.0.0.1:4010"
    )


def test_repr_hides_secrets() -> None:
    for c in (
        TwilioClient(AC, auth_token=TOKEN),
        TwilioClient(AC, api_key_sid=SK, api_key_secret=KEY_SECRET),
    ):
        text = repr(c)
        assert AC in text
        assert TOKEN not in text and KEY_SECRET not in text
        assert base64.b64encode(f"{AC}:{TOKEN}".encode()).decode() not in text


# --- requests on the wire -----------------------------------------------------------------------


async def test_create_message_form_and_auth(fake: FakeTwilio, client: TwilioClient) -> None:
    fake.expect("POST", MESSAGES, Reply(201, message()))
    resource = await client.create_message(
        to="+15551230001",
        from_="+15557650002",
        body="PO 4711 approved & sent",
        media_urls=["https://cdn.example.com/a.png", "https://cdn.example.com/b.pdf?x=1&y=2"],
        status_callback="https://hooks.example.com/twilio/status?n=42",
        validity_period=600,
    )
    fake.verify()
    assert resource["sid"] == SM
    sent = fake.seen[0]
    assert sent.form == [
        ("To", "+15551230001"),
        ("From", "+15557650002"),
        ("Body", "PO 4711 approved & sent"),
        ("MediaUrl", "https://cdn.example.com/a.png"),
        ("MediaUrl", "https://cdn.example.com/b.pdf?x=1&y=2"),
        ("StatusCallback", "https://hooks.example.com/twilio/status?n=42"),
        ("ValidityPeriod", "600"),
    ]
    assert sent.headers["accept"] == "application/json"


async def test_api_key_auth_keeps_account_sid_in_url() -> None:
    fake = FakeTwilio(SK, KEY_SECRET).expect("POST", MESSAGES, Reply(201, message()))
    client = TwilioClient(AC, api_key_sid=SK, api_key_secret=KEY_SECRET, transport=AsgiTransport(fake))
    await client.create_message(to="+15551230001", messaging_service_sid=MG, body="hi")
    await client.aclose()
    fake.verify()
    assert fake.seen[0].form == [("To", "+15551230001"), ("MessagingServiceSid", MG), ("Body", "hi")]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"body": "hi"}, "needs a sender"),
        ({"from_": "+15557650002"}, "needs content"),
        ({"from_": "+15557650002", "body": ""}, "needs content"),
        ({"messaging_service_sid": "MG123", "body": "hi"}, "messaging_service_sid"),
        ({"messaging_service_sid": SK, "body": "hi"}, "messaging_service_sid"),
        ({"from_": "+1", "body": "x" * 1601}, "1601 characters"),
        ({"from_": "+1", "media_urls": ["https://e.com/x"] * 11}, "11 media"),
        ({"from_": "+1", "media_urls": ["not a url"]}, "media URL"),
        ({"from_": "+1", "body": "hi", "status_callback": "https://my_host.example.com/cb"}, "underscores"),
        ({"from_": "+1", "body": "hi", "status_callback": "/relative"}, "status_callback"),
        ({"from_": "+1", "body": "hi", "status_callback": "https://e.com/" + "a" * 4000}, "4000"),
        ({"from_": "+1", "body": "hi", "validity_period": 0}, "validity_period"),
        ({"from_": "+1", "body": "hi", "validity_period": 36001}, "validity_period"),
    ],
)
async def test_create_message_guards_before_sending(
    fake: FakeTwilio, client: TwilioClient, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        await client.create_message(to="+15551230001", **kwargs)
    assert fake.seen == []


async def test_fetch_message_and_account(fake: FakeTwilio, client: TwilioClient) -> None:
    fake.expect(
        "GET", f"/2010-04-01/Accounts/{AC}/Messages/{SM}.json", Reply(200, message(status="delivered"))
    )
    fake.expect("GET", f"/2010-04-01/Accounts/{AC}.json", Reply(200, {"sid": AC, "status": "active"}))
    assert (await client.fetch_message(SM))["status"] == "delivered"
    assert (await client.fetch_account())["status"] == "active"
    fake.verify()
    with pytest.raises(ValueError, match="message sid"):
        await client.fetch_message("SMshort")


# --- errors -------------------------------------------------------------------------------------


async def test_twilio_error_json_is_parsed_and_masked(fake: FakeTwilio, client: TwilioClient) -> None:
    fake.expect(
        "POST",
        MESSAGES,
        Reply(
            400,
            {
                "code": 21211,
                "message": "The 'To' number +15551230001 is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400,
            },
        ),
    )
    with pytest.raises(TwilioApiError) as info:
        await client.create_message(to="+15551230001", from_="+15557650002", body="hi")
    error = info.value
    assert (error.status, error.code, error.retry_after) == (400, 21211, None)
    assert error.more_info == "https://www.twilio.com/docs/errors/21211"
    assert "5551230001" not in str(error) and "5551230001" not in error.message
    assert "0001 is not a valid phone number" in error.message  # masked, still recognisable
    assert "[21211]" in str(error)


async def test_proxy_html_error(fake: FakeTwilio, client: TwilioClient) -> None:
    fake.expect("POST", MESSAGES, Reply(502, b"<html><body>Bad Gateway</body></html>"))
    with pytest.raises(TwilioApiError) as info:
        await client.create_message(to="+15551230001", from_="+15557650002", body="hi")
    assert (info.value.status, info.value.code) == (502, None)
    assert "non-JSON" in info.value.message and "text/html" in info.value.message
    assert "Bad Gateway" not in info.value.message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("Thu, 15 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 15 Jan 2026 11:00:00 GMT", 0.0),
        ("soon", None),
    ],
)
async def test_retry_after_from_429(
    fake: FakeTwilio, client: TwilioClient, header: str, expected: float
) -> None:
    body = {"code": 20429, "message": "Too Many Requests", "more_info": "", "status": 429}
    fake.expect("POST", MESSAGES, Reply(429, body, (("Retry-After", header),)))
    with pytest.raises(TwilioApiError) as info:
        await client.create_message(to="+15551230001", from_="+15557650002", body="hi")
    assert (info.value.code, info.value.retry_after) == (20429, expected)


def test_parse_retry_after_edge_cases() -> None:
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after("-3", NOW) is None
    assert parse_retry_after(" 12 ", NOW) == 12.0
    assert parse_retry_after("Thu, 15 Jan 2026 12:01:00 GMT", NOW) == 60.0


async def test_unreadable_success_body(fake: FakeTwilio, client: TwilioClient) -> None:
    fake.expect("POST", MESSAGES, Reply(201, b"<html>ok</html>"))
    fake.expect("GET", f"/2010-04-01/Accounts/{AC}.json", Reply(200, b"[1, 2]"))
    with pytest.raises(TwilioProtocolError, match="not JSON"):
        await client.create_message(to="+15551230001", from_="+15557650002", body="hi")
    with pytest.raises(TwilioProtocolError, match="not a JSON object"):
        await client.fetch_account()


async def test_transport_failure_propagates() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise ConnectionResetError("reset")

    client = TwilioClient(AC, auth_token=TOKEN, transport=AsgiTransport(broken))
    with pytest.raises(ResponseLost):
        await client.create_message(to="+15551230001", from_="+15557650002", body="hi")
    await client.aclose()


# --- paging -------------------------------------------------------------------------------------


def page(items: list[dict[str, Any]], uri: str, next_uri: str | None) -> dict[str, Any]:
    return {"messages": items, "uri": uri, "next_page_uri": next_uri, "page": 0, "page_size": 2}


async def test_list_follows_pages_with_filters(fake: FakeTwilio, client: TwilioClient) -> None:
    p2 = f"{MESSAGES}?To=%2B15551230001&PageSize=2&Page=1&PageToken=PA2"
    p3 = f"{MESSAGES}?To=%2B15551230001&PageSize=2&Page=2&PageToken=PA3"
    fake.expect("GET", MESSAGES, Reply(200, page([message(sid="SM1"), message(sid="SM2")], "first", p2)))
    fake.expect("GET", MESSAGES, Reply(200, page([message(sid="SM3")], p2, p3)))
    fake.expect("GET", MESSAGES, Reply(200, page([], p3, None)))
    sids = [
        m["sid"]
        async for m in client.list_messages(
            to="+15551230001",
            from_="+15557650002",
            date_sent=date(2026, 1, 14),
            date_sent_after=date(2026, 1, 13),
            date_sent_before=date(2026, 1, 15),
            page_size=2,
        )
    ]
    fake.verify()
    assert sids == ["SM1", "SM2", "SM3"]
    first = fake.seen[0]
    assert first.query == [
        ("To", "+15551230001"),
        ("From", "+15557650002"),
        ("DateSent", "2026-01-14T00:00:00Z"),
        ("DateSent>", "2026-01-13T00:00:00Z"),
        ("DateSent<", "2026-01-15T00:00:00Z"),
        ("PageSize", "2"),
    ]
    assert "DateSent%3E=2026-01-13" in first.raw_query  # reads as Twilio's "DateSent>=" filter
    assert fake.seen[1].query[-1] == ("PageToken", "PA2")


async def test_list_rejects_datetime_and_bad_page_size(client: TwilioClient) -> None:
    with pytest.raises(TypeError, match="date"):
        async for _ in client.list_messages(date_sent_after=NOW):
            pass
    with pytest.raises(ValueError, match="page_size"):
        async for _ in client.list_messages(page_size=1001):
            pass


async def test_list_loop_guard(fake: FakeTwilio, client: TwilioClient) -> None:
    p2 = f"{MESSAGES}?PageSize=50&Page=1&PageToken=PA2"
    fake.expect("GET", MESSAGES, Reply(200, page([message(sid="SM1")], "p1", p2)))
    fake.expect("GET", MESSAGES, Reply(200, page([message(sid="SM2")], p2, p2)))
    sids: list[str] = []
    with pytest.raises(TwilioProtocolError, match="repeats"):
        async for m in client.list_messages():
            sids.append(m["sid"])
    fake.verify()
    assert sids == ["SM1", "SM2"]


async def test_list_refuses_foreign_next_page(fake: FakeTwilio, client: TwilioClient) -> None:
    other = "/2010-04-01/Accounts/AC" + "1" * 32 + "/Messages.json?Page=1"
    fake.expect("GET", MESSAGES, Reply(200, page([], "p1", other)))
    with pytest.raises(TwilioProtocolError, match="not a page of this list"):
        async for _ in client.list_messages():
            pass
    fake.verify()


async def test_list_requires_messages_array(fake: FakeTwilio, client: TwilioClient) -> None:
    fake.expect("GET", MESSAGES, Reply(200, {"messages": {"sid": SM}}))
    with pytest.raises(TwilioProtocolError, match="messages"):
        async for _ in client.list_messages():
            pass
