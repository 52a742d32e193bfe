"""X-Twilio-Signature: Twilio's published vectors, edge cases, and agreement with twilio-python."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from ml_connector.channels.signature import (
    compute_signature,
    url_port_variants,
    validate_json_body,
    validate_signature,
)

TOKEN = "12345"

_V1 = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675310",
    "Digits": "1234",
    "From": "+14158675310",
    "To": "+18005551212",
}
_V2 = {**_V1, "Caller": "+14158675309", "From": "+14158675309"}
_V3 = {k: v for k, v in _V2.items() if k != "Caller"}

# Published in Twilio's webhook-security docs (current and older versions), auth token 12345.
PUBLISHED = [
    ("https://example.com/myapp.php?foo=1&bar=2", _V1, "L/OH5YylLD5NRKLltdqwSvS0BnU="),
    ("https://mycompany.com/myapp.php?foo=1&bar=2", _V2, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ("http://mycompany.com/myapp.php?foo=1&bar=2", _V3, "HpS7PBa1Agvt4OtO+wZp75IuQa0="),
]
JSON_BODY = b'{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}'
JSON_BODY_SHA256 = "5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9"


class MultiDict:
    """What twilio-python accepts for repeated keys (Flask/werkzeug-style `getall`)."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._pairs))

    def __len__(self) -> int:
        return len(self._pairs)

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


# -- published vectors ------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "params", "signature"), PUBLISHED)
def test_published_vectors_compute(url: str, params: dict[str, str], signature: str) -> None:
    assert compute_signature(TOKEN, url, params) == signature
    assert compute_signature(TOKEN, url, list(params.items())[::-1]) == signature


@pytest.mark.parametrize(("url", "params", "signature"), PUBLISHED)
def test_published_vectors_validate(url: str, params: dict[str, str], signature: str) -> None:
    assert validate_signature(TOKEN, url, params, signature)
    assert not validate_signature("54321", url, params, signature)
    assert not validate_signature(TOKEN, url, {**params, "Digits": "1235"}, signature)
    assert not validate_signature(TOKEN, url.replace("foo=1", "foo=2"), params, signature)


def test_published_vector_validates_with_explicit_default_port() -> None:
    url, params, signature = PUBLISHED[0]
    assert validate_signature(TOKEN, url.replace("example.com", "example.com:443"), params, signature)
    # Like twilio-python, any explicit port may also be dropped (Twilio drops it for voice over HTTPS)...
    assert validate_signature(TOKEN, url.replace("example.com", "example.com:8443"), params, signature)
    # ...but a port is never invented: a signature over :8443 does not fit the URL without it.
    signed_8443 = compute_signature(TOKEN, url.replace("example.com", "example.com:8443"), params)
    assert not validate_signature(TOKEN, url, params, signed_8443)


def test_published_json_body_hash() -> None:
    assert hashlib.sha256(JSON_BODY).hexdigest() == JSON_BODY_SHA256


def test_json_body_valid_and_tampered() -> None:
    url = f"https://example.com/myapp.php?bodySHA256={JSON_BODY_SHA256}"
    signature = RequestValidator(TOKEN).compute_signature(url, {})
    assert RequestValidator(TOKEN).validate(url, JSON_BODY.decode(), signature)  # the reference agrees
    assert validate_json_body(TOKEN, url, JSON_BODY, signature)
    assert validate_json_body(TOKEN, url.replace("example.com", "example.com:443"), JSON_BODY, signature)
    assert not validate_json_body(TOKEN, url, JSON_BODY.replace(b"3030", b"3031"), signature)
    assert not validate_json_body("54321", url, JSON_BODY, signature)
    other_hash = hashlib.sha256(b"{}").hexdigest()
    forged_url = f"https://example.com/myapp.php?bodySHA256={other_hash}"
    assert not validate_json_body(TOKEN, forged_url, b"{}", signature)


def test_json_body_without_body_hash_is_refused() -> None:
    url = "https://example.com/myapp.php"
    signature = compute_signature(TOKEN, url)
    assert validate_signature(TOKEN, url, (), signature)
    assert not validate_json_body(TOKEN, url, JSON_BODY, signature)


# -- params: order, repeats, shapes --------------------------------------------------------------


def test_names_sort_case_sensitively_by_code_point() -> None:
    url = "https://h/x"
    expected_string_order = [("B", "2"), ("a", "1"), ("Ä", "3")]  # 'B' < 'a' < 'Ä'
    mac_of = compute_signature(TOKEN, url, [("a", "1"), ("Ä", "3"), ("B", "2")])
    assert mac_of == compute_signature(TOKEN, url + "B2a1Ä3")
    assert mac_of == compute_signature(TOKEN, url, expected_string_order)


def test_repeated_keys_sorted_and_deduplicated_like_twilio_python() -> None:
    url = "https://h/x"
    pairs = [("MediaUrl", "b"), ("MediaUrl", "a"), ("MediaUrl", "b"), ("Body", "")]
    ours = compute_signature(TOKEN, url, pairs)
    assert ours == compute_signature(TOKEN, url + "BodyMediaUrlaMediaUrlb")
    assert ours == compute_signature(TOKEN, url, {"MediaUrl": ["b", "a"], "Body": ""})
    assert ours == RequestValidator(TOKEN).compute_signature(url, MultiDict(pairs))


