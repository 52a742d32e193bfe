"""The Twilio simulator's Calls: create with inline TwiML, fetch, list, and a call's life.

Read from twilio.md §8 and the Calls operations of twilio_api_v2010.json, not from the
connector's client. A call is created `queued`; then, after `delay` each, the simulator
reports the events the request subscribed to (StatusCallbackEvent: initiated, ringing,
answered) and always the final one ("completed" event, whose CallStatus is `completed`, or
`busy`, `no-answer`, `failed`, `canceled` per the recipient's outcome). An answered call whose
TwiML has a <Gather action=...> and a digit planned for its number (`press`) POSTs that digit
to the action URL, signed with the account's Auth Token, before it completes. Callbacks may be
repeated or sent in reverse order, as Twilio's are.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import defusedxml.ElementTree as SafeXml
import httpx

from ml_connector.sim import twilio_wire as wire

__all__ = ["CALL_OUTCOMES", "CallBook", "SimCall", "create_call"]

CALL_OUTCOMES = ("completed", "busy", "no-answer", "failed", "canceled")
_EVENTS = ("initiated", "ringing", "answered", "completed")
_MAX_TWIML = 4000


@dataclass
class SimCall:
    sid: str
    account_sid: str
    to: str
    from_: str
    twiml: str
    status_callback: str | None
    events: tuple[str, ...]
    date_created: datetime
    status: str = "queued"
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    digits: str | None = None
    callbacks: list[tuple[str, int | str]] = field(default_factory=list)  # (CallStatus, HTTP result)

    def resource(self) -> dict[str, Any]:
        base = f"/{wire.API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        return {
            "sid": self.sid, "account_sid": self.account_sid, "to": self.to, "from": self.from_,
            "status": self.status, "direction": "outbound-api", "api_version": wire.API_VERSION,
            "date_created": wire.rfc2822(self.date_created), "date_updated": wire.rfc2822(self.date_created),
            "start_time": wire.rfc2822(self.start_time) if self.start_time else None,
            "end_time": wire.rfc2822(self.end_time) if self.end_time else None,
            "duration": str(self.duration) if self.duration is not None else None,
            "answered_by": None, "price": None, "price_unit": "USD", "uri": f"{base}.json",
        }


def create_call(account_sid: str, numbers: tuple[str, ...], form: Mapping[str, list[str]],
                now: datetime) -> SimCall | wire.ApiError:
    """Validate a CreateCall form as Twilio does; the new call, or the error Twilio answers."""
    def one(name: str) -> str | None:
        values = form.get(name)
        return values[-1] if values else None

    to, from_, twiml, url = one("To"), one("From"), one("Twiml"), one("Url")
    if not to:
        return wire.api_error(20001, "Missing required parameter To in the post body")
    if not from_:
        return wire.api_error(20001, "Missing required parameter From in the post body")
    if not wire.E164.match(to):
        return wire.api_error(21211)
    if not wire.E164.match(from_) or from_ not in numbers:
        return wire.api_error(21212)
    if url or one("ApplicationSid"):
        return wire.api_error(20001, "this simulator runs inline Twiml only")
    if not twiml:
        return wire.api_error(20001, "Either Url, Twiml or ApplicationSid is required")
    if len(twiml) > _MAX_TWIML:
        return wire.api_error(20001, f"Twiml exceeds {_MAX_TWIML} characters")
    try:
        root = SafeXml.fromstring(twiml)
    except SafeXml.ParseError:
        return wire.api_error(20001, "Twiml is not well-formed XML")
    if root.tag != "Response":
        return wire.api_error(20001, "Twiml must have a <Response> root")
    events = tuple(form.get("StatusCallbackEvent", [])) or ("completed",)
    if any(e not in _EVENTS for e in events):
        return wire.ApiError(21626, 400, "Invalid StatusCallbackEvent value")
    callback = one("StatusCallback")
    return SimCall(sid=f"CA{secrets.token_hex(16)}", account_sid=account_sid, to=to, from_=from_, twiml=twiml,
                   status_callback=callback, events=events, date_created=now)


def gather_action(twiml: str) -> str | None:
    """The action URL of the TwiML's <Gather>, if it has one."""
    gather = SafeXml.fromstring(twiml).find(".//Gather")
    return gather.get("action") if gather is not None else None


