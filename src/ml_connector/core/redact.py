"""The one choke point for masking secrets and phone numbers before text is logged or raised.

Every log line, exception message and audit summary that may carry a phone number, a password
or a token passes through here, so the masking rules live in one place and are tested once.
Masking is deliberately lossy and stable: the same number always masks the same way, so an
operator can still tell two recipients apart in a log without seeing either number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

MASK = "•••"
SECRET_MASK = "****"  # noqa: S105 - the mask, not a password

#: National-number length -> (leading digits kept, trailing digits kept). Shorter numbers keep less,
#: so at least three digits are always hidden; anything under six digits is hidden entirely.
_KEEP_BY_LENGTH: tuple[tuple[int, tuple[int, int]], ...] = (
    (10, (3, 4)),
    (8, (2, 2)),
    (6, (0, 2)),
    (0, (0, 0)),
)

#: Query parameter names containing any of these (case-insensitive) have their value masked.
#: Covers SYSPRO's CompanyPassword/OperatorPassword and the usual token/key/signature names.
SECRET_PARAM_WORDS: tuple[str, ...] = (
    "password", "passwd", "pwd", "token", "secret", "key", "signature", "auth", "session", "userid",
)

_CHANNEL_PREFIX = re.compile(r"^(?P<prefix>[a-z][a-z0-9+.-]*:)(?=\+?\d)", re.IGNORECASE)

#: What looks like a phone number in free text: E.164-ish with separators (also URL-encoded,
#: "%2B1312..."), a North American grouped number, or a bare run of 10-15 digits (judged by
#: `_bare_is_phone`). Digits glued to letters or to another number's separators are left alone:
#: SIDs and hashes, IP addresses and ports, dates, versions in URL paths.
_PHONE_IN_TEXT = re.compile(
    r"(?<![\w+%])(?<!\d[.:\-])(?:"
    r"(?P<plus>\+|%2[Bb])\d(?:[\s.\-()]{0,2}\d){7,16}"
    r"|(?P<grouped>(?:\(\d{3}\)|\d{3})[\s.\-]{1,2}\d{3}[\s.\-]\d{4})"
    r"|(?P<bare>\d{10,15})"
    r")(?![\w%]|[.:\-]\d)"
)

#: A North American number: area code and exchange do not start with 0 or 1.
_NANP = re.compile(r"1?[2-9]\d{2}[2-9]\d{6}")


def _bare_is_phone(digits: str) -> bool:
    """A bare digit run is masked when it has a phone number's shape.

    Ten digits: the North American plan's shape (so epoch timestamps and SAP's 45000/45001...
    purchase orders stay readable; a document number of that shape is masked like a phone);
    eleven to fifteen: that shape after a 1, or a valid international number without its "+".
    """
    if _NANP.fullmatch(digits) is not None:
        return True
    if len(digits) <= 10:
        return False
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse("+" + digits)))
    except phonenumbers.NumberParseException:
        return False


def _mask_in_text(match: re.Match[str]) -> str:
    text = match.group(0)
    if match.group("bare") is not None and not _bare_is_phone(text):
        return text
    if match.group("plus") and match.group("plus") != "+":  # %2B: URL-encoded
        return match.group("plus") + mask_phone("+" + text[3:])[1:]
    return mask_phone(text)


def _country_code_length(digits: str) -> int:
    """Length of the ITU country code at the start of `digits` (0 when none matches)."""
    for size in (1, 2, 3):
        if len(digits) > size and int(digits[:size]) in COUNTRY_CODE_TO_REGION_CODE:
            return size
    return 0


def _keep(length: int) -> tuple[int, int]:
    for minimum, keep in _KEEP_BY_LENGTH:
        if length >= minimum:
            return keep
    return (0, 0)


def mask_phone(value: str | None) -> str:
    """Mask a phone number: "+13125550142" -> "+1312•••0142".

    Keeps the country code (when the number starts with "+"), the first three and the last four
    digits of a full-length number; shorter numbers show less. Formatting characters are dropped,
    so "(312) 555-0142" masks to "312•••0142". A channel prefix such as "whatsapp:" is kept.
    """
    if not value:
        return ""
    text = value.strip()
    prefix = ""
    channel = _CHANNEL_PREFIX.match(text)
    if channel:
        prefix = channel.group("prefix")
        text = text[channel.end():]
    international = text.startswith("+")
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        return prefix + MASK
    cc_len = _country_code_length(digits) if international else 0
    country, national = digits[:cc_len], digits[cc_len:]
    head, tail = _keep(len(national))
    shown_tail = national[len(national) - tail:] if tail else ""
    plus = "+" if international else ""
    return f"{prefix}{plus}{country}{national[:head]}{MASK}{shown_tail}"


def mask_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret in `text` with "****".

    Longer secrets are replaced first so a secret containing another is not half-masked.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, SECRET_MASK)
    return text


def is_secret_name(name: str) -> bool:
    """True when a parameter or header name looks like it carries a credential."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_PARAM_WORDS)


def _mask_query(query: str) -> str:
    """Mask secret-looking values while keeping the rest of the query byte for byte."""
    parts = []
    for item in query.split("&"):
        name, sep, _value = item.partition("=")
        parts.append(f"{name}={SECRET_MASK}" if sep and is_secret_name(name) else item)
    return "&".join(parts)


def mask_url(url: str) -> str:
    """Mask a URL's userinfo password and the values of query parameters that look secret.

    `https://u:pw@erp/logon?Operator=ADMIN&OperatorPassword=x` ->
    `https://u:****@erp/logon?Operator=ADMIN&OperatorPassword=****`.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return SECRET_MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{SECRET_MASK}@{host}" if has_password else f"{user}@{host}"
    query = _mask_query(parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret; rebuilding could change the URL (sqlite:////abs/path)
    if not url.startswith(f"{parts.scheme}://"):
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    # By hand: urlunsplit drops the empty authority of scheme://// URLs it does not know.
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


def scrub_phones(text: str) -> str:
    """Mask the phone numbers in free text (E.164, grouped, or a bare run shaped like one), and
    nothing else: URLs keep their hosts, ports and paths, SIDs and other numbers stay readable."""
    return _PHONE_IN_TEXT.sub(_mask_in_text, text)
