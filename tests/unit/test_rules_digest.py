"""core.rules.event_version: the remembered values digest is the one computed afresh."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ml_connector.core import rules

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

#: Values that are equal (or hash alike) yet encode differently: the memo must keep them apart.
_TRICKY = st.sampled_from([1, True, 1.0, 0, False, 0.0, -0.0, None, "1", " 1", "true", Decimal("1"), float("nan")])
_VALUES = st.one_of(_TRICKY, st.text(max_size=5), st.integers(), st.floats(), st.booleans(), st.none())


def _fresh(values: dict[str, Any]) -> str:
    canonical = json.dumps({k: rules._jsonable(v) for k, v in values.items()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["A", "B", "status"]), _VALUES, max_size=3), min_size=1, max_size=6))
def test_remembered_digest_is_the_fresh_one(batch: list[dict[str, Any]]) -> None:
    for values in batch + batch:  # the second pass reads what the first remembered
        assert rules.event_version(AT, values) == f"2024-05-01T12:00:00.000000Z#{_fresh(values)}"


def test_true_and_one_do_not_share_a_digest() -> None:
    assert rules.event_version(AT, {"A": 1}) != rules.event_version(AT, {"A": True})
    assert rules.event_version(AT, {"A": 0.0}) != rules.event_version(AT, {"A": -0.0})
    assert rules.event_version(AT, {"A": 1}) != rules.event_version(AT, {"A": True})


def test_the_memo_stays_bounded() -> None:
    for i in range(rules._MEMO_SIZE + 10):
        rules.event_version(AT, {"A": f"value {i}"})
    assert len(rules._DIGESTS) <= rules._MEMO_SIZE