class CallBook:
    """The simulator's calls and their lives."""

    def __init__(self, *, clock: Callable[[], datetime], transport: httpx.AsyncBaseTransport | None,
                 delay: float = 0.0) -> None:
        self.calls: dict[str, SimCall] = {}
        self.outcomes: dict[str, str] = {}  # To -> completed | busy | no-answer | failed | canceled
        self.press: dict[str, str] = {}     # To -> the digit the person presses
        self.reverse = False
        self.duplicate = False
        self._clock = clock
        self._transport = transport
        self._delay = delay

    def add(self, call: SimCall) -> None:
        self.calls[call.sid] = call

    def listed(self, account_sid: str, query: Mapping[str, str]) -> dict[str, Any] | wire.ApiError:
        """One page (no paging needed at simulator sizes) of ListCall, newest first."""
        after = query.get("StartTime>")
        since = None
        if after:
            try:
                since = datetime.fromisoformat(after.replace("Z", "+00:00"))
            except ValueError:
                return wire.api_error(20001, "StartTime> must be a date-time")
        rows = [c for c in self.calls.values() if c.account_sid == account_sid
                and (not query.get("To") or c.to == query["To"]) and (not query.get("From") or c.from_ == query["From"])
                and (since is None or (c.start_time is not None and c.start_time >= since))]
        rows.sort(key=lambda c: c.date_created, reverse=True)
        size = int(query.get("PageSize", "50"))
        path = f"/{wire.API_VERSION}/Accounts/{account_sid}/Calls.json"
        return {"calls": [c.resource() for c in rows[:size]], "next_page_uri": None, "page": 0, "page_size": size,
                "uri": f"{path}?{urlencode(sorted(query.items()))}", "first_page_uri": path, "previous_page_uri": None,
                "start": 0, "end": min(size, len(rows))}

    async def run(self, call: SimCall, auth_token: str) -> None:
        outcome = self.outcomes.get(call.to, "completed")
        if outcome not in CALL_OUTCOMES:
            raise ValueError(f"call outcome for {call.to}: one of {', '.join(CALL_OUTCOMES)}")
        steps: list[tuple[str, str]] = [("initiated", "queued"), ("ringing", "ringing")]
        if outcome == "completed":
            steps.append(("answered", "in-progress"))
        steps.append(("completed", outcome))
        reports: list[tuple[str, str]] = []
        for event, status in steps:
            await asyncio.sleep(self._delay)
            call.status = status
            if event == "answered":
                call.start_time = self._clock()
            if event == "completed":
                call.end_time = self._clock()
                call.duration = 12 if outcome == "completed" else 0
            if event in call.events or event == "completed":
                if self.reverse:  # held back, then sent newest first
                    reports.append((event, status))
                else:
                    await self._report(call, auth_token, status)
            if event == "answered" and call.to in self.press:
                await self._press(call, auth_token, self.press[call.to])
        for _, status in reversed(reports):
            await self._report(call, auth_token, status)

    async def _report(self, call: SimCall, auth_token: str, status: str) -> None:
        for _ in range(2 if self.duplicate else 1):
            await self._callback(call, auth_token, status)

    def _params(self, call: SimCall, status: str) -> list[tuple[str, str]]:
        params = [("AccountSid", call.account_sid), ("ApiVersion", wire.API_VERSION), ("CallSid", call.sid),
                  ("CallStatus", status), ("Direction", "outbound-api"), ("From", call.from_), ("To", call.to),
                  ("CallbackSource", "call-progress-events")]
        if call.duration is not None and status in CALL_OUTCOMES:
            params.append(("CallDuration", str(call.duration)))
        return params

    async def _press(self, call: SimCall, auth_token: str, digit: str) -> None:
        action = gather_action(call.twiml)
        if action is None:
            return
        call.digits = digit
        await self._post(action, auth_token, [*self._params(call, "in-progress"), ("Digits", digit)], call, "digits")

    async def _callback(self, call: SimCall, auth_token: str, status: str) -> None:
        if call.status_callback:
            await self._post(call.status_callback, auth_token, self._params(call, status), call, status)

    async def _post(self, url: str, token: str, params: list[tuple[str, str]], call: SimCall, label: str) -> None:
        headers = {"X-Twilio-Signature": wire.signature(token, url, params),
                   "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=15) as client:
                response = await client.post(url, content=urlencode(params).encode(), headers=headers)
            call.callbacks.append((label, response.status_code))
        except httpx.HTTPError as exc:
            call.callbacks.append((label, type(exc).__name__))
