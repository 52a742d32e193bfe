"""The webhook's form decoder answers exactly as `urllib.parse.parse_qsl` (strict, blanks kept)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.web.webhooks import CallbackResult, _decode_form, _Rejected


def reference(body: bytes) -> list[tuple[str, str]] | str:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        return type(exc).__name__


def decoded(body: bytes) -> list[tuple[str, str]] | str:
    try:
        return _decode_form(body)
    except _Rejected as rejected:
        assert rejected.result is CallbackResult.MALFORMED
        return rejected.why


# Bodies from the characters that matter: separators, escapes (valid, truncated, not UTF-8), plus.
_PIECES = st.sampled_from(["&", "=", "+", "%", "%2B", "%20", "%C3%A9", "%C3", "%FF", "%zz", "%2", "a", "B", "1",
                           "é", " ", "\u2028", "MessageSid", ""])


@given(st.lists(_PIECES, max_size=14).map("".join))
def test_any_body_decodes_as_parse_qsl_does(text: str) -> None:
    assert decoded(text.encode("utf-8")) == reference(text.encode("utf-8"))


@given(st.binary(max_size=40))
def test_any_bytes_decode_as_parse_qsl_does(body: bytes) -> None:
    assert decoded(body) == reference(body)


@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=6))
def test_encoded_forms_round_trip(pairs: list[tuple[str, str]]) -> None:
    body = urlencode(pairs).encode("utf-8")
    assert decoded(body) == reference(body) == pairs


@pytest.mark.parametrize("body", [b"", b"a", b"a=1&", b"&a=1", b"a=%E9", b"To=%2B13125550100&Body=hi+there"])
def test_edge_cases(body: bytes) -> None:
    assert decoded(body) == reference(body)
