"""core.rules.compile_trigger: the poller's compiled triggers agree with `evaluate` and `snapshot`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from ml_connector.core import rules
from ml_connector.core.flowspec import TriggerNode

_TRIGGER = TypeAdapter(TriggerNode)
FIELDS = ("A", "B", "C")

#: ERP-shaped values, including the ones the forgiving comparisons treat specially.
VALUES = st.sampled_from([
    None, "", "  ", "APPROVED", " APPROVED ", "approved", "1000", "1,000", "1000.00", "007", "7", "abc",
    "2024-05-01", "2024-05-01T12:00:00+00:00", " 00001", "00001", 0, 7, 1000, -3, 1000.0, 1200.5,
    Decimal("1000"), Decimal("1200.50"), True, False, datetime(2024, 5, 1, 12, tzinfo=UTC),
    datetime(2024, 5, 1, 12), date(2024, 5, 1), float("nan"),
])
STRINGS = st.sampled_from(["APPROVED", " APPROVED", "", "  ", "1000", "007", "abc", "2024-05-01", "00001"])


def condition() -> st.SearchStrategy[dict[str, Any]]:
    name = st.sampled_from(FIELDS)
    ops = st.one_of(
        st.tuples(st.sampled_from(["eq", "ne", "becomes", "gt", "gte", "lt", "lte"]), st.one_of(VALUES, STRINGS)),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(st.one_of(VALUES, STRINGS), max_size=3)),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(STRINGS, min_size=1, max_size=3)),
        st.tuples(st.sampled_from(["is_null", "changed"]), st.booleans()),
        st.tuples(st.just("matches"), st.sampled_from(["^A", r"\d+", "ok$", "00"])),
    )
    return st.builds(lambda f, op: {"field": f, op[0]: op[1]}, name, ops)


TRIGGERS = st.recursive(
    condition(),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=5,
)
RECORDS = st.dictionaries(st.sampled_from(FIELDS), VALUES)
PREVIOUS = st.one_of(st.none(), st.dictionaries(st.sampled_from(FIELDS), st.one_of(VALUES, STRINGS)))


@settings(max_examples=1500, deadline=None)
@given(spec=TRIGGERS, current=RECORDS, previous=PREVIOUS, first=st.sampled_from(["skip", "fire"]))
def test_compiled_trigger_agrees_with_evaluate_and_snapshot(
    spec: dict[str, Any], current: dict[str, Any], previous: dict[str, Any] | None, first: rules.FirstSighting
) -> None:
    trigger = _TRIGGER.validate_python(spec)
    compiled = rules.compile_trigger(trigger)
    assert compiled.evaluate(current, previous, first) is rules.evaluate(trigger, current, previous, first)
    assert compiled.snapshot(current) == rules.snapshot(trigger, current)
    assert list(compiled.snapshot(current)) == list(rules.snapshot(trigger, current))


@settings(max_examples=500, deadline=None)
@given(spec=TRIGGERS, current=RECORDS, previous=PREVIOUS, other=PREVIOUS,
       first=st.sampled_from(["skip", "fire"]))
def test_a_stateless_trigger_ignores_previous_values_and_first_sighting(
    spec: dict[str, Any], current: dict[str, Any], previous: dict[str, Any] | None,
    other: dict[str, Any] | None, first: rules.FirstSighting,
) -> None:
    """What lets the poller skip last-seen state: outcome independent of it when not `stateful`."""
    trigger = _TRIGGER.validate_python(spec)
    compiled = rules.compile_trigger(trigger)
    if not compiled.stateful:
        assert rules.evaluate(trigger, current, previous, first) is rules.evaluate(trigger, current, other, "skip")


@pytest.mark.parametrize(
    ("spec", "stateful"),
    [
        ({"field": "A", "eq": "X"}, False),
        ({"all": [{"field": "A", "eq": "X"}, {"any": [{"field": "B", "gt": 3}, {"field": "C", "is_null": True}]}]},
         False),
        ({"field": "A", "becomes": "X"}, True),
        ({"any": [{"field": "A", "eq": "X"}, {"field": "B", "changed": True}]}, True),
        ({"field": "A", "changed": False}, True),
    ],
)
def test_stateful_means_a_transition_operator_somewhere(spec: dict[str, Any], stateful: bool) -> None:
    assert rules.compile_trigger(_TRIGGER.validate_python(spec)).stateful is stateful


def test_compiled_fields_are_the_sorted_watched_fields() -> None:
    trigger = _TRIGGER.validate_python({"all": [{"field": "B", "eq": 1}, {"field": "A", "becomes": 2},
                                                {"field": "B", "lt": 9}]})
    assert rules.compile_trigger(trigger).fields == ("A", "B")


def test_text_fast_path_matches_generic_equality_for_non_text_values() -> None:
    compiled = rules.compile_trigger(_TRIGGER.validate_python({"field": "A", "eq": "1000"}))
    assert compiled.evaluate({"A": 1000}, None, "skip") is True          # number vs numeric text
    assert compiled.evaluate({"A": Decimal("1000.0")}, None, "skip") is True
    assert compiled.evaluate({"A": " 1000 "}, None, "skip") is True
    assert compiled.evaluate({"A": "1,000"}, None, "skip") is False       # two strings stay strings
    empty = rules.compile_trigger(_TRIGGER.validate_python({"field": "A", "in": ["", "X"]}))
    assert empty.evaluate({}, None, "skip") is True                       # "" is null, and so is missing
    assert empty.evaluate({"A": "  "}, None, "skip") is True
