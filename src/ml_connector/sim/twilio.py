"""A Twilio imitation for tests, demos and benchmarks: Messages, Accounts and status callbacks.

It is a second, independent reading of Twilio's wire format (reference notes plus the
OpenAPI document), sharing no code with the connector's own Twilio client.

    sim = TwilioSim(callback_transport=httpx.ASGITransport(webhook_app), callback_delay=(0, 0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.create_app()),
                                 base_url="https://api.twilio.com") as client:
        ...
    await sim.drain()          # every scheduled status change and callback has happened
    await sim.aclose()

Or over real HTTP on loopback: `async with serve(sim) as base_url: ...`.

Control, in-process or as JSON under /_sim/: GET health, GET messages, POST faults
({"seed", "rules"}), POST outcomes ({"outcomes": {"+1555...": {"status", "error_code"}}}),
POST latency ({"seconds"}), POST accounts ({"sid", "auth_token"?, "status"?}: rotate an account's
Auth Token or suspend it, as the Console does), POST reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn

from ml_connector.sim import twilio_wire as wire
from ml_connector.sim.twilio_calls import CallBook, create_call
from ml_connector.sim.twilio_faults import FaultDecision, FaultPlan, FaultRule, plan_from_json
from ml_connector.sim.twilio_http import ApiRequest, Reply, SimulatedDisconnect, TwilioApp
from ml_connector.sim.twilio_lifecycle import MAX_CALLBACKS_IN_FLIGHT, Lifecycle
from ml_connector.sim.twilio_messages import CreateRequest, list_page, parse_list_query, validate_create
from ml_connector.sim.twilio_state import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_API_KEY_SECRET,
    DEFAULT_API_KEY_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_NUMBERS,
    DEFAULT_SERVICE_SID,
    Account,
    ApiKey,
    MessageIndex,
    MessageRecord,
    MessagingService,
    Outcome,
    SimMessage,
    StatusChange,
)

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_API_KEY_SECRET",
    "DEFAULT_API_KEY_SID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_NUMBERS",
    "DEFAULT_SERVICE_SID",
    "Account",
    "ApiKey",
    "FaultPlan",
    "FaultRule",
    "MessageRecord",
    "MessagingService",
    "Outcome",
    "SimulatedDisconnect",
    "TwilioSim",
    "serve",
]

MAGIC_OUTCOMES: dict[str, Outcome] = {
    number: Outcome(status="rejected", error_code=code) for number, code in wire.MAGIC_TO.items()
}


def _same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison that also accepts non-ASCII input."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TwilioSim:
    """State and behaviour of one simulated Twilio: accounts, credentials, messages, faults."""

    def __init__(
        self,
        *,
        accounts: Iterable[Account] = (Account(),),
        api_keys: Iterable[ApiKey] = (ApiKey(),),
        services: Iterable[MessagingService] = (MessagingService(),),
        outcomes: Mapping[str, Outcome] | None = None,
        seed: int = 0,
        latency: float = 0.0,
        callback_delay: tuple[float, float] = (0.05, 0.2),
        callback_transport: httpx.AsyncBaseTransport | None = None,
        callback_retries: int = 1,
        callback_concurrency: int = MAX_CALLBACKS_IN_FLIGHT,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 0 <= callback_delay[0] <= callback_delay[1] or latency < 0:
            raise ValueError("delays must be non-negative and callback_delay must be (low, high)")
        if callback_concurrency < 1:
            raise ValueError("callback_concurrency must be at least 1")
        self.accounts = {a.sid: a for a in accounts}
        self.api_keys = {k.sid: k for k in api_keys}
        self.services = {s.sid: s for s in services}
        self._initial_outcomes = dict(outcomes or {})
        self._seed = seed
        self._clock = clock
        self._sleep = sleep
        self._latency = latency
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_errors: list[BaseException] = []
        self._closing = asyncio.Event()
        self.index = MessageIndex()
        self._lifecycle = Lifecycle(
            index=self.index,
            services=self.services,
            clock=self._now,
            delay=callback_delay,
            seed=seed,
            retries=callback_retries,
            max_in_flight=callback_concurrency,
            transport=callback_transport,
        )
        #: WhatsApp: when each number last wrote to us (opens its 24-hour free-text window).
        self.whatsapp_sessions: dict[str, datetime] = {}
        #: Calls (sim.twilio_calls): `calls.outcomes[to]`, `calls.press[to]` plan what happens.
        self.calls = CallBook(clock=self._now, transport=callback_transport, delay=callback_delay[0])
        self._fresh_state()

    def _fresh_state(self) -> None:
        self.calls.calls.clear()
        self.index = MessageIndex()
        self._lifecycle.restart(self.index)
        self._outcomes: dict[str, Outcome] = {**MAGIC_OUTCOMES, **self._initial_outcomes}
        self._faults = FaultPlan.of((), seed=self._seed)
        self._seq = 0

    # -- configuration and inspection (the same operations the /_sim/ API offers) --

    @property
    def latency(self) -> float:
        return self._latency

    def set_latency(self, seconds: float) -> None:
        """Delay added to every REST answer (async sleep; benchmarks use 0 and 0.15)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self._latency = seconds

    def set_faults(self, rules: Iterable[FaultRule], seed: int | None = None) -> None:
        """Replace the fault plan; counters and the fault RNG start over."""
        self._faults = FaultPlan.of(rules, seed=self._seed if seed is None else seed)

    def update_account(self, sid: str, *, auth_token: str | None = None, status: str | None = None) -> Account:
        """Rotate an account's Auth Token and/or change its status, as the Console does.

        Later requests authenticate against the new token; callbacks are signed with it."""
        account = self.accounts.get(sid)
        if account is None:
            raise ValueError(f"no account {sid!r}")
        if status is not None and status not in ("active", "suspended", "closed"):
            raise ValueError("status must be active, suspended or closed")
        changed = dataclasses.replace(
            account,
            auth_token=account.auth_token if auth_token is None else auth_token,
            status=account.status if status is None else status,  # type: ignore[arg-type]
        )
        self.accounts[sid] = changed
        return changed

    def set_outcome(self, to: str, outcome: Outcome) -> None:
        """What happens to later messages sent to `to` (final status and ErrorCode)."""
        self._outcomes[to] = outcome

    def messages(self) -> list[MessageRecord]:
        """Every accepted message, oldest first, with its status and callback history."""
        return [MessageRecord.of(m) for m in self.index]

    def message(self, sid: str) -> MessageRecord:
        return MessageRecord.of(self.index.by_sid[sid])

    def reset(self) -> None:
        """Forget messages, faults and runtime outcomes; cancel pending status changes."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._task_errors.clear()
        self._fresh_state()

    def create_app(self) -> TwilioApp:
        return TwilioApp(self)

    async def drain(self) -> None:
        """Wait until every scheduled status change and callback is done; re-raise their failures."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)
        if self._task_errors:
            error, self._task_errors = self._task_errors[0], []
            raise error

    async def aclose(self) -> None:
        """Release hanging requests, cancel pending work and close the callback transport it made.

        A `callback_transport` passed in is the caller's to close.
        """
        self._closing.set()
        tasks = tuple(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._lifecycle.aclose()

    # -- backend of the ASGI surface --

    def decide(self, operation: str) -> FaultDecision:
        return self._faults.decide(operation)

    async def pause(self, seconds: float) -> None:
        """Response latency; `sleep` is injectable so tests observe it without timing anything."""
        await self._sleep(seconds)

    def authenticate(self, account_sid: str, username: str, password: str) -> tuple[Account, bool] | None:
        """The URL's account when the credentials are its Auth Token or one of its API keys."""
        account = self.accounts.get(account_sid)
        if account is None or account.status != "active":
            return None
        if username == account.sid:
            return (account, True) if _same_secret(password, account.auth_token) else None
        key = self.api_keys.get(username)
        if key is not None and key.account_sid == account.sid and _same_secret(password, key.secret):
            return account, False
        return None

    def handle(self, request: ApiRequest) -> Reply:
        return _HANDLERS[request.operation](self, request)

    async def hang(self, seconds: float) -> None:
        """Hold a request for `seconds`, or until the server stops or the simulator closes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    def release_hangs(self) -> None:
        """End every request held by a `timeout` fault now (used when a server stops)."""
        self._closing.set()
        self._closing = asyncio.Event()

    def control(self, method: str, name: str, body: bytes) -> Reply:
        handler = _CONTROL.get((method, name))
        if handler is None:
            return Reply(404, {"error": f"no control endpoint {method} /_sim/{name}"})
        try:
            payload = json.loads(body) if body else {}
            if not isinstance(payload, dict):
                raise ValueError("expected a JSON object")
            return handler(self, payload)
        except (ValueError, TypeError) as exc:
            return Reply(400, {"error": str(exc)})

    # -- REST handlers --

    def _create(self, request: ApiRequest) -> Reply:
        create = CreateRequest.read(request.account, self.services, request.form)
        error = validate_create(create, self._outcomes)
        if error is not None:
            return Reply(error.status, error.body())
        message = self._new_message(create)
        self.index.add(message)
        self._spawn(
            self._lifecycle.run(
                message,
                request.account.auth_token,
                reverse=request.decision.callbacks_out_of_order,
                duplicate=request.decision.callbacks_duplicated,
            )
        )
        return Reply(201, message.resource())

    def _new_message(self, create: CreateRequest) -> SimMessage:
        now = self._now()
        service = create.service
        accepted = service is not None and not create.from_
        self._seq += 1
        prefix = "MM" if create.media_urls else "SM"
        status = "accepted" if accepted else "queued"
        callback = create.status_callback or (service.status_callback if service else None)
        return SimMessage(
            seq=self._seq,
            sid=f"{prefix}{secrets.token_hex(16)}",  # never reused, even by a restarted simulator
            account_sid=create.account.sid,
            to=create.to,
            from_=create.from_ or None,
            body=create.body,
            media_urls=create.media_urls,
            messaging_service_sid=service.sid if service else None,
            status=status,
            num_segments=0 if accepted else wire.count_segments(create.body),
            date_created=now,
            date_updated=now,
            status_callback=callback,
            outcome=self._outcome_for(create, now),
            statuses=[StatusChange(status, now)],
        )

    def _outcome_for(self, create: CreateRequest, now: datetime) -> Outcome:
        """The number's planned outcome; WhatsApp free text (no ContentSid) to someone who has not
        written in the last 24 hours fails with 63016, as WhatsApp's session rule has it."""
        outcome = self._outcomes.get(wire.strip_channel(create.to), Outcome())
        if create.to.startswith("whatsapp:") and not create.content_sid:
            wrote = self.whatsapp_sessions.get(wire.strip_channel(create.to))
            if wrote is None or (now - wrote).total_seconds() > 24 * 3600:
                return Outcome(status="failed", error_code=63016, via_sent=False)
        return outcome

    def _fetch(self, request: ApiRequest) -> Reply:
        message = self.index.by_sid.get(request.sid or "")
        if message is None or message.account_sid != request.account.sid:
            path = f"/{wire.API_VERSION}/Accounts/{request.account.sid}/Messages/{request.sid}.json"
            error = wire.api_error(20404, f"The requested resource {path} was not found")
            return Reply(error.status, error.body())
        return Reply(200, message.resource())

    def _list(self, request: ApiRequest) -> Reply:
        query = parse_list_query(request.query)
        if isinstance(query, wire.ApiError):
            return Reply(query.status, query.body())
        page = list_page(self.index, request.account.sid, query)
        if isinstance(page, wire.ApiError):
            return Reply(page.status, page.body())
        return Reply(200, page)

    def _create_call(self, request: ApiRequest) -> Reply:
        call = create_call(request.account.sid, request.account.numbers, request.form, self._now())
        if isinstance(call, wire.ApiError):
            return Reply(call.status, call.body())
        self.calls.add(call)
        self._spawn(self.calls.run(call, request.account.auth_token))
        return Reply(201, call.resource())

    def _fetch_call(self, request: ApiRequest) -> Reply:
        call = self.calls.calls.get(request.sid or "")
        if call is None or call.account_sid != request.account.sid:
            error = wire.api_error(20404)
            return Reply(error.status, error.body())
        return Reply(200, call.resource())

    def _list_calls(self, request: ApiRequest) -> Reply:
        page = self.calls.listed(request.account.sid, request.query)
        if isinstance(page, wire.ApiError):
            return Reply(page.status, page.body())
        return Reply(200, page)

    def _account(self, request: ApiRequest) -> Reply:
        """api.v2010.account; auth_token is shown only to a caller who authenticated with it."""
        account = request.account
        base = f"/{wire.API_VERSION}/Accounts/{account.sid}"
        created = wire.rfc2822(account.date_created)
        return Reply(
            200,
            {
                "auth_token": account.auth_token if request.via_auth_token else None,
                "date_created": created,
                "date_updated": created,
                "friendly_name": account.friendly_name,
                "owner_account_sid": account.owner_account_sid or account.sid,
                "sid": account.sid,
                "status": account.status,
                "subresource_uris": {
                    name: f"{base}/{path}.json"
                    for name, path in (
                        ("messages", "Messages"),
                        ("calls", "Calls"),
                        ("incoming_phone_numbers", "IncomingPhoneNumbers"),
                        ("keys", "Keys"),
                        ("balance", "Balance"),
                    )
                },
                "type": account.type,
                "uri": f"{base}.json",
            },
        )

    # -- control handlers --

    def _control_health(self, payload: dict[str, object]) -> Reply:
        return Reply(200, {"status": "ok", "messages": len(self.index), "pending": len(self._tasks)})

    def _control_messages(self, payload: dict[str, object]) -> Reply:
        return Reply(200, {"messages": [record.to_json() for record in self.messages()]})

    def _control_faults(self, payload: dict[str, object]) -> Reply:
        self._faults = plan_from_json(payload)
        return Reply(200, {"rules": len(self._faults.rules), "seed": self._faults.seed})

    def _control_outcomes(self, payload: dict[str, object]) -> Reply:
        raw = payload.get("outcomes")
        if not isinstance(raw, dict):
            raise ValueError("expected {'outcomes': {'+1555...': {'status': ..., 'error_code': ...}}}")
        parsed = {str(to): Outcome(**spec) for to, spec in raw.items()}
        self._outcomes.update(parsed)
        return Reply(200, {"outcomes": len(parsed)})

    def _control_accounts(self, payload: dict[str, object]) -> Reply:
        sid, token, status = payload.get("sid"), payload.get("auth_token"), payload.get("status")
        if not isinstance(sid, str) or not isinstance(token, str | None) or not isinstance(status, str | None):
            raise ValueError("expected {'sid': 'AC...', 'auth_token': '...', 'status': 'active'}")
        account = self.update_account(sid, auth_token=token, status=status)
        return Reply(200, {"sid": account.sid, "status": account.status})

    def _control_latency(self, payload: dict[str, object]) -> Reply:
        seconds = payload.get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise ValueError("expected {'seconds': number}")
        self.set_latency(float(seconds))
        return Reply(200, {"latency": self._latency})

    def _control_reset(self, payload: dict[str, object]) -> Reply:
        self.reset()
        return Reply(200, {"status": "reset"})

    # -- plumbing --

    def _now(self) -> datetime:
        moment = self._clock()
        if moment.tzinfo is None:
            raise ValueError("the simulator clock must return timezone-aware datetimes")
        return moment.astimezone(UTC)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self._task_errors.append(error)


_HANDLERS: dict[str, Callable[[TwilioSim, ApiRequest], Reply]] = {
    "create_message": TwilioSim._create,
    "fetch_message": TwilioSim._fetch,
    "list_messages": TwilioSim._list,
    "fetch_account": TwilioSim._account,
    "create_call": TwilioSim._create_call,
    "fetch_call": TwilioSim._fetch_call,
    "list_calls": TwilioSim._list_calls,
}

_CONTROL: dict[tuple[str, str], Callable[[TwilioSim, dict[str, object]], Reply]] = {
    ("GET", "health"): TwilioSim._control_health,
    ("GET", "messages"): TwilioSim._control_messages,
    ("POST", "faults"): TwilioSim._control_faults,
    ("POST", "outcomes"): TwilioSim._control_outcomes,
    ("POST", "latency"): TwilioSim._control_latency,
    ("POST", "accounts"): TwilioSim._control_accounts,
    ("POST", "reset"): TwilioSim._control_reset,
}


@contextlib.asynccontextmanager
async def serve(sim: TwilioSim, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run the simulator with uvicorn in the current event loop; yields its base URL.

    Port 0 binds a free port. On exit, hanging requests are released and the server stops.
    """
    # proto must say TCP: asyncio only sets TCP_NODELAY on sockets it recognises as TCP, and
    # without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        sim.create_app(),
        interface="asgi3",
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the Twilio simulator server stopped while starting")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        sim.release_hangs()
        server.should_exit = True
        await task
        sock.close()
