"""Twilio Calls requests (2010-04-01), built by pure functions like the Messages ones.

`create_call_request` posts inline TwiML (`Twiml`, at most 4000 characters) with the status
callback events the voice channel follows: initiated, ringing, answered, completed (twilio.md
§8; one `StatusCallbackEvent` field per event). `list_calls_request` is reconciliation's
look-up: calls to one number from one number, started on or after a GMT date.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime

from ml_connector.channels.twilio_api import ACCOUNT_SID, API_VERSION, Operation, PreparedRequest

__all__ = ["CALL_EVENTS", "CALL_SID", "create_call_request", "fetch_call_request", "list_calls_request"]

CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
MAX_TWIML = 4000
TIMEOUT_RANGE = range(1, 601)
_PHONE = re.compile(r"^\+[1-9]\d{1,14}$")


def _account_path(account_sid: str) -> str:
    if not ACCOUNT_SID.match(account_sid):
        raise ValueError("account_sid must be 'AC' followed by 32 hex digits")
    return f"/{API_VERSION}/Accounts/{account_sid}"


def create_call_request(
    account_sid: str,
    *,
    to: str,
    from_: str,
    twiml: str,
    status_callback: str | None = None,
    events: Sequence[str] = CALL_EVENTS,
    timeout: int | None = None,
) -> PreparedRequest:
    """POST Calls.json with inline TwiML; `from_` must be a phone number when `to` is one."""
    if not _PHONE.match(to):
        raise ValueError("a call's 'to' must be an E.164 phone number")
    if not _PHONE.match(from_):
        raise ValueError("a call's 'from' must be an E.164 phone number of the account (not a sender ID)")
    if not twiml or len(twiml) > MAX_TWIML:
        raise ValueError(f"inline TwiML must have 1 to {MAX_TWIML} characters")
    params: list[tuple[str, str]] = [("To", to), ("From", from_), ("Twiml", twiml)]
    if status_callback is not None:
        if not status_callback.startswith(("http://", "https://")):
            raise ValueError("status_callback must be an absolute http(s) URL")
        params.append(("StatusCallback", status_callback))
        params.append(("StatusCallbackMethod", "POST"))
        unknown = set(events) - set(CALL_EVENTS)
        if unknown:
            raise ValueError(f"unknown call events {sorted(unknown)}; Twilio knows {', '.join(CALL_EVENTS)}")
        params += [("StatusCallbackEvent", event) for event in events]
    if timeout is not None:
        if isinstance(timeout, bool) or timeout not in TIMEOUT_RANGE:
            raise ValueError("timeout must be 1 to 600 seconds")
        params.append(("Timeout", str(timeout)))
    return PreparedRequest(Operation.CREATE_CALL, "POST", f"{_account_path(account_sid)}/Calls.json", tuple(params))


def fetch_call_request(account_sid: str, sid: str) -> PreparedRequest:
    """GET Calls/{Sid}.json."""
    if not CALL_SID.match(sid):
        raise ValueError("call sid must be 'CA' followed by 32 hex digits")
    return PreparedRequest(Operation.FETCH_CALL, "GET", f"{_account_path(account_sid)}/Calls/{sid}.json")


def list_calls_request(
    account_sid: str, *, to: str | None = None, from_: str | None = None, started_on_or_after: date | None = None,
    page_size: int = 50,
) -> PreparedRequest:
    """GET Calls.json filtered by To, From and `StartTime>=` (a GMT date, sent as midnight)."""
    if isinstance(page_size, bool) or not 1 <= page_size <= 1000:
        raise ValueError("page_size must be from 1 to 1000")
    params: list[tuple[str, str]] = []
    if to:
        params.append(("To", to))
    if from_:
        params.append(("From", from_))
    if started_on_or_after is not None:
        if isinstance(started_on_or_after, datetime):
            raise TypeError("started_on_or_after must be a date (Twilio filters by GMT date)")
        params.append(("StartTime>", f"{started_on_or_after.isoformat()}T00:00:00Z"))
    params.append(("PageSize", str(page_size)))
    return PreparedRequest(Operation.LIST_CALL, "GET", f"{_account_path(account_sid)}/Calls.json", tuple(params))
