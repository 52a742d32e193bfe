"""core.rules: trigger evaluation against ERP-shaped data, transitions, last-seen snapshots."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter

from ml_connector.core import rules
from ml_connector.core.flowspec import TriggerNode
from ml_connector.errors import ConfigError

_TRIGGER = TypeAdapter(TriggerNode)


def trigger(spec: dict[str, Any]) -> TriggerNode:
    return _TRIGGER.validate_python(spec)


def check(spec: dict[str, Any], current: dict[str, Any], previous: dict[str, Any] | None = None,
          first_sighting: rules.FirstSighting = "skip") -> bool:
    return rules.evaluate(trigger(spec), current, previous, first_sighting)


# --------------------------------------------------------------------------- equality family

@pytest.mark.parametrize(
    ("operand", "value", "expected"),
    [
        ("APPROVED", "APPROVED", True),
        ("APPROVED", "  APPROVED  ", True),          # padding stripped
        ("00001", " 00001", True),                   # SYSPRO space-padded key
        ("APPROVED", "approved", False),             # case matters
        (1000, "1000", True),                        # numeric string vs number
        (1000, "1,000", True),                       # thousands separator
        (1200.5, "1200.50", True),
        (Decimal("1200.50"), 1200.5, True),
        (1000, "1000.01", False),
        ("007", "7", False),                         # two strings stay strings
        (None, None, True),
        (None, "", True),                            # empty string is null
        (None, "   ", True),
        ("X", None, False),
        (5, "abc", False),                           # incomparable: false, no exception
        (datetime(2024, 5, 1, 12, tzinfo=UTC), "2024-05-01T12:00:00+00:00", True),
        (datetime(2024, 5, 1, 12, tzinfo=UTC), "2024-05-01T07:00:00-05:00", True),
        (date(2024, 5, 1), "2024-05-01", True),
        (datetime(2024, 5, 1, 12, tzinfo=UTC), datetime(2024, 5, 1, 12), False),  # aware vs naive
    ],
)
def test_eq_and_ne(operand: Any, value: Any, expected: bool) -> None:
    assert check({"field": "F", "eq": operand}, {"F": value}) is expected
    assert check({"field": "F", "ne": operand}, {"F": value}) is (not expected)


def test_missing_field_is_null() -> None:
    assert check({"field": "F", "eq": None}, {}) is True
    assert check({"field": "F", "is_null": True}, {}) is True
    assert check({"field": "F", "eq": "X"}, {}) is False


@pytest.mark.parametrize(
    ("value", "expected_in"),
    [(204, True), ("204", True), (" 205 ", True), (206, False), (None, False), ("", False)],
)
def test_in_and_not_in(value: Any, expected_in: bool) -> None:
    assert check({"field": "ORG_ID", "in": [204, 205]}, {"ORG_ID": value}) is expected_in
    assert check({"field": "ORG_ID", "not_in": [204, 205]}, {"ORG_ID": value}) is (not expected_in)


def test_in_with_null_in_list() -> None:
    assert check({"field": "F", "in": [None, "X"]}, {"F": ""}) is True
    assert check({"field": "F", "not_in": [None, "X"]}, {}) is False


# --------------------------------------------------------------------------- ordering

@pytest.mark.parametrize(
    ("op", "operand", "value", "expected"),
    [
        ("gte", 1000, "1200.50", True),
        ("gte", 1000, "1,200.50", True),
        ("gte", 1000, Decimal("999.99"), False),
        ("gte", 1000, 1000, True),
        ("gt", 1000, 1000, False),
        ("lt", 1000, 999.5, True),
        ("lte", 1000, "1000.00", True),
        ("gt", "900", "1000", True),                # two numeric strings compare as numbers
        ("gt", "abc", "abd", True),                 # plain strings compare as strings
        ("gt", 1000, "n/a", False),                 # incomparable
        ("gt", 1000, None, False),
        ("lt", 1000, None, False),
        ("gt", 1000, "", False),
        ("gt", 1000, True, False),                  # bools are not numbers here
        ("lt", "2024-06-01", "2024-05-31T23:59:00", True),
        ("gt", datetime(2024, 5, 1, tzinfo=UTC), "2024-05-01T00:00:01Z", True),
        ("gt", datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2), False),  # naive vs aware
        ("lt", date(2024, 5, 2), date(2024, 5, 1), True),
        ("lt", date(2024, 5, 2), datetime(2024, 5, 1, tzinfo=UTC), False),      # date vs datetime
        ("gt", 5, [1], False),
    ],
)
def test_ordering(op: str, operand: Any, value: Any, expected: bool) -> None:
    assert check({"field": "F", op: operand}, {"F": value}) is expected


# --------------------------------------------------------------------------- is_null, matches

@pytest.mark.parametrize(
    ("value", "is_null"),
    [(None, True), ("", True), ("  \t", True), ("x", False), (0, False), (Decimal(0), False), (False, False)],
)
def test_is_null(value: Any, is_null: bool) -> None:
    assert check({"field": "F", "is_null": True}, {"F": value}) is is_null
    assert check({"field": "F", "is_null": False}, {"F": value}) is (not is_null)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("^ACME", "ACME Corp", True),
        ("^ACME", "  ACME Corp", True),   # padding stripped first
        ("Corp$", "ACME Corp   ", True),
        ("ACME", "The ACME Corp", True),  # search, not match
        ("^ACME", "The ACME Corp", False),
        (r"^\d+\.50$", Decimal("1200.50"), True),
        ("^2024-05", datetime(2024, 5, 1, tzinfo=UTC), True),
        ("x", None, False),
        ("^$", "", False),                # null never matches
    ],
)
def test_matches(pattern: str, value: Any, expected: bool) -> None:
    assert check({"field": "F", "matches": pattern}, {"F": value}) is expected


def test_matches_compiles_each_pattern_once() -> None:
    rules._compiled.cache_clear()
    t = trigger({"field": "F", "matches": "^unique-pattern-for-cache-test"})
    for _ in range(5):
        rules.evaluate(t, {"F": "unique-pattern-for-cache-test"}, None, "skip")
    info = rules._compiled.cache_info()
    assert (info.misses, info.hits) == (1, 4)


def test_invalid_regex_is_a_config_error() -> None:
    t = trigger({"all": [{"field": "A", "eq": 1}, {"field": "NAME", "matches": "(unclosed"}]})
    with pytest.raises(ConfigError) as caught:
        rules.check_trigger(t)
    assert "NAME" in str(caught.value) and "invalid regular expression" in str(caught.value)
    with pytest.raises(ConfigError):
        rules.evaluate(t, {"A": 1, "NAME": "x"}, None, "skip")


def test_check_trigger_accepts_valid_patterns() -> None:
    rules.check_trigger(trigger({"field": "NAME", "matches": "^ACME"}))


# --------------------------------------------------------------------------- transitions

BECOMES = {"field": "STATUS", "becomes": "APPROVED"}


@pytest.mark.parametrize(
    ("current", "previous", "first_sighting", "expected"),
    [
        ("APPROVED", {"STATUS": "IN PROCESS"}, "skip", True),
        ("APPROVED", {"STATUS": None}, "skip", True),
        ("APPROVED", {"STATUS": "APPROVED"}, "skip", False),       # touched again: no event
        ("APPROVED", {"STATUS": "APPROVED  "}, "skip", False),     # padding is not a change
        ("IN PROCESS", {"STATUS": "INCOMPLETE"}, "skip", False),
        ("APPROVED", None, "skip", False),                         # first sighting
        ("APPROVED", None, "fire", True),
        ("IN PROCESS", None, "fire", False),
        ("APPROVED", {"OTHER": 1}, "skip", False),                 # field newly watched
        ("APPROVED", {"OTHER": 1}, "fire", True),
    ],
)
def test_becomes(current: str, previous: dict[str, Any] | None, first_sighting: rules.FirstSighting,
                 expected: bool) -> None:
    assert check(BECOMES, {"STATUS": current}, previous, first_sighting) is expected


def test_becomes_numeric_against_json_previous() -> None:
    t = {"field": "LEVEL", "becomes": 3}
    assert check(t, {"LEVEL": Decimal(3)}, {"LEVEL": "2"}) is True
    assert check(t, {"LEVEL": Decimal(3)}, {"LEVEL": "3"}) is False


@pytest.mark.parametrize(
    ("current", "previous", "first_sighting", "changed_true"),
    [
        ("B", {"F": "A"}, "skip", True),
        ("A", {"F": "A"}, "skip", False),
        (" A ", {"F": "A"}, "skip", False),
        (None, {"F": "A"}, "skip", True),
        ("", {"F": None}, "skip", False),
        (Decimal("1200.50"), {"F": "1200.50"}, "skip", False),   # JSON round trip
        (Decimal("1200.5"), {"F": "1200.50"}, "skip", False),
        (Decimal("1200.51"), {"F": "1200.50"}, "skip", True),
        (datetime(2024, 5, 1, 12, tzinfo=UTC), {"F": "2024-05-01T12:00:00+00:00"}, "skip", False),
        (datetime(2024, 5, 1, 13, tzinfo=UTC), {"F": "2024-05-01T12:00:00+00:00"}, "skip", True),
    ],
)
def test_changed(current: Any, previous: dict[str, Any], first_sighting: rules.FirstSighting,
                 changed_true: bool) -> None:
    assert check({"field": "F", "changed": True}, {"F": current}, previous, first_sighting) is changed_true
    assert check({"field": "F", "changed": False}, {"F": current}, previous, first_sighting) is (
        not changed_true
    )


@pytest.mark.parametrize(("first_sighting", "changed_true"), [("skip", False), ("fire", True)])
def test_changed_on_first_sighting(first_sighting: rules.FirstSighting, changed_true: bool) -> None:
    assert check({"field": "F", "changed": True}, {"F": "A"}, None, first_sighting) is changed_true
    # Without a baseline nothing is known to be unchanged.
    assert check({"field": "F", "changed": False}, {"F": "A"}, None, first_sighting) is False


# --------------------------------------------------------------------------- trees

PO_TRIGGER = {
    "all": [
        {"field": "AUTHORIZATION_STATUS", "becomes": "APPROVED"},
        {"field": "AMOUNT", "gte": 1000},
        {"any": [{"field": "ORG_ID", "in": [204, 205]}, {"field": "VENDOR_NAME", "matches": "^ACME"}]},
    ]
}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"AUTHORIZATION_STATUS": "APPROVED", "AMOUNT": "1200.5", "ORG_ID": 204, "VENDOR_NAME": "Z"}, True),
        ({"AUTHORIZATION_STATUS": "APPROVED", "AMOUNT": "1200.5", "ORG_ID": 9, "VENDOR_NAME": "ACME"}, True),
        ({"AUTHORIZATION_STATUS": "APPROVED", "AMOUNT": "1200.5", "ORG_ID": 9, "VENDOR_NAME": "Z"}, False),
        ({"AUTHORIZATION_STATUS": "APPROVED", "AMOUNT": "999", "ORG_ID": 204}, False),
        ({"AUTHORIZATION_STATUS": "IN PROCESS", "AMOUNT": 5000, "ORG_ID": 204}, False),
    ],
)
def test_nested_tree(record: dict[str, Any], expected: bool) -> None:
    previous = {"AUTHORIZATION_STATUS": "IN PROCESS", "AMOUNT": "1200.50", "ORG_ID": 204, "VENDOR_NAME": None}
    assert check(PO_TRIGGER, record, previous) is expected


def test_any_with_first_sighting_skip_still_fires_on_plain_conditions() -> None:
    t = {"any": [{"field": "S", "becomes": "X"}, {"field": "AMOUNT", "gt": 10}]}
    assert check(t, {"S": "X", "AMOUNT": 50}, None, "skip") is True
    assert check(t, {"S": "X", "AMOUNT": 5}, None, "skip") is False


def test_every_flowspec_operator_has_an_implementation() -> None:
    from ml_connector.core.flowspec import OPERATORS

    assert set(OPERATORS) == set(rules.OPERATORS)


def test_watched_fields() -> None:
    assert rules.watched_fields(trigger(PO_TRIGGER)) == frozenset(
        {"AUTHORIZATION_STATUS", "AMOUNT", "ORG_ID", "VENDOR_NAME"}
    )
    assert rules.watched_fields(trigger({"field": "X", "eq": 1})) == frozenset({"X"})


# --------------------------------------------------------------------------- snapshot / version

def test_snapshot_is_json_and_round_trips_for_comparison() -> None:
    t = trigger({"all": [{"field": "AMOUNT", "changed": True}, {"field": "WHEN", "changed": True},
                         {"field": "DAY", "changed": True}, {"field": "CODE", "changed": True},
                         {"field": "GONE", "changed": True}]})
    record = {
        "AMOUNT": Decimal("1200.50"),
        "WHEN": datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=-5))),
        "DAY": date(2024, 5, 1),
        "CODE": " 00001",
        "UNWATCHED": "x",
    }
    snap = rules.snapshot(t, record)
    assert list(snap) == sorted(snap)
    assert snap == {
        "AMOUNT": "1200.50",
        "CODE": "00001",
        "DAY": "2024-05-01",
        "GONE": None,
        "WHEN": "2024-05-01T12:30:00-05:00",
    }
    previous = json.loads(json.dumps(snap))
    assert rules.evaluate(t, record, previous, "skip") is False     # nothing changed
    moved = {**record, "AMOUNT": Decimal("1200.75")}
    assert rules.evaluate(t, moved, previous, "skip") is False      # all: needs every field changed
    any_t = trigger({"any": [{"field": k, "changed": True} for k in ("AMOUNT", "WHEN", "DAY", "CODE")]})
    assert rules.evaluate(any_t, moved, previous, "skip") is True


def test_event_version_is_stable_and_sensitive() -> None:
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    v1 = rules.event_version(at, {"B": Decimal("1.50"), "A": "x"})
    assert v1 == rules.event_version(at, {"A": "x", "B": Decimal("1.50")})        # key order
    same_instant = at.astimezone(timezone(timedelta(hours=2)))
    assert v1 == rules.event_version(same_instant, {"A": "x", "B": Decimal("1.50")})
    assert v1.startswith("2024-05-01T12:00:00.000000Z#")
    assert len(v1) < 50
    assert v1 != rules.event_version(at + timedelta(microseconds=1), {"A": "x", "B": Decimal("1.50")})
    assert v1 != rules.event_version(at, {"A": "y", "B": Decimal("1.50")})
    assert v1 != rules.event_version(at, {"A": "x"})


def test_event_version_rejects_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        rules.event_version(datetime(2024, 5, 1), {})
