"""SmsChannel: senders, SendResult, error classes, reconciliation and status fetch."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx
import pytest

from ml_connector.channels.base import Channel
from ml_connector.channels.http import HttpxTransport
from ml_connector.channels.sms import SenderRef, SmsChannel
from ml_connector.channels.twilio_api import TwilioClient
from ml_connector.core.models import OutboundMessage, SendResult
from ml_connector.errors import AccountError, InDoubtError, PermanentError, TransientError

AC = "AC" + "0123456789abcdef" * 2
MG = "MG" + "00112233445566778899aabbccddeeff"
TOKEN = "tok-s3cret"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
MESSAGES = f"/2010-04-01/Accounts/{AC}/Messages.json"
TO = "+15551230001"
FROM = "+15557650002"


def sid(n: int) -> str:
    return f"SM{n:032x}"


def rfc2822(when: datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


def resource(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "sid": sid(1),
        "account_sid": AC,
        "to": TO,
        "from": FROM,
        "messaging_service_sid": None,
        "body": "PO 4711 approved",
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "date_created": rfc2822(NOW),
        "date_sent": None,
        "error_code": None,
        "error_message": None,
    }
    value.update(overrides)
    return value


Responder = Callable[[httpx.Request], httpx.Response]


@dataclass
class Script:
    """A strict MockTransport handler: each request must match the next expected step."""

    steps: list[tuple[str, str, Responder]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def expect(self, method: str, path: str, respond: Responder) -> Script:
        self.steps.append((method, path, respond))
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.steps, f"unexpected request {request.method} {request.url.path}"
        method, path, respond = self.steps.pop(0)
        assert (request.method, request.url.path) == (method, path)
        return respond(request)

    def done(self) -> None:
        assert self.steps == [], "expected requests never came"


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Responder:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=content, headers=headers)


def form(request: httpx.Request) -> list[tuple[str, str]]:
    return parse_qsl(request.content.decode())


def msg(**overrides: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "notification_id": 7,
        "account": "main",
        "to": TO,
        "sender": FROM,
        "body": "PO 4711 approved",
        "status_callback": "https://hooks.example.com/status?n=7",
    }
    values.update(overrides)
    return OutboundMessage(**values)


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
async def channel(script: Script) -> AsyncIterator[SmsChannel]:
    client = TwilioClient(AC, auth_token=TOKEN, transport=HttpxTransport(httpx.MockTransport(script)))
    yield SmsChannel(
        client,
        senders={
            "ops": SenderRef(messaging_service_sid=MG),
            "pinned": SenderRef(from_=FROM, messaging_service_sid=MG),
        },
        clock=lambda: NOW,
    )
    await client.aclose()


def test_is_a_channel(channel: SmsChannel) -> None:
    assert isinstance(channel, Channel)


# --- senders ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+15557650002", SenderRef(from_="+15557650002")),
        ("54321", SenderRef(from_="54321")),
        ("ACME Corp", SenderRef(from_="ACME Corp")),
        ("whatsapp:+15557650002", SenderRef(from_="whatsapp:+15557650002")),
        (MG, SenderRef(messaging_service_sid=MG)),
    ],
)
def test_sender_by_pattern(value: str, expected: SenderRef) -> None:
    assert SenderRef.parse(value) == expected


@pytest.mark.parametrize(
    "value", ["", "+1 555 765 0002", "+0123", "12", "TwelveChars1", "MG" + "z" * 32, "1234567890"]
)
def test_bad_senders(value: str) -> None:
    with pytest.raises(ValueError, match="sender"):
        SenderRef.parse(value)


# --- send ---------------------------------------------------------------------------------------


async def test_send_with_from(channel: SmsChannel, script: Script) -> None:
    script.expect("POST", MESSAGES, reply(201, resource(num_segments="2")))
    result = await channel.send(msg(validity_period=900))
    script.done()
    assert result == SendResult(provider_id=sid(1), provider_status="queued", segments=2)
    assert form(script.requests[0]) == [
        ("To", TO),
        ("From", FROM),
        ("Body", "PO 4711 approved"),
        ("StatusCallback", "https://hooks.example.com/status?n=7"),
        ("ValidityPeriod", "900"),
    ]


async def test_send_with_named_messaging_service(channel: SmsChannel, script: Script) -> None:
    script.expect(
        "POST", MESSAGES, reply(201, resource(status="accepted", num_segments="0", messaging_service_sid=MG))
    )
    result = await channel.send(msg(sender="ops", status_callback=None))
    assert (result.provider_status, result.segments) == ("accepted", 0)
    assert form(script.requests[0]) == [("To", TO), ("MessagingServiceSid", MG), ("Body", "PO 4711 approved")]


async def test_send_media_only_with_pool_sender(channel: SmsChannel, script: Script) -> None:
    script.expect("POST", MESSAGES, reply(201, resource(sid="MM" + "b" * 32)))
    await channel.send(
        msg(sender="pinned", body="", media_urls=("https://cdn.example.com/po.pdf",), status_callback=None)
    )
    assert form(script.requests[0]) == [
        ("To", TO),
        ("From", FROM),
        ("MessagingServiceSid", MG),
        ("MediaUrl", "https://cdn.example.com/po.pdf"),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"sender": "not a sender!"},
        {"body": ""},
        {"status_callback": "https://under_score.example.com/cb"},
        {"validity_period": 99999},
    ],
)
async def test_invalid_message_is_permanent_and_not_sent(
    channel: SmsChannel, script: Script, bad: dict[str, Any]
) -> None:
    with pytest.raises(PermanentError):
        await channel.send(msg(**bad))
    assert script.requests == []


def twilio_error(
    status: int, code: int | None, message: str = "problem", headers: dict[str, str] | None = None
) -> Responder:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return reply(status, body, headers)


@pytest.mark.parametrize(
    ("respond", "error", "attrs"),
    [
        (
            twilio_error(429, 20429, "Too Many Requests", {"Retry-After": "3"}),
            TransientError,
            {"code": 20429, "slow_down": True, "retry_after": 3.0, "status": 429},
        ),
        (reply(429, b"busy"), TransientError, {"code": None, "slow_down": True, "retry_after": None}),
        (twilio_error(400, 21611, "queue full"), TransientError, {"code": 21611, "slow_down": True}),
        (twilio_error(500, None, "oops"), TransientError, {"slow_down": False, "status": 500}),
        (reply(503, b"<html>down</html>"), TransientError, {"slow_down": False, "status": 503}),
        (twilio_error(400, 30450, "blocked"), TransientError, {"retry_after": 900.0, "slow_down": False}),
        (
            twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
            PermanentError,
            {"code": 21610, "reason": "Attempt to send to unsubscribed recipient", "status": 400},
        ),
        (
            twilio_error(401, 20003, "Authentication Error - invalid username"),
            AccountError,
            {"code": 20003},
        ),
        (twilio_error(400, 21212, "Invalid From Number"), PermanentError, {"code": 21212}),
        (reply(502, b"<html>Bad Gateway</html>"), InDoubtError, {"status": 502}),
        (reply(504, b"<html>Gateway Timeout</html>"), InDoubtError, {"status": 504}),
        (reply(201, b"<html>created?</html>"), InDoubtError, {}),
        (reply(201, {"status": "queued"}), InDoubtError, {}),
    ],
)
async def test_send_error_classes(
    channel: SmsChannel, script: Script, respond: Responder, error: type[Exception], attrs: dict[str, Any]
) -> None:
    script.expect("POST", MESSAGES, respond)
    with pytest.raises(error) as info:
        await channel.send(msg())
    assert type(info.value) is error
    for name, value in attrs.items():
        assert getattr(info.value, name) == value, name
    script.done()


async def test_twilio_message_is_masked_in_permanent_error(channel: SmsChannel, script: Script) -> None:
    script.expect(
        "POST", MESSAGES, twilio_error(400, 21211, f"The 'To' number {TO} is not a valid phone number.")
    )
    with pytest.raises(PermanentError) as info:
        await channel.send(msg())
    assert TO not in str(info.value) and TO[1:] not in info.value.reason


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (httpx.ConnectError("refused"), TransientError),
        (httpx.ConnectTimeout("slow"), TransientError),
        (httpx.ReadTimeout("slow"), InDoubtError),
        (httpx.RemoteProtocolError("closed"), InDoubtError),
    ],
)
async def test_send_transport_failures(
    channel: SmsChannel, script: Script, raised: Exception, error: type[Exception]
) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise raised

    script.expect("POST", MESSAGES, boom)
    with pytest.raises(error) as info:
        await channel.send(msg())
    assert type(info.value) is error
    assert TOKEN not in str(info.value)


# --- find_sent ----------------------------------------------------------------------------------


def page(items: list[dict[str, Any]], next_uri: str | None = None) -> Responder:
    return reply(200, {"messages": items, "next_page_uri": next_uri, "uri": "u", "page_size": 50})


def query(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.url.query.decode()))


async def test_find_sent_returns_newest_exact_match(channel: SmsChannel, script: Script) -> None:
    not_before = NOW - timedelta(minutes=1)
    created = NOW + timedelta(seconds=5)
    newest = resource(
        sid=sid(2), date_created=rfc2822(created), date_sent=rfc2822(created), status="delivered"
    )
    older_match = resource(sid=sid(3), date_created=rfc2822(NOW - timedelta(minutes=2)), status="delivered")
    too_old = resource(sid=sid(4), date_created=rfc2822(NOW - timedelta(hours=3)))
    other_body = resource(sid=sid(5), body="PO 4711 rejected")
    other_from = resource(sid=sid(6), **{"from": "+15550000000"})
    inbound = resource(sid=sid(7), direction="inbound")
    script.expect("GET", MESSAGES, page([other_body, newest, older_match, too_old, other_from, inbound]))
    script.expect("GET", MESSAGES, page([], None))
    result = await channel.find_sent(msg(), not_before)
    script.done()
    assert result == SendResult(provider_id=sid(2), provider_status="delivered", segments=1)
    first, second = (query(r) for r in script.requests)
    assert first == {"To": TO, "DateSent>": "2026-01-14T00:00:00Z", "PageSize": "50"}
    assert second == {"To": TO, "PageSize": "50"}


async def test_find_sent_sees_queued_message_without_date_sent(channel: SmsChannel, script: Script) -> None:
    queued = resource(sid=sid(8), status="accepted", messaging_service_sid=MG, **{"from": None})
    stale = resource(sid=sid(9), date_created=rfc2822(NOW - timedelta(days=2)))
    script.expect("GET", MESSAGES, page([]))
    # The second page is never requested: the scan stops at the first message before the cutoff.
    script.expect("GET", MESSAGES, page([queued, stale], f"{MESSAGES}?To=x&Page=1&PageToken=PA1"))
    result = await channel.find_sent(msg(sender="ops"), NOW - timedelta(seconds=30))
    script.done()
    assert result is not None and (result.provider_id, result.provider_status) == (sid(8), "accepted")


async def test_find_sent_none_when_absent(channel: SmsChannel, script: Script) -> None:
    script.expect("GET", MESSAGES, page([resource(body="different")]))
    script.expect("GET", MESSAGES, page([]))
    assert await channel.find_sent(msg(), NOW) is None
    script.done()


async def test_find_sent_date_filter_uses_utc_day_before(channel: SmsChannel, script: Script) -> None:
    script.expect("GET", MESSAGES, page([]))
    script.expect("GET", MESSAGES, page([]))
    local = datetime(2026, 3, 1, 0, 2, tzinfo=UTC).astimezone(ZoneInfo("America/Chicago"))
    await channel.find_sent(msg(), local)
    expected = date(2026, 2, 27)  # 2026-03-01 00:02 UTC, less the margin, is Feb 28 UTC; one day more
    assert query(script.requests[0])["DateSent>"] == f"{expected.isoformat()}T00:00:00Z"


async def test_find_sent_rejects_naive(channel: SmsChannel) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await channel.find_sent(msg(), datetime(2026, 1, 15, 12, 0))


async def test_find_sent_incomplete_scan_is_transient(script: Script) -> None:
    client = TwilioClient(AC, auth_token=TOKEN, transport=HttpxTransport(httpx.MockTransport(script)))
    channel = SmsChannel(client, max_scan=3)
    items = [resource(sid=sid(n), body="other") for n in range(2)]
    script.expect("GET", MESSAGES, page(items, f"{MESSAGES}?Page=1&PageToken=PA1"))
    script.expect("GET", MESSAGES, page(items))
    with pytest.raises(TransientError, match="reconciliation stopped"):
        await channel.find_sent(msg(), NOW)
    script.done()
    await client.aclose()


@pytest.mark.parametrize(
    ("respond", "error"),
    [
        (twilio_error(503, None), TransientError),
        (reply(504, b"x"), TransientError),
        (twilio_error(401, 20003), AccountError),
    ],
)
async def test_find_sent_errors(
    channel: SmsChannel, script: Script, respond: Responder, error: type[Exception]
) -> None:
    script.expect("GET", MESSAGES, respond)
    with pytest.raises(error) as info:
        await channel.find_sent(msg(), NOW)
    assert type(info.value) is error


async def test_find_sent_lost_response_is_transient(channel: SmsChannel, script: Script) -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    script.expect("GET", MESSAGES, lost)
    with pytest.raises(TransientError):
        await channel.find_sent(msg(), NOW)


# --- fetch_status -------------------------------------------------------------------------------


async def test_fetch_status(channel: SmsChannel, script: Script) -> None:
    failed = resource(sid=sid(1), status="undelivered", error_code=30003, error_message="Unreachable")
    script.expect("GET", f"/2010-04-01/Accounts/{AC}/Messages/{sid(1)}.json", reply(200, failed))
    event = await channel.fetch_status(sid(1))
    script.done()
    assert (event.provider_id, event.provider_status, event.error_code) == (sid(1), "undelivered", 30003)
    assert event.received_at == NOW
    assert event.raw["status"] == "undelivered" and event.raw["error_code"] == "30003"
    assert "body" not in event.raw and "date_sent" not in event.raw


async def test_fetch_status_errors(channel: SmsChannel, script: Script) -> None:
    script.expect("GET", f"/2010-04-01/Accounts/{AC}/Messages/{sid(1)}.json", twilio_error(404, 20404))
    with pytest.raises(PermanentError):
        await channel.fetch_status(sid(1))
    with pytest.raises(PermanentError, match="message sid"):
        await channel.fetch_status("bogus")
