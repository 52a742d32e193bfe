"""Status callbacks as they leave the simulator: bytes, headers, connection overrides, ownership.

The simulator sends them through the httpx transport without a client; these pin down what the
client used to put on the wire, so that dropping it changed nothing a receiver can see.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlencode

import httpx
import pytest

from ml_connector.sim import twilio_wire as wire
from ml_connector.sim.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioSim
from ml_connector.sim.twilio_lifecycle import CallbackTarget

HOOK = "https://hooks.example.com/twilio/status"
MESSAGES = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"


class Recorder(httpx.AsyncBaseTransport):
    """Records each request as sent and answers 200; remembers whether it was closed."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return httpx.Response(200, content=b"")

    async def aclose(self) -> None:
        self.closed = True


async def deliver_one(sim: TwilioSim, callback: str = HOOK) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.create_app()),
                                 base_url="https://api.twilio.com",
                                 auth=(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)) as api:
        response = await api.post(MESSAGES, data={"To": "+15551230001", "From": "+15005550006",
                                                  "Body": "PO 4711 approved", "StatusCallback": callback})
    assert response.status_code == 201, response.text
    await sim.drain()
    return str(response.json()["sid"])


async def test_callback_bytes_and_headers() -> None:
    recorder = Recorder()
    sim = TwilioSim(callback_transport=recorder, callback_delay=(0.0, 0.0))
    sid = await deliver_one(sim)
    await sim.aclose()
    record = sim.message(sid)
    assert [r.method for r in recorder.requests] == ["POST", "POST"]
    for request, attempt in zip(recorder.requests, record.callbacks, strict=True):
        assert str(request.url) == HOOK
        assert request.content == urlencode(attempt.params).encode()
        headers = request.headers
        assert headers["host"] == "hooks.example.com"
        assert headers["content-type"] == "application/x-www-form-urlencoded"
        assert headers["content-length"] == str(len(request.content))
        assert headers["user-agent"] == "TwilioProxy/1.1"
        assert headers["accept"] == "*/*"
        assert headers["x-twilio-signature"] == wire.signature(DEFAULT_AUTH_TOKEN, HOOK, attempt.params)
        assert headers["i-twilio-idempotency-token"] == attempt.idempotency_token
        assert len(headers.get_list("x-twilio-signature")) == 1


async def test_connection_overrides_become_timeouts_and_leave_the_url() -> None:
    recorder = Recorder()
    sim = TwilioSim(callback_transport=recorder, callback_delay=(0.0, 0.0))
    await deliver_one(sim, HOOK + "#ct=200&rt=300")
    await sim.aclose()
    for request in recorder.requests:
        assert str(request.url) == HOOK
        timeout = request.extensions["timeout"]
        assert (timeout["connect"], timeout["read"]) == (0.2, 0.3)


def test_targets_are_parsed_once_per_url_and_retry_setting() -> None:
    first = CallbackTarget.parse(HOOK + "#rc=3", 1)
    assert CallbackTarget.parse(HOOK + "#rc=3", 1) is first
    assert first.retries == 3 and first.url == HOOK and str(first.parsed) == HOOK
    assert CallbackTarget.parse(HOOK, 2).retries == 2
    assert CallbackTarget.parse(HOOK, 1).retries == 1


async def test_a_transport_passed_in_is_left_open_for_its_owner() -> None:
    recorder = Recorder()
    sim = TwilioSim(callback_transport=recorder, callback_delay=(0.0, 0.0))
    await deliver_one(sim)
    await sim.aclose()
    assert not recorder.closed


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(hours=1), timedelta(hours=-5, minutes=-30)])
def test_rfc2822_text_follows_the_zone_even_for_equal_instants(offset: timedelta) -> None:
    utc = datetime(2025, 3, 4, 10, 0, 5, 123456, tzinfo=UTC)
    moment = utc.astimezone(timezone(offset))
    assert wire.rfc2822(utc) == "Tue, 04 Mar 2025 10:00:05 +0000"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    local = moment.strftime("%a, %d %b %Y %H:%M:%S")
    assert wire.rfc2822(moment) == f"{local} {sign}{minutes // 60:02d}{minutes % 60:02d}"


class Gate(Recorder):
    """Holds each callback until released, counting how many are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0
        self.release = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.release.wait()
            return await super().handle_async_request(request)
        finally:
            self.in_flight -= 1


async def test_callbacks_in_flight_are_capped() -> None:
    gate = Gate()
    sim = TwilioSim(callback_transport=gate, callback_delay=(0.0, 0.0), callback_concurrency=2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.create_app()),
                                 base_url="https://api.twilio.com",
                                 auth=(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)) as api:
        for i in range(5):
            response = await api.post(MESSAGES, data={"To": f"+1555123000{i}", "From": "+15005550006",
                                                      "Body": "hi", "StatusCallback": HOOK})
            assert response.status_code == 201
    for _ in range(50):  # every lifecycle task gets every chance to start its callback
        await asyncio.sleep(0)
    assert gate.in_flight == 2
    gate.release.set()
    await sim.drain()
    await sim.aclose()
    assert gate.peak == 2
    assert len(gate.requests) == 10


def test_callback_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="callback_concurrency"):
        TwilioSim(callback_concurrency=0)
