"""After a message is accepted: its status moves on and signed status callbacks go out.

Steps: (accepted ->) queued -> sent -> delivered | undelivered | failed, each after a random
delay. No callback for the initial status; every later status is posted to the message's
StatusCallback (or its Messaging Service's), signed with the account's primary Auth Token.
A POST that fails to connect or answers 5xx is retried (once by default, or `#rc=N` in the
URL fragment, Twilio's connection override); every attempt is recorded on the message.

Callbacks are sent through the httpx transport directly, without an `httpx.AsyncClient`: the
client's URL merging, cookie jar, auth and redirect machinery cost more CPU per callback than
the transport itself and do nothing here (no cookies, no auth, redirects are not followed).
The request carries the same headers the client used to add.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from ml_connector.sim import twilio_wire as wire
from ml_connector.sim.twilio_state import (
    CallbackAttempt,
    MessageIndex,
    MessagingService,
    SimMessage,
    StatusChange,
)

_MAX_RETRIES = 5
_ERROR_STATUSES = frozenset({"failed", "undelivered"})
_DLR_STATUSES = frozenset({"delivered", "undelivered"})

# Default cap on callbacks in flight: with thousands queued inside httpx's own pool it re-scans
# its queue on every assignment and the simulator stops answering. Real Twilio has no such cap;
# a transport that queues cheaply (the benchmarks' aiohttp one) can take a higher one.
MAX_CALLBACKS_IN_FLIGHT = 64
_FORM = "application/x-www-form-urlencoded"

# What httpx.AsyncClient put on every request besides Host and the body's headers; kept so that
# callbacks look the same on the wire as before the client was dropped.
_BASE_HEADERS = (
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "keep-alive"),
    ("User-Agent", "TwilioProxy/1.1"),
)


@dataclass(frozen=True)
class CallbackEvent:
    """One status callback to post: the status and the form parameters as of that status."""

    status: str
    params: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CallbackTarget:
    """A StatusCallback URL split into the URL Twilio requests and signs, and its overrides."""

    url: str
    retries: int
    timeout: httpx.Timeout
    parsed: httpx.URL  # `url`, parsed once rather than by every request

    @classmethod
    def parse(cls, raw: str, default_retries: int) -> CallbackTarget:
        return _parse_target(raw, default_retries)


@functools.lru_cache(maxsize=256)  # every message of a run usually has the same StatusCallback
def _parse_target(raw: str, default_retries: int) -> CallbackTarget:
    parts = urlsplit(raw)
    overrides = dict(parse_qsl(parts.fragment))
    retries = _int_in(overrides.get("rc"), 0, _MAX_RETRIES, default_retries)
    connect = _int_in(overrides.get("ct"), 100, 10000, 5000) / 1000
    read = _int_in(overrides.get("rt"), 100, 15000, 15000) / 1000
    url = urlunsplit(parts._replace(fragment=""))
    return CallbackTarget(url=url, retries=retries, timeout=httpx.Timeout(read, connect=connect),
                          parsed=httpx.URL(url))


def _int_in(raw: str | None, low: int, high: int, default: int) -> int:
    if raw is None or not raw.isdigit():
        return default
    return min(max(int(raw), low), high)


def callback_params(message: SimMessage) -> tuple[tuple[str, str], ...]:
    """The form fields of a status callback for the message's current status."""
    status = message.status
    pairs = [
        ("MessageSid", message.sid),
        ("SmsSid", message.sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("AccountSid", message.account_sid),
        ("From", message.from_ or ""),
        ("To", message.to),
        ("ApiVersion", wire.API_VERSION),
    ]
    if message.messaging_service_sid:
        pairs.append(("MessagingServiceSid", message.messaging_service_sid))
    if status in _ERROR_STATUSES and message.error_code is not None:
        pairs.append(("ErrorCode", str(message.error_code)))
    if status in _DLR_STATUSES:
        pairs.append(("RawDlrDoneDate", wire.dlr_done_date(message.date_updated)))
    return tuple(pairs)


def steps_for(message: SimMessage) -> list[str]:
    """The statuses the message still has to go through, in order."""
    outcome = message.outcome
    steps = ["queued"] if message.status == "accepted" else []
    if outcome.status in ("delivered", "read") or outcome.via_sent:
        steps.append("sent")
    if outcome.status == "read":  # a WhatsApp message is delivered, then read; SMS has no read receipts
        steps.append("delivered")
        if not message.to.startswith("whatsapp:"):
            return steps
    steps.append(outcome.status)
    return steps


class Lifecycle:
    """Moves messages through their statuses and posts their callbacks."""

    def __init__(
        self,
        *,
        index: MessageIndex,
        services: dict[str, MessagingService],
        clock: Callable[[], datetime],
        delay: tuple[float, float],
        seed: int,
        retries: int,
        transport: httpx.AsyncBaseTransport | None,
        max_in_flight: int = MAX_CALLBACKS_IN_FLIGHT,
    ) -> None:
        self._index = index
        self._services = services
        self._clock = clock
        self._delay = delay
        self._seed = seed
        self._rng = random.Random(seed)
        self._retries = retries
        self._transport = transport
        self._own_transport: httpx.AsyncHTTPTransport | None = None  # when none was given
        self._max_in_flight = max_in_flight
        self._in_flight: asyncio.Semaphore | None = None  # made in the running loop
        self._pool_cursor: dict[str, int] = {}

    async def run(self, message: SimMessage, auth_token: str, *, reverse: bool, duplicate: bool) -> None:
        """Advance `message` to its final status; post callbacks in order, reversed or doubled."""
        pending: list[CallbackEvent] = []
        for status in steps_for(message):
            await self._pause()
            self._apply(message, status)
            if message.status_callback is None:
                continue
            event = CallbackEvent(status, callback_params(message))
            if reverse:
                pending.append(event)
            else:
                await self._post_copies(message, auth_token, event, duplicate)
        for event in reversed(pending):
            await self._post_copies(message, auth_token, event, duplicate)

    def restart(self, index: MessageIndex) -> None:
        """Start over on a fresh index: same seed, first pool sender again. Keeps the HTTP client."""
        self._index = index
        self._rng = random.Random(self._seed)
        self._pool_cursor.clear()

    async def aclose(self) -> None:
        if self._own_transport is not None:
            await self._own_transport.aclose()
            self._own_transport = None

    async def _pause(self) -> None:
        low, high = self._delay
        if high > 0:
            await asyncio.sleep(self._rng.uniform(low, high))

    def _apply(self, message: SimMessage, status: str) -> None:
        now = self._clock()
        if message.status == "accepted":
            self._assign_sender(message)
        message.status = status
        message.date_updated = now
        if status == "sent":
            message.date_sent = now
            message.price = f"{-wire.PRICE_PER_SEGMENT * message.num_segments:.5f}"
            message.price_unit = "USD"
        if status in _ERROR_STATUSES:
            code = message.outcome.error_code
            message.error_code = code
            message.error_message = wire.ASYNC_ERROR_MESSAGES.get(code or 0, "Message delivery failed")
        message.statuses.append(StatusChange(status, now))

    def _assign_sender(self, message: SimMessage) -> None:
        """A Messaging Service picks a sender from its pool (round robin) and counts segments."""
        service = self._services.get(message.messaging_service_sid or "")
        if message.from_ is None and service is not None:
            cursor = self._pool_cursor.get(service.sid, 0)
            self._pool_cursor[service.sid] = cursor + 1
            message.from_ = service.pool[cursor % len(service.pool)]
            self._index.sender_assigned(message)
        message.num_segments = wire.count_segments(message.body)

    async def _post_copies(
        self, message: SimMessage, token: str, event: CallbackEvent, duplicate: bool
    ) -> None:
        for copy in range(2 if duplicate else 1):
            await self._post(message, token, event, copy)

    async def _post(self, message: SimMessage, token: str, event: CallbackEvent, copy: int) -> None:
        assert message.status_callback is not None  # noqa: S101 - run() checked it
        target = CallbackTarget.parse(message.status_callback, self._retries)
        signed = wire.signature(token, target.url, event.params)
        idempotency = hashlib.sha1(
            f"{message.sid}:{event.status}:{copy}".encode(), usedforsecurity=False
        ).hexdigest()
        headers = [*_BASE_HEADERS, ("X-Twilio-Signature", signed), ("I-Twilio-Idempotency-Token", idempotency),
                   ("Content-Type", _FORM)]
        body = urlencode(event.params).encode()  # what httpx makes of data=: the same bytes, cheaper
        transport = self._http()
        for attempt in range(1, target.retries + 2):
            if self._in_flight is None:
                self._in_flight = asyncio.Semaphore(self._max_in_flight)
            try:
                async with self._in_flight:
                    status = await _post_form(transport, target, body, headers)
                result, ok, retry = str(status), 200 <= status < 300, status >= 500
            except httpx.HTTPError as exc:
                result, ok, retry = type(exc).__name__, False, True
            message.callbacks.append(
                CallbackAttempt(
                    status=event.status,
                    url=target.url,
                    attempt=attempt,
                    params=event.params,
                    signature=signed,
                    idempotency_token=idempotency,
                    result=result,
                    ok=ok,
                    at=self._clock(),
                )
            )
            if ok or not retry:
                return

    def _http(self) -> httpx.AsyncBaseTransport:
        if self._transport is not None:
            return self._transport
        if self._own_transport is None:
            # httpx.AsyncClient's default pool size; no proxies from the environment: the
            # simulator posts straight to the URL it was given.
            self._own_transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100,
                                                                               max_keepalive_connections=20))
        return self._own_transport


async def _post_form(
    transport: httpx.AsyncBaseTransport, target: CallbackTarget, body: bytes, headers: list[tuple[str, str]]
) -> int:
    """POST the form-encoded `body` to the target; its HTTP status once the answer is read."""
    request = httpx.Request("POST", target.parsed, content=body, headers=headers,
                            extensions={"timeout": target.timeout.as_dict()})
    response = await transport.handle_async_request(request)
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response.status_code
