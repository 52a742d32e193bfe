"""What to do about a provider error: retry, retry slower, give up, or reconcile. Pure.

The decision is data, not code: a table keyed by Twilio error code first (the code is more
precise than the HTTP status), then by exact HTTP status, then by status class. Facts behind
each row are in shared/reference/twilio.md (section numbers in the comments).

    Action        meaning for the caller
    RETRY         send again later (backoff)
    RETRY_SLOW    send again later and tell the pacer to slow this sender/account down
    FAIL          retrying will not help; record the reason
    RECONCILE     the request may have been processed: look the message up before any resend
    HOLD_ACCOUNT  the account itself was refused (credentials, standing): nothing was sent; hold
                  the account's sending until it is fixed, without failing the message
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = [
    "API_CODES",
    "API_STATUS",
    "API_STATUS_CLASS",
    "DELIVERY_CODES",
    "TRANSPORT",
    "Action",
    "Resolution",
    "resolve_api_error",
    "resolve_delivery_error",
    "resolve_transport_error",
]


class Action(StrEnum):
    RETRY = "retry"
    RETRY_SLOW = "retry_slow"
    FAIL = "fail"
    RECONCILE = "reconcile"
    HOLD_ACCOUNT = "hold_account"


@dataclass(frozen=True, slots=True)
class Resolution:
    """An action, why, and the shortest sensible wait before a retry (None: the caller's backoff)."""

    action: Action
    reason: str
    min_delay: float | None = None


def _r(action: Action, reason: str, min_delay: float | None = None) -> Resolution:
    return Resolution(action, reason, min_delay)


RETRY, RETRY_SLOW, FAIL, RECONCILE = Action.RETRY, Action.RETRY_SLOW, Action.FAIL, Action.RECONCILE
HOLD = Action.HOLD_ACCOUNT

#: Delivery errors worth another message, whether a create answers with them or a callback does.
_RETRYABLE_30XXX: Mapping[int, Resolution] = {
    30001: _r(RETRY_SLOW, "queue overflow (30001)"),
    30003: _r(RETRY, "unreachable destination handset (30003)"),  # doc: "Retry the message"
    30008: _r(RETRY, "unknown delivery error (30008)"),
    30450: _r(RETRY, "SMS pumping protection temporary block (30450)", 900.0),
    30500: _r(RETRY, "Twilio internal error (30500)"),
}

#: WhatsApp: free text is allowed only within 24 hours of the recipient's last message; outside
#: that window only an approved template (ContentSid) may start the conversation. Usually the
#: message is accepted and fails later (a callback), so it is in both tables.
_WHATSAPP: Mapping[int, Resolution] = {
    63016: _r(FAIL, "outside WhatsApp's 24-hour window: free text needs the recipient to have written in "
                    "the last 24 hours; send an approved template (content_sid) instead (63016)"),
}

#: Twilio error code -> resolution, for synchronous REST errors (twilio.md §6, §7).
API_CODES: Mapping[int, Resolution] = {
    # §6/§7: "never processed and is always safe to retry"; REST concurrency limit.
    20429: _r(RETRY_SLOW, "too many concurrent requests (20429)"),
    # §7: sender queue holds more than 10 h of messages (no Messaging Service).
    21611: _r(RETRY_SLOW, "sender queue full (21611)"),
    # §6: 30xxx normally arrive asynchronously; kept here in case a create answers with one.
    **_RETRYABLE_30XXX,
    # §1/§6: credentials or key scope; a problem of the account, not of the message: hold it.
    20003: _r(HOLD, "authentication or permission denied (20003)"),
    # Twilio's error catalogue: 20005 "Account not active", 20008 "Cannot access this resource
    # with Test Credentials": no message of the account can go until the account is fixed.
    20005: _r(HOLD, "account not active (20005)"),
    20008: _r(HOLD, "test credentials cannot send (20008)"),
    20404: _r(FAIL, "resource not found (20404)"),
    # §6: bad recipient data or account configuration.
    21211: _r(FAIL, "invalid 'To' phone number (21211)"),
    21408: _r(FAIL, "geo permissions disabled for the destination (21408)"),
    21606: _r(FAIL, "'From' is not a message-capable number of this account (21606)"),
    21608: _r(FAIL, "'To' not verified for a trial account (21608)"),
    21609: _r(FAIL, "invalid StatusCallback URL (21609)"),
    21610: _r(FAIL, "recipient has opted out (21610)"),
    # 21612, 21617: not in twilio.md; titles from Twilio's error catalogue, both need a data fix.
    21612: _r(FAIL, "'To' not reachable from this 'From' (21612)"),
    21614: _r(FAIL, "'To' is not a mobile number (21614)"),
    21617: _r(FAIL, "body exceeds 1600 characters (21617)"),
    21635: _r(FAIL, "'To' is a landline (21635)"),
    30004: _r(FAIL, "message blocked (30004)"),
    30005: _r(FAIL, "unknown destination handset (30005)"),
    30006: _r(FAIL, "landline or unreachable carrier (30006)"),
    30007: _r(FAIL, "message filtered as spam or by policy (30007)"),
    30034: _r(FAIL, "unregistered US A2P 10DLC sender (30034)"),
    30036: _r(FAIL, "validity period expired (30036)"),
    **_WHATSAPP,
}

#: Exact HTTP status -> resolution, when the code is absent or unknown.
API_STATUS: Mapping[int, Resolution] = {
    429: _r(RETRY_SLOW, "HTTP 429 too many requests"),  # §7
    # Without a known code: the credentials (401) or their rights (403) were refused.
    401: _r(HOLD, "HTTP 401: the account's credentials were refused"),
    403: _r(HOLD, "HTTP 403: the account's credentials may not do this"),
    # A gateway answered instead of Twilio: the request may have been forwarded and processed,
    # and Messages create has no idempotency key (§3), so look before resending.
    502: _r(RECONCILE, "HTTP 502 from a gateway; the request may have been processed"),
    504: _r(RECONCILE, "HTTP 504 from a gateway; the request may have been processed"),
}

#: HTTP status class (status // 100) -> resolution, the last resort.
API_STATUS_CLASS: Mapping[int, Resolution] = {
    4: _r(FAIL, "request rejected"),
    5: _r(RETRY, "Twilio server error"),
}

_UNEXPECTED_STATUS = _r(FAIL, "unexpected HTTP status")

#: Asynchronous ErrorCode of a failed/undelivered message -> resolution (§3, §6).
#: The message was accepted and failed later, so a retry is a new message.
DELIVERY_CODES: Mapping[int, Resolution] = {
    **_RETRYABLE_30XXX,
    30004: _r(FAIL, "message blocked (30004)"),
    30005: _r(FAIL, "unknown destination handset (30005)"),
    30006: _r(FAIL, "landline or unreachable carrier (30006)"),
    30007: _r(FAIL, "message filtered as spam or by policy (30007)"),
    30034: _r(FAIL, "unregistered US A2P 10DLC sender (30034)"),
    30036: _r(FAIL, "validity period expired (30036)"),
    **_WHATSAPP,
}

_UNKNOWN_DELIVERY = _r(FAIL, "delivery failed")

TransportKind = Literal["connect", "lost"]

#: Transport failure kind -> resolution (channels.http: ConnectFailed / ResponseLost).
TRANSPORT: Mapping[str, Resolution] = {
    "connect": _r(RETRY, "could not connect; nothing was sent"),
    "lost": _r(RECONCILE, "response lost; the request may have been processed"),
}


def resolve_api_error(status: int, code: int | None) -> Resolution:
    """Resolution of a non-2xx REST answer: by code, then exact status, then status class."""
    if code is not None and code in API_CODES:
        return API_CODES[code]
    if status in API_STATUS:
        return API_STATUS[status]
    return API_STATUS_CLASS.get(status // 100, _UNEXPECTED_STATUS)


def resolve_delivery_error(code: int | None) -> Resolution:
    """Resolution of a status callback's ErrorCode; unknown codes are final."""
    if code is None:
        return _UNKNOWN_DELIVERY
    return DELIVERY_CODES.get(code, _UNKNOWN_DELIVERY)


def resolve_transport_error(kind: TransportKind) -> Resolution:
    """Resolution of a transport failure: refused connections retry, lost responses reconcile."""
    return TRANSPORT[kind]
