"""Pure wire facts of Twilio's REST API as the simulator reads them: formats, codes, segments.

Kept free of I/O and state so each rule can be checked on its own. Sources are the shared
reference notes (twilio.md) and Twilio's OpenAPI document (twilio_api_v2010.json); codes that
only third-party copies confirm are marked as such next to their table entry.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlsplit

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600
MAX_MEDIA = 10
MAX_CALLBACK_URL = 4000
VALIDITY_RANGE = (1, 36000)
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 1000
PRICE_PER_SEGMENT = 0.0079

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
SHORT_CODE = re.compile(r"^[0-9]{5,6}$")
ALPHA_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
CHANNEL_PREFIX = re.compile(r"^(whatsapp|messenger|rcs):")
HOST_LABEL = re.compile(r"^[A-Za-z0-9-]{1,63}$")


@dataclass(frozen=True)
class ApiError:
    """One Twilio REST error: HTTP status plus the body fields Twilio returns."""

    code: int
    status: int
    message: str

    def body(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


# Synchronous errors, code -> (HTTP status, message). Messages never echo the phone number.
# 21617, 21624, 21701, 21705: Twilio error pages (stored copies); 21623: no stored Twilio page,
# title from memory of the error catalogue ("number of media files exceeds allowed limit").
_SYNC_ERRORS: dict[int, tuple[int, str]] = {
    20001: (400, "Invalid parameter"),
    20003: (401, "Authentication Error - invalid username"),
    20004: (405, "Method not allowed"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "Invalid 'To' Phone Number"),
    21212: (400, "Invalid 'From' Phone Number"),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the "
                 "'To' number"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (400, "The 'From' phone number provided is not a valid message-capable Twilio phone number "
                 "for this destination."),
    21609: (400, "Invalid StatusCallback url"),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (400, "The 'To' phone number is not currently reachable via SMS"),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit"),
    21623: (400, "Number of media files exceeds allowed limit"),
    21624: (400, "Invalid validity period value"),
    21701: (400, "The Messaging Service does not exist"),
    21705: (400, "The Messaging Service is invalid"),
}


def api_error(code: int, message: str | None = None) -> ApiError:
    """The error Twilio answers for `code`; `message` overrides the catalogue text."""
    status, text = _SYNC_ERRORS[code]
    return ApiError(code=code, status=status, message=message or text)


def is_sync_error_code(code: int) -> bool:
    return code in _SYNC_ERRORS


# Asynchronous delivery errors (ErrorCode on callbacks, error_code on the resource).
ASYNC_ERROR_MESSAGES: dict[int, str] = {
    30001: "Queue overflow",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30034: "Message from an unregistered number",
    30036: "Validity Period Expired",
    30450: "Message delivery blocked",
    30500: "Internal error",
}

# Test-credential magic numbers (Twilio "Test credentials" page, copy on twilio-iam-remake.readme.io).
MAGIC_TO: dict[str, int] = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}
MAGIC_FROM: dict[str, int] = {
    "+15005550001": 21212,
    "+15005550007": 21606,
    "+15005550008": 21611,
}


def rfc2822(moment: datetime) -> str:
    """Twilio's date format, e.g. 'Thu, 24 Aug 2023 05:01:45 +0000'."""
    return _rfc2822_second(moment.replace(microsecond=0), moment.utcoffset())


@functools.lru_cache(maxsize=64)  # a busy simulator formats the same few seconds thousands of times
def _rfc2822_second(moment: datetime, offset: timedelta | None) -> str:
    """`offset` is part of the key: equal instants in other zones are equal datetimes, not equal text."""
    return format_datetime(moment)


def dlr_done_date(moment: datetime) -> str:
    """RawDlrDoneDate, YYMMDDhhmm."""
    return moment.strftime("%y%m%d%H%M")


def strip_channel(address: str) -> str:
    return CHANNEL_PREFIX.sub("", address, count=1)


def is_valid_to(address: str) -> bool:
    return bool(E164.match(strip_channel(address)))


def is_valid_sender(address: str) -> bool:
    bare = strip_channel(address)
    return bool(E164.match(bare) or SHORT_CODE.match(bare) or ALPHA_SENDER.match(bare))


@functools.lru_cache(maxsize=256)  # the same StatusCallback comes with every create of a run
def is_valid_callback_url(url: str) -> bool:
    """http(s), a hostname of valid labels (no underscores), at most 4000 characters."""
    if len(url) > MAX_CALLBACK_URL:
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    return all(HOST_LABEL.match(label) for label in host.rstrip(".").split("."))


def parse_validity(raw: str) -> int | None:
    """ValidityPeriod as an int within 1..36000, or None when Twilio would refuse it."""
    if not raw.strip().isdigit():
        return None
    value = int(raw)
    return value if VALIDITY_RANGE[0] <= value <= VALIDITY_RANGE[1] else None


def parse_date_filter(raw: str) -> date | None:
    """A DateSent filter value: YYYY-MM-DD (documented), or the spec examples' other forms."""
    text = raw.strip()
    for parse in (_iso_date, _us_date, _rfc_date):
        found = parse(text)
        if found is not None:
            return found
    return None


def _iso_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _us_date(text: str) -> date | None:
    try:
        return datetime.strptime(text[:10], "%m/%d/%Y").date()
    except ValueError:
        return None


def _rfc_date(text: str) -> date | None:
    try:
        return parsedate_to_datetime(text).date()
    except (TypeError, ValueError, IndexError):
        return None


# GSM 03.38 default alphabet and its extension table (each extension char costs two septets).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
_SEGMENT_LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


def encoding_of(body: str) -> str:
    return "GSM-7" if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in body) else "UCS-2"


def _units(body: str, encoding: str) -> list[int]:
    """Cost of each character in encoding units; never split across segments."""
    if encoding == "GSM-7":
        return [2 if ch in _GSM_EXTENSION else 1 for ch in body]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in body]


def count_segments(body: str) -> int:
    """SMS segments for `body`: 160/153 GSM-7 septets or 70/67 UCS-2 code units per part."""
    if not body:
        return 1
    encoding = encoding_of(body)
    single, multi = _SEGMENT_LIMITS[encoding]
    units = _units(body, encoding)
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for cost in units:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(token, url + name1value1 + name2value2 ...)).

    Parameters are sorted by name (byte order), then by value for repeated names.
    """
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")
