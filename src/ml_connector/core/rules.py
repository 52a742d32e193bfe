"""Evaluate a flow's trigger against one ERP record and its last-seen values. Pure.

ERP data is untidy, so comparisons are forgiving in documented ways:

* Strings are stripped before comparing (SYSPRO pads key fields: " 00001").
* Null is None, the empty string, or a whitespace-only string (many ERP APIs turn NULL into "").
  A missing field counts as None.
* Numbers compare numerically when one side is a number (int/float/Decimal) and the other side is
  a number or a numeric string ("1200.50", "1,200.50"); ordering operators (gt/gte/lt/lte) also
  compare two numeric strings numerically.
* A datetime compares with another datetime or an ISO-8601 string of one; a date likewise.
* Values that cannot be compared make the condition false; evaluation never raises for data.

Last-seen values come back from JSON (see `snapshot`), so Decimal("1200.50") and "1200.50" are
equal, and so are a datetime and its ISO string.

Transitions (`becomes`, `changed`) need a last-seen value. When there is none (the record, or this
field, was never seen) it is a *first sighting*: `becomes` and `changed: true` are true only if the
flow says `first_sighting: fire`; `changed: false` is false (nothing is known to be unchanged).
`not_in` is true for a null value unless null is in the list.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal

from ml_connector.core.flowspec import AllOf, AnyOf, Condition, TriggerNode
from ml_connector.core.models import require_aware
from ml_connector.errors import ConfigError

FirstSighting = Literal["skip", "fire"]

_NUMERIC = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
_MISSING = object()


# --------------------------------------------------------------------------- value coercion


def _clean(value: Any) -> Any:
    """Strip strings and fold every kind of null into None."""
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _as_decimal(value: Any) -> Decimal | None:
    """A Decimal for numbers and numeric strings (thousands separators allowed), else None."""
    if _is_number(value):
        try:
            result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            return None
        return result if result.is_finite() else None
    if isinstance(value, str):
        text = value.strip()
        if _GROUPED.fullmatch(text):
            text = text.replace(",", "")
        if _NUMERIC.fullmatch(text):
            return Decimal(text)
    return None


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _as_date(value: Any) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


#: How to bring two values to one comparable type, tried in order: (is this side natively of the
#: type?, convert either side). Equality converts only when one side is native, so two strings stay
#: strings ("007" != "7"); ordering also converts two strings that both parse ("900" < "1000").
_COERCIONS: tuple[tuple[Callable[[Any], bool], Callable[[Any], Any]], ...] = (
    (_is_number, _as_decimal),
    (lambda v: isinstance(v, datetime), _as_datetime),
    (lambda v: isinstance(v, date) and not isinstance(v, datetime), _as_date),
)


def _coerce_pair(a: Any, b: Any, *, both_strings_too: bool) -> tuple[Any, Any] | None:
    for is_native, convert in _COERCIONS:
        if is_native(a) or is_native(b) or (both_strings_too and isinstance(a, str) and isinstance(b, str)):
            left, right = convert(a), convert(b)
            if left is not None and right is not None:
                return left, right
    return None


def values_equal(a: Any, b: Any) -> bool:
    """Equality as the rules see it (stripped strings, folded nulls, numbers/dates by value)."""
    a, b = _clean(a), _clean(b)
    if a is None or b is None:
        return a is None and b is None
    pair = _coerce_pair(a, b, both_strings_too=False)
    if pair is not None:
        a, b = pair
    try:
        return bool(a == b)
    except TypeError:
        return False


def _order(a: Any, b: Any, test: Callable[[Any, Any], bool]) -> bool:
    a, b = _clean(a), _clean(b)
    if a is None or b is None:
        return False
    pair = _coerce_pair(a, b, both_strings_too=True)
    if pair is not None:
        a, b = pair
    elif type(a) is not type(b):
        return False
    try:
        return bool(test(a, b))
    except TypeError:
        return False


# --------------------------------------------------------------------------- operators


@dataclass(frozen=True, slots=True)
class _Facts:
    """What an operator may look at for one condition."""

    value: Any
    previous: Any  # _MISSING on a first sighting of this field
    first_sighting: FirstSighting


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"matches: invalid regular expression {pattern!r}: {exc}") from exc


def _matches(f: _Facts, pattern: Any) -> bool:
    value = _clean(f.value)
    if value is None:
        return False
    return _compiled(str(pattern)).search(str(_jsonable(value))) is not None


def _becomes(f: _Facts, target: Any) -> bool:
    if not values_equal(f.value, target):
        return False
    if f.previous is _MISSING:
        return f.first_sighting == "fire"
    return not values_equal(f.previous, target)


def _changed(f: _Facts, expected: Any) -> bool:
    if f.previous is _MISSING:
        return bool(expected) and f.first_sighting == "fire"
    return (not values_equal(f.value, f.previous)) is bool(expected)


def _in(f: _Facts, options: Any) -> bool:
    return any(values_equal(f.value, option) for option in options or ())


#: Operator name -> test(facts, operand). Names match core.flowspec.OPERATORS.
OPERATORS: Mapping[str, Callable[[_Facts, Any], bool]] = {
    "eq": lambda f, x: values_equal(f.value, x),
    "ne": lambda f, x: not values_equal(f.value, x),
    "in": _in,
    "not_in": lambda f, x: not _in(f, x),
    "gt": lambda f, x: _order(f.value, x, lambda a, b: a > b),
    "gte": lambda f, x: _order(f.value, x, lambda a, b: a >= b),
    "lt": lambda f, x: _order(f.value, x, lambda a, b: a < b),
    "lte": lambda f, x: _order(f.value, x, lambda a, b: a <= b),
    "is_null": lambda f, x: (_clean(f.value) is None) is bool(x),
    "matches": _matches,
    "becomes": _becomes,
    "changed": _changed,
}


# --------------------------------------------------------------------------- trigger tree


def _conditions(node: TriggerNode) -> list[Condition]:
    if isinstance(node, Condition):
        return [node]
    children = node.all if isinstance(node, AllOf) else node.any
    return [c for child in children for c in _conditions(child)]


def watched_fields(trigger: TriggerNode) -> frozenset[str]:
    """Every field the trigger references: what `snapshot` stores as last-seen."""
    return frozenset(c.field for c in _conditions(trigger))


def check_trigger(trigger: TriggerNode) -> None:
    """Raise ConfigError when a `matches` pattern is not a valid regular expression.

    Called by config validation so a bad pattern stops the flow at start-up, not mid-poll.
    """
    problems = []
    for cond in _conditions(trigger):
        if cond.operator == "matches":
            try:
                _compiled(str(cond.operand))
            except ConfigError as exc:
                problems.append(f"{cond.field}: {exc}")
    if problems:
        raise ConfigError("invalid trigger", problems)


def _evaluate(
    node: TriggerNode,
    current: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    first_sighting: FirstSighting,
) -> bool:
    if isinstance(node, AllOf):
        return all(_evaluate(n, current, previous, first_sighting) for n in node.all)
    if isinstance(node, AnyOf):
        return any(_evaluate(n, current, previous, first_sighting) for n in node.any)
    prior = _MISSING if previous is None else previous.get(node.field, _MISSING)
    facts = _Facts(current.get(node.field), prior, first_sighting)
    return OPERATORS[node.operator](facts, node.operand)


def evaluate(
    trigger: TriggerNode,
    current: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    first_sighting: FirstSighting,
) -> bool:
    """True when the record's change is an event for this trigger.

    `previous` is the stored `snapshot` of the last-seen values (None: record never seen). A field
    absent from `previous` (the trigger started watching it later) is a first sighting for that
    field only, so adding a condition does not fire for every known record.
    """
    return _evaluate(trigger, current, previous, first_sighting)


# --------------------------------------------------------------------------- compiled triggers

#: Operators that read the last-seen value or the first-sighting policy; no other operator does.
STATEFUL_OPERATORS = frozenset({"becomes", "changed"})

Predicate = Callable[[Mapping[str, Any], Mapping[str, Any] | None, FirstSighting], bool]


def _text_equals(operand: str) -> Callable[[Any], bool]:
    """`values_equal(value, operand)` for a str operand, without the generic coercion for str values.

    Two plain strings are never coerced (see `_COERCIONS`), so for them equality is "stripped
    text equal, every kind of null alike"; any other value takes the generic path.
    """
    target = _clean(operand)

    def test(value: Any) -> bool:
        if type(value) is str:
            text = value.strip()
            return text == target if target is not None else not text
        return values_equal(value, operand)

    return test


def _text_in(options: list[str]) -> Callable[[Any], bool]:
    """`_in` for a list of str options (see `_text_equals`)."""
    targets = frozenset(_clean(option) for option in options)

    def test(value: Any) -> bool:
        if type(value) is str:
            return (value.strip() or None) in targets
        return any(values_equal(value, option) for option in options)

    return test


def _value_test(operator: str, operand: Any) -> Callable[[Any], bool]:
    """A test of the current value alone, for an operator that is not stateful."""
    if operator in ("eq", "ne") and isinstance(operand, str):
        equals = _text_equals(operand)
        return equals if operator == "eq" else lambda value: not equals(value)
    if operator in ("in", "not_in") and operand and all(isinstance(o, str) for o in operand):
        member = _text_in(list(operand))
        return member if operator == "in" else lambda value: not member(value)
    test = OPERATORS[operator]
    return lambda value: test(_Facts(value, _MISSING, "skip"), operand)


def _compile_node(node: TriggerNode) -> Predicate:
    if isinstance(node, AllOf | AnyOf):
        children = tuple(_compile_node(n) for n in (node.all if isinstance(node, AllOf) else node.any))
        if len(children) == 1:
            return children[0]
        combine = all if isinstance(node, AllOf) else any
        return lambda current, previous, first: combine(c(current, previous, first) for c in children)
    name, operator, operand = node.field, node.operator, node.operand
    if operator in STATEFUL_OPERATORS:
        test = OPERATORS[operator]

        def stateful(current: Mapping[str, Any], previous: Mapping[str, Any] | None, first: FirstSighting) -> bool:
            prior = _MISSING if previous is None else previous.get(name, _MISSING)
            return test(_Facts(current.get(name), prior, first), operand)

        return stateful
    value_test = _value_test(operator, operand)
    return lambda current, previous, first: value_test(current.get(name))


@dataclass(frozen=True, slots=True)
class CompiledTrigger:
    """A trigger turned into closures once, for judging many records (the poller's hot path).

    Same results as `evaluate` and `snapshot` (a property test holds them to it). `stateful` is
    False when no condition is `becomes` or `changed`: then neither the last-seen values nor the
    first-sighting policy can change the outcome, so a caller may skip reading and storing them.
    """

    fields: tuple[str, ...]  # watched fields, sorted (the snapshot's keys)
    stateful: bool
    _test: Predicate

    def evaluate(
        self, current: Mapping[str, Any], previous: Mapping[str, Any] | None, first_sighting: FirstSighting
    ) -> bool:
        """As module-level `evaluate`."""
        return self._test(current, previous, first_sighting)

    def snapshot(self, current: Mapping[str, Any]) -> dict[str, Any]:
        """As module-level `snapshot`."""
        return {name: _jsonable(current.get(name)) for name in self.fields}


def compile_trigger(trigger: TriggerNode) -> CompiledTrigger:
    """Compile once per flow (an invalid `matches` pattern still fails when evaluated, as before)."""
    stateful = any(c.operator in STATEFUL_OPERATORS for c in _conditions(trigger))
    return CompiledTrigger(tuple(sorted(watched_fields(trigger))), stateful, _compile_node(trigger))


# --------------------------------------------------------------------------- last-seen state


def _jsonable(value: Any) -> Any:
    """A JSON-safe form that compares equal (via `values_equal`) to the original."""
    if isinstance(value, str):
        return value.strip()
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def snapshot(trigger: TriggerNode, current: Mapping[str, Any]) -> dict[str, Any]:
    """The watched fields' values to store as last-seen; JSON-serialisable, keys sorted."""
    return {name: _jsonable(current.get(name)) for name in sorted(watched_fields(trigger))}


def event_version(changed_at: datetime, values: Mapping[str, Any]) -> str:
    """A short, stable id of this version of a record: UTC change time + hash of the values.

    Part of the idempotency key, so re-reading the same version (overlap, lookback, crash) yields
    the same notification key, while a later change of the record yields a new one.
    """
    utc = require_aware(changed_at, "changed_at").astimezone(UTC)
    # isoformat is strftime's text for years 1000-9999 at a third of the cost; strftime's %Y
    # is not zero-padded below 1000, and the text must never change (it is in stored keys).
    when = (utc.isoformat(timespec="microseconds")[:26] + "Z" if utc.year >= 1000
            else utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    return f"{when}#{_values_digest(values)}"


def _values_digest(values: Mapping[str, Any]) -> str:
    """sha256 of the values' canonical JSON, first 16 hex digits.

    Remembered for values of exact types str, int, bool and None: records that fire usually
    share their watched values (e.g. {"status": "APPROVED"}), and for these types equal keys
    mean equal JSON (True and 1, or 0.0 and -0.0, would not: floats are never remembered, and
    the type is part of the key). Bounded: cleared when full.
    """
    items = tuple((k, type(v), v) for k, v in values.items())
    memo = items if all(type(k) is str and t in _MEMO_TYPES for k, t, _ in items) else None
    found = _DIGESTS.get(memo) if memo is not None else None
    if found is None:
        canonical = _CANONICAL.encode({str(k): _jsonable(v) for k, v in values.items()})
        found = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
        if memo is not None:
            if len(_DIGESTS) >= _MEMO_SIZE:
                _DIGESTS.clear()
            _DIGESTS[memo] = found
    return found


#: json.dumps(sort_keys=True, separators=(",", ":")) builds this encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_MEMO_TYPES = frozenset({str, int, bool, type(None)})
_MEMO_SIZE = 4096
_DIGESTS: dict[tuple[Any, ...], str] = {}
