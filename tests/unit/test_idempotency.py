"""core.idempotency: deterministic, unambiguous notification keys."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.core.idempotency import notification_key

ARGS = ("po-approved", "purchase_order", "4500001", "2024-05-01T12:00:00.000000Z#ab12", "+13125550142", "sms")


def test_key_is_sha256_hex_and_deterministic() -> None:
    key = notification_key(*ARGS)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key == notification_key(*ARGS)


def test_key_does_not_depend_on_the_process() -> None:
    # Pinned so an accidental change of encoding (which would re-send everything) fails loudly.
    assert notification_key("f", "e", "k", "v", "+1", "sms") == _reference("f", "e", "k", "v", "+1", "sms")


def _reference(*parts: str) -> str:
    data = b"mlc-notification-v1" + b"".join(len(p.encode()).to_bytes(8, "big") + p.encode() for p in parts)
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("position", range(6))
def test_every_part_changes_the_key(position: int) -> None:
    changed = list(ARGS)
    changed[position] += "x"
    assert notification_key(*changed) != notification_key(*ARGS)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("a", "bc", "", "", "", ""), ("ab", "c", "", "", "", "")),
        (("", "", "", "", "", "x"), ("", "", "", "", "x", "")),
        (("a|b", "c", "", "", "", ""), ("a", "b|c", "", "", "", "")),
        (("a\x00", "b", "", "", "", ""), ("a", "\x00b", "", "", "", "")),
    ],
)
def test_boundaries_between_parts_matter(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    assert notification_key(*a) != notification_key(*b)


def test_non_string_parts_are_rejected() -> None:
    with pytest.raises(TypeError):
        notification_key("f", "e", 42, "v", "+1", "sms")  # type: ignore[arg-type]


@given(st.tuples(*[st.text(max_size=8)] * 6), st.tuples(*[st.text(max_size=8)] * 6))
def test_distinct_tuples_give_distinct_keys(a: tuple[str, ...], b: tuple[str, ...]) -> None:
    assert (notification_key(*a) == notification_key(*b)) is (a == b)