def test_no_params_signs_the_url_alone() -> None:
    url = "https://h/x?y=1"
    assert compute_signature(TOKEN, url) == compute_signature(TOKEN, url, {})
    assert compute_signature(TOKEN, url) == RequestValidator(TOKEN).compute_signature(url, {})


@pytest.mark.parametrize("signature", ["", "not base64", "Ünïcödé", "L/OH5YylLD5NRKLltdqwSvS0BnU"])
def test_garbage_signatures_are_false_not_errors(signature: str) -> None:
    url, params, _ = PUBLISHED[0]
    assert validate_signature(TOKEN, url, params, signature) is False


# -- URL variants ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "variants"),
    [
        ("https://h.example/a", ("https://h.example/a", "https://h.example:443/a")),
        ("https://h.example:443/a", ("https://h.example/a", "https://h.example:443/a")),
        ("http://h.example/a?b=1", ("http://h.example/a?b=1", "http://h.example:80/a?b=1")),
        ("https://h.example:8443/a", ("https://h.example/a", "https://h.example:8443/a")),
        ("https://h.example?x=1", ("https://h.example?x=1", "https://h.example:443?x=1")),
        ("https://u:p@h.example:8443/a", ("https://h.example/a", "https://h.example:8443/a")),
        ("https://[::1]:8443/a", ("https://[::1]/a", "https://[::1]:8443/a")),
        ("https://[::1]/a", ("https://[::1]/a", "https://[::1]:443/a")),
        ("HTTPS://H.example/A;p?q#f", ("HTTPS://H.example/A;p?q#f", "HTTPS://H.example:443/A;p?q#f")),
        ("ftp://h.example/a", ("ftp://h.example/a",)),
        ("not a url", ("not a url",)),
        ("https://h.example:port/a", ("https://h.example:port/a",)),
    ],
)
def test_url_port_variants(url: str, variants: tuple[str, ...]) -> None:
    assert url_port_variants(url) == variants


def test_userinfo_is_not_signed() -> None:
    signature = compute_signature(TOKEN, "https://h.example/cb", {"A": "1"})
    assert validate_signature(TOKEN, "https://user:secret@h.example/cb", {"A": "1"}, signature)


# -- agreement with twilio-python on random inputs --------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_names = st.one_of(st.sampled_from(["MessageSid", "MessageStatus", "To", "MediaUrl", "a", "A", "Ä"]), _text)
_pairs = st.lists(st.tuples(_names, _text), max_size=8)
_tokens = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
_url_chars = "abcXYZ019-._~%=&+/"


@st.composite
def _url_parts(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """(scheme, host, port suffix, path and query) of a URL both implementations read alike."""
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9.-]{0,20}[a-zA-Z0-9])?", fullmatch=True))
    port = draw(st.sampled_from(["", ":80", ":443", ":8080"]) | st.integers(1, 65535).map(lambda p: f":{p}"))
    path = draw(st.text(st.sampled_from(_url_chars), max_size=20))
    query = draw(st.one_of(st.just(""), st.text(st.sampled_from(_url_chars), min_size=1, max_size=20)))
    return scheme, host, port, f"/{path}" + (f"?{query}" if query else "")


def _join(scheme: str, host: str, port: str, rest: str) -> str:
    return f"{scheme}://{host}{port}{rest}"


@settings(max_examples=300, deadline=None)
@given(token=_tokens, parts=_url_parts(), pairs=_pairs)
def test_compute_matches_twilio_python(
    token: str, parts: tuple[str, str, str, str], pairs: list[tuple[str, str]]
) -> None:
    url = _join(*parts)
    expected = RequestValidator(token).compute_signature(url, MultiDict(pairs))
    assert compute_signature(token, url, pairs) == expected
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    assert compute_signature(token, url, grouped) == expected


@settings(max_examples=300, deadline=None)
@given(
    token=_tokens,
    parts=_url_parts(),
    pairs=_pairs,
    signed_as=st.sampled_from(["same", "no_port", "default_port", "other_port", "other_token", "garbage"]),
)
def test_validate_matches_twilio_python(
    token: str, parts: tuple[str, str, str, str], pairs: list[tuple[str, str]], signed_as: str
) -> None:
    scheme, host, port, rest = parts
    url = _join(*parts)
    default_port = ":443" if scheme == "https" else ":80"
    signers = {
        "same": (token, url),
        "no_port": (token, _join(scheme, host, "", rest)),
        "default_port": (token, _join(scheme, host, default_port, rest)),
        "other_port": (token, _join(scheme, host, ":1", rest)),
        "other_token": (token + "x", url),
    }
    signer = signers.get(signed_as)
    if signer is None:
        signature = "bm90IGEgc2lnbmF0dXJlISE="
    else:
        signature = RequestValidator(signer[0]).compute_signature(signer[1], MultiDict(pairs))
    reference = RequestValidator(token).validate(url, MultiDict(pairs), signature)
    assert validate_signature(token, url, pairs, signature) == reference
    if signed_as in ("same", "no_port") or (signed_as == "default_port" and port in ("", default_port)):
        assert reference
    if signed_as in ("other_token", "garbage") or (signed_as == "other_port" and port != ":1"):
        assert not reference
