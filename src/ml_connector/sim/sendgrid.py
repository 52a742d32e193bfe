"""A Twilio SendGrid imitation: v3 Mail Send and the signed Event Webhook.

A second, independent reading of SendGrid's wire format (twilio.md §10, sendgrid_mail_v3.json),
sharing no code with the connector's SendGrid client or its signature check.

    POST /v3/mail/send   Authorization: Bearer <key>, application/json
        202, empty body, X-Message-Id                 accepted: events follow
        400 {"errors": [{"message", "field"}]}        invalid document
        401                                           unknown key
        429 + X-RateLimit-Limit/Remaining/Reset       over `rate_limit` per `rate_window` s,
                                                      or a planned fault
    Events: for each accepted mail, `processed` then the recipient's outcome (`delivered` by
    default; `bounce`, `dropped`, `deferred` -> `delivered`, or `open` after `delivered`), each
    POSTed as a JSON array signed with the simulator's own ECDSA P-256 key (timestamp + body,
    base64 DER in X-Twilio-Email-Event-Webhook-Signature); `public_key` is what a customer
    would copy from SendGrid's settings. Events can be repeated and reversed, as webhooks are.

Control in-process: `outcomes`, `fail_next(status, count, reset_in)`, `drop_next(count)` (the
mail is queued but the response is lost), `sent`, `drain()`; over HTTP: GET /_sim/mails.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["DEFAULT_API_KEY", "SendGridSim", "SimMail"]

DEFAULT_API_KEY = "SG.simulator-key.0123456789"  # noqa: S105 - the simulator's published demo key
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
_OUTCOMES = ("delivered", "bounce", "dropped", "deferred", "open")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class SimMail:
    message_id: str
    to: str
    from_email: str
    subject: str
    contents: dict[str, str]
    categories: list[str]
    custom_args: dict[str, str]
    events: list[str] = field(default_factory=list)


class _Reject(Exception):
    def __init__(self, status: int, message: str, field_name: str | None = None,
                 headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field_name, tuple(headers)


def _validate(doc: Any) -> tuple[str, str, str, dict[str, str], list[str], dict[str, str]]:
    """(to, from, subject, contents by type, categories, custom_args) of a single-recipient send."""
    if not isinstance(doc, dict):
        raise _Reject(400, "Bad Request", None)
    pers = doc.get("personalizations")
    if not isinstance(pers, list) or not pers or len(pers) > 1000:
        raise _Reject(400, "The personalizations field is required and must have at least one personalization.",
                      "personalizations")
    to = pers[0].get("to") if isinstance(pers[0], dict) else None
    if not isinstance(to, list) or not to or not all(isinstance(t, dict) and "@" in str(t.get("email", ""))
                                                      for t in to):
        raise _Reject(400, "The to array is required for all personalization objects.", "personalizations.0.to")
    sender = doc.get("from")
    if not isinstance(sender, dict) or "@" not in str(sender.get("email", "")):
        raise _Reject(400, "The from object must be provided for every email send.", "from.email")
    subject = doc.get("subject", pers[0].get("subject"))
    if not isinstance(subject, str) or not subject:
        raise _Reject(400, "The subject is required.", "subject")
    content = doc.get("content")
    if not isinstance(content, list) or not content or not all(
            isinstance(c, dict) and isinstance(c.get("type"), str) and isinstance(c.get("value"), str)
            and c["value"] for c in content):
        raise _Reject(400, "Unless a valid template_id is provided, the content parameter is required.", "content")
    types = [c["type"] for c in content]
    if "text/plain" in types and types[0] != "text/plain":
        raise _Reject(400, "If present, text/plain content must be first, followed by text/html.", "content.0.type")
    categories = doc.get("categories", [])
    if not isinstance(categories, list) or len(categories) > 10 or not all(
            isinstance(c, str) and 0 < len(c) <= 255 for c in categories):
        raise _Reject(400, "Too many categories, or a category is not a 1-255 character string.", "categories")
    args = pers[0].get("custom_args", {})
    if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
        raise _Reject(400, "Custom args must be string values.", "custom_args")
    return (str(to[0]["email"]), str(sender["email"]), subject, {c["type"]: c["value"] for c in content},
            categories, args)


class SendGridSim:
    """The simulator; `events_to` is the connector's Event Webhook URL (None: no events)."""

    def __init__(
        self,
        *,
        api_keys: Sequence[str] = (DEFAULT_API_KEY,),
        events_to: str | None = None,
        event_transport: httpx.AsyncBaseTransport | None = None,
        event_delay: float = 0.0,
        rate_limit: int = 600,
        rate_window: float = 60.0,
        reverse_events: bool = False,
        repeat_events: bool = False,
    ) -> None:
        self._keys = frozenset(api_keys)
        self.events_to = events_to
        self.event_transport = event_transport
        self._event_delay = event_delay
        self._rate_limit, self._rate_window = rate_limit, rate_window
        self._window: list[float] = []
        self.reverse_events, self.repeat_events = reverse_events, repeat_events
        self._private = ec.generate_private_key(ec.SECP256R1())
        self.outcomes: dict[str, str] = {}
        self.mails: dict[str, SimMail] = {}
        self._faults: list[tuple[int, float]] = []
        self._drops = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.rejected_events = 0

    @property
    def public_key(self) -> str:
        """Base64 DER SubjectPublicKeyInfo: the verification key a customer configures."""
        der = self._private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode("ascii")

    @property
    def sent(self) -> list[SimMail]:
        return list(self.mails.values())

    def fail_next(self, status: int, count: int = 1, reset_in: float = 1.0) -> None:
        """The next `count` sends get `status` (429 carries X-RateLimit-Reset `reset_in` s ahead)."""
        self._faults.extend([(status, reset_in)] * count)

    def drop_next(self, count: int = 1) -> None:
        """The next `count` sends are queued (events follow) but their responses are lost."""
        self._drops += count

    # -- ASGI ------------------------------------------------------------------------------

    def create_app(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            status, headers, payload = await self._handle(scope, body)
            if status == 0:  # a lost response: close without answering
                raise ConnectionResetError("simulated lost response")
            await send({"type": "http.response.start", "status": status,
                        "headers": [(k.lower().encode(), v.encode()) for k, v in headers]})
            await send({"type": "http.response.body", "body": payload})

        return app

    async def _handle(self, scope: Scope, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        path, method = scope["path"], scope["method"]
        if path == "/_sim/mails" and method == "GET":
            data = [{"message_id": m.message_id, "subject": m.subject, "events": m.events,
                     "categories": m.categories, "custom_args": m.custom_args} for m in self.mails.values()]
            return 200, [("Content-Type", "application/json")], json.dumps(data).encode()
        if path != "/v3/mail/send":
            return _error(404, "Not found", None)
        if method != "POST":
            return _error(405, "Method not allowed", None)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            auth = headers.get("authorization", "")
            if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self._keys:
                raise _Reject(401, "The provided authorization grant is invalid, expired, or revoked", None)
            self._rate()
            if self._faults:
                status, reset_in = self._faults.pop(0)
                raise _Reject(status, "simulated fault", None, self._limit_headers(reset_in) if status == 429 else ())
            if headers.get("content-type", "").split(";")[0].strip() != "application/json":
                raise _Reject(415, "Content-Type must be application/json", None)
            try:
                doc = json.loads(body)
            except ValueError:
                raise _Reject(400, "Bad Request", None) from None
            to, from_email, subject, contents, categories, args = _validate(doc)
        except _Reject as rejected:
            return _error(rejected.status, rejected.message, rejected.field, rejected.headers)
        mail = SimMail(secrets.token_urlsafe(16)[:22], to, from_email, subject, contents, categories, args)
        self.mails[mail.message_id] = mail
        self._spawn(self._lifecycle(mail))
        if self._drops:
            self._drops -= 1
            return 0, [], b""
        return 202, [("X-Message-Id", mail.message_id)], b""

    def _limit_headers(self, reset_in: float) -> list[tuple[str, str]]:
        return [("X-RateLimit-Limit", str(self._rate_limit)), ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", str(int(time.time() + reset_in + 0.999)))]

    def _rate(self) -> None:
        now = time.monotonic()
        self._window = [t for t in self._window if t > now - self._rate_window]
        if len(self._window) >= self._rate_limit:
            raise _Reject(429, "too many requests", None,
                          self._limit_headers(self._window[0] + self._rate_window - now))
        self._window.append(now)

    # -- events ----------------------------------------------------------------------------

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _events_for(self, mail: SimMail) -> list[str]:
        outcome = self.outcomes.get(mail.to, "delivered")
        if outcome not in _OUTCOMES:
            raise ValueError(f"outcome for {mail.to}: one of {', '.join(_OUTCOMES)}")
        if outcome == "dropped":
            return ["dropped"]
        steps = {"delivered": ["delivered"], "bounce": ["bounce"], "deferred": ["deferred", "delivered"],
                 "open": ["delivered", "open"]}[outcome]
        return ["processed", *steps]

    def _event(self, mail: SimMail, kind: str, at: int) -> dict[str, Any]:
        event: dict[str, Any] = {
            "email": mail.to, "event": kind, "timestamp": at, "sg_event_id": secrets.token_urlsafe(16),
            "sg_message_id": f"{mail.message_id}.filterdrecv-sim-1-{at:X}-0.0", "smtp-id": f"<{mail.message_id}@sim>",
            "category": mail.categories, **mail.custom_args,
        }
        if kind == "bounce":
            event.update(type="bounce", status="5.1.1", reason=f"550 5.1.1 <{mail.to}>: Recipient address rejected")
        elif kind == "dropped":
            event["reason"] = "Bounced Address"
        elif kind == "deferred":
            event.update(response="451 4.7.1 try again later", attempt="1")
        return event

    async def _lifecycle(self, mail: SimMail) -> None:
        if self.events_to is None:
            return
        kinds = self._events_for(mail)
        if self.reverse_events:
            kinds.reverse()
        for kind in kinds:
            await asyncio.sleep(self._event_delay)
            mail.events.append(kind)
            copies = 2 if self.repeat_events else 1
            event = self._event(mail, kind, int(time.time()))
            for _ in range(copies):
                await self._post([event])

    def sign(self, body: bytes, timestamp: str) -> str:
        der = self._private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(der).decode("ascii")

    async def _post(self, events: list[Mapping[str, Any]]) -> None:
        assert self.events_to is not None
        body = json.dumps(events, separators=(",", ":")).encode() + b"\r\n"
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", SIGNATURE: self.sign(body, stamp), TIMESTAMP: stamp}
        for attempt in range(5):  # SendGrid retries a POST without a 2xx answer
            try:
                async with httpx.AsyncClient(transport=self.event_transport, timeout=10) as client:
                    response = await client.post(self.events_to, content=body, headers=headers)
                if response.status_code < 300:
                    return
                if response.status_code in (400, 403):
                    self.rejected_events += 1
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05 * 2 ** attempt)

    async def drain(self) -> None:
        """Until every scheduled event has been posted."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _error(status: int, message: str, field_name: str | None,
           headers: Sequence[tuple[str, str]] = ()) -> tuple[int, list[tuple[str, str]], bytes]:
    payload = json.dumps({"errors": [{"message": message, "field": field_name, "help": None}]}).encode()
    return status, [("Content-Type", "application/json"), *headers], payload
