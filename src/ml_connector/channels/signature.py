"""Twilio webhook signatures (X-Twilio-Signature): HMAC-SHA1 over the URL and the sorted params.

Twilio signs the URL it requested followed by every POST parameter as ``name + value``, names
sorted in case-sensitive code-point order (Python's ``str`` order equals UTF-8 byte order), and
under each name its values sorted and de-duplicated, as twilio-python's ``RequestValidator``
does; for the same URL and params both give the same signature.

Twilio is inconsistent about the port: depending on product and scheme it signs the URL with
or without it. Validation therefore tries the URL with the port removed and with the port
present (the scheme's default added when absent). Userinfo is never signed, so it is dropped
(twilio-python mangles such URLs). The URL text is otherwise used as given, never re-assembled.
JSON bodies are not signed as parameters: Twilio adds a ``bodySHA256`` query parameter (hex
SHA-256 of the raw body) and signs the URL alone.

Pure functions over the standard library; no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "SIGNATURE_HEADER",
    "Params",
    "compute_signature",
    "url_port_variants",
    "validate_json_body",
    "validate_signature",
]

SIGNATURE_HEADER = "X-Twilio-Signature"

# Form params: (name, value) pairs in any order, keys repeated as sent, or a mapping whose
# values are one string or a sequence of strings (a repeated key).
Params = Sequence[tuple[str, str]] | Mapping[str, str] | Mapping[str, Sequence[str]]

_DEFAULT_PORTS: Mapping[str, str] = {"https": "443", "http": "80", "wss": "443", "ws": "80"}


def _grouped(params: Params) -> dict[str, set[str]]:
    """Every name with its distinct values; duplicates collapse like twilio-python's set()."""
    groups: dict[str, set[str]] = {}
    pairs: Iterable[tuple[str, str]]
    if isinstance(params, Mapping):
        pairs = (
            (name, value)
            for name, values in params.items()
            for value in ((values,) if isinstance(values, str) else values)
        )
    else:
        pairs = params
    for name, value in pairs:
        groups.setdefault(name, set()).add(value)
    return groups


def _signing_string(url: str, params: Params) -> str:
    if not isinstance(params, Mapping):
        # Distinct (name, value) pairs in tuple order are the names sorted, each with its values
        # sorted: the same text as grouping first, at a fraction of the cost (every callback).
        return url + "".join(chain.from_iterable(sorted(set(params))))
    groups = _grouped(params)
    parts = [url]
    for name in sorted(groups):
        for value in sorted(groups[name]):
            parts.append(name)
            parts.append(value)
    return "".join(parts)


def compute_signature(auth_token: str, url: str, params: Params = ()) -> str:
    """The base64 HMAC-SHA1 Twilio would send for `params` posted to exactly `url`."""
    mac = hmac.digest(auth_token.encode("utf-8"), _signing_string(url, params).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac).decode("ascii")


def _split_authority(url: str) -> tuple[str, str, str, str] | None:
    """(scheme through '://', host, port, rest) of an absolute URL; userinfo is dropped.

    Works on the text rather than re-assembling a parsed URL, so path, query and any odd
    characters reach the signing string exactly as given. None when there is no authority.
    """
    scheme_end = url.find("://")
    if scheme_end <= 0:
        return None
    start = scheme_end + 3
    end = len(url)
    for stop in "/?#":
        found = url.find(stop, start)
        if found != -1:
            end = min(end, found)
    authority = url[start:end]
    hostport = authority.rpartition("@")[2]
    prefix = url[:start]
    if hostport.startswith("["):  # IPv6 literal: the port follows the closing bracket
        close = hostport.find("]")
        host, port_part = hostport[: close + 1], hostport[close + 1 :]
        port = port_part[1:] if port_part.startswith(":") else ""
    else:
        host, colon, port = hostport.rpartition(":")
        if not colon:
            host, port = hostport, ""
    if port and not port.isdigit():
        return None
    return prefix, host, port, url[end:]


def url_port_variants(url: str) -> tuple[str, ...]:
    """`url` without its port and with it (the scheme's default port added when absent).

    Userinfo (``https://user:pass@host``) is dropped from both: Twilio never signs it. The
    order is stable and duplicates are dropped; a URL whose authority cannot be read is
    returned alone, unchanged.
    """
    parts = _split_authority(url)
    if parts is None:
        return (url,)
    prefix, host, port, rest = parts
    scheme = url[: url.find("://")].lower()
    without = prefix + host + rest
    explicit = port or _DEFAULT_PORTS.get(scheme, "")
    with_port = prefix + host + ":" + explicit + rest if explicit else without
    return tuple(dict.fromkeys((without, with_port)))


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison; bytes so that any header text (even non-ASCII) is comparable."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def validate_signature(auth_token: str, url: str, params: Params, signature: str) -> bool:
    """True when `signature` is Twilio's for `params` posted to `url`, with or without the port.

    `url` must be the URL Twilio requested (the public one, before any reverse proxy), with its
    query string.
    """
    results = [_same(compute_signature(auth_token, variant, params), signature)
               for variant in url_port_variants(url)]
    return any(results)


def validate_json_body(auth_token: str, url_with_body_sha256: str, raw_body: bytes, signature: str) -> bool:
    """True for an authentic JSON webhook: the URL (with `bodySHA256`) is signed with no params,
    and `bodySHA256` is the hex SHA-256 of `raw_body`. A URL without `bodySHA256` never passes:
    the body would otherwise be unauthenticated."""
    query = parse_qs(urlsplit(url_with_body_sha256).query, keep_blank_values=True)
    claimed = query.get("bodySHA256")
    if not claimed:
        return False
    body_ok = _same(hashlib.sha256(raw_body).hexdigest(), claimed[0].lower())
    url_ok = validate_signature(auth_token, url_with_body_sha256, (), signature)
    return body_ok and url_ok
