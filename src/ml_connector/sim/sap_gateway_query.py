"""OData v2 query options as the simulated Gateway understands them, and its JSON encoding.

`$filter`: comparisons (eq ne gt ge lt le) of a property with a literal ('text', 12, 12.5M,
12L, true, datetime'2024-03-05T00:00:00', datetimeoffset'...Z', time'PT13H45M00S'), joined by
and/or/not with parentheses; a syntax error is Gateway's 400. DATS values compare as midnight.
JSON: Edm.DateTime as ``/Date(ms)/`` of the wall time, Edm.Time as ``PT13H45M00S``,
Edm.Decimal as a string, empty CHAR as "".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ml_connector.sim.sap_gateway_data import SetSchema, Value

_TOKEN = re.compile(r"\s*(?:(?P<lit>(?:datetime|datetimeoffset|time|guid)?'(?:[^']|'')*')"
                    r"|(?P<num>-?\d+(?:\.\d+)?[MmLlDdFf]?)|(?P<paren>[()])|(?P<word>[A-Za-z_][A-Za-z0-9_/]*))")
_EPOCH = datetime(1970, 1, 1)
_COMPARE: Mapping[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
}

Predicate = Callable[[Mapping[str, Value]], bool]


class QueryError(ValueError):
    """A query option Gateway would refuse with 400."""


def _literal(text: str) -> Any:
    if text.startswith("datetimeoffset'"):
        return datetime.fromisoformat(text[15:-1].replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)
    if text.startswith("datetime'"):
        return datetime.fromisoformat(text[9:-1])
    if text.startswith("time'"):
        return parse_duration(text[5:-1])
    if text.startswith("guid'"):
        return text[5:-1]
    return text[1:-1].replace("''", "'")


def parse_duration(text: str) -> time:
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", text)
    if not m:
        raise QueryError(f"Invalid time literal {text}")
    h, mi, s = (int(g or 0) for g in m.groups())
    return time(h, mi, s)


def _comparable(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time())
    return value


class _Parser:
    def __init__(self, text: str, schema: SetSchema) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise QueryError(f"Invalid filter expression near '{text[pos:pos + 20]}'")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.schema = schema

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("Invalid filter expression: unexpected end")
        self.i += 1
        return token

    def parse(self) -> Predicate:
        found = self.expression()
        if self.peek() is not None:
            raise QueryError(f"Invalid filter expression near '{self.peek()}'")
        return found

    def expression(self) -> Predicate:
        left = self.conjunction()
        while self.peek() == ("word", "or"):
            self.take()
            right = self.conjunction()
            left = (lambda a, b: lambda row: a(row) or b(row))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.unary()
        while self.peek() == ("word", "and"):
            self.take()
            right = self.unary()
            left = (lambda a, b: lambda row: a(row) and b(row))(left, right)
        return left

    def unary(self) -> Predicate:
        if self.peek() == ("word", "not"):
            self.take()
            inner = self.unary()
            return lambda row: not inner(row)
        if self.peek() == ("paren", "("):
            self.take()
            inner = self.expression()
            if self.take() != ("paren", ")"):
                raise QueryError("Invalid filter expression: ')' expected")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        kind, name = self.take()
        if kind != "word" or self.schema.prop(name) is None:
            raise QueryError(f"Property '{name}' not found in type '{self.schema.type_name}'")
        _, op = self.take()
        if op not in _COMPARE:
            raise QueryError(f"Invalid filter operator '{op}'")
        kind, text = self.take()
        value: Any
        if kind == "lit":
            value = _literal(text)
        elif kind == "num":
            value = Decimal(text.rstrip("MmLlDdFf"))
        elif text in ("true", "false", "null"):
            value = {"true": True, "false": False, "null": None}[text]
        else:
            raise QueryError(f"Invalid literal '{text}'")
        test = _COMPARE[op]
        wanted = _comparable(value)

        def predicate(row: Mapping[str, Value]) -> bool:
            have = _comparable(row.get(name))
            if have is None or wanted is None:
                return op == ("eq" if have is wanted else "ne")
            if isinstance(have, Decimal | int) and isinstance(wanted, str):
                return False
            try:
                return test(have, wanted)
            except TypeError:
                return False

        return predicate


def compile_filter(text: str, schema: SetSchema) -> Predicate:
    return _Parser(text, schema).parse()


def sort_rows(rows: list[dict[str, Value]], orderby: str | None, schema: SetSchema) -> list[dict[str, Value]]:
    """Ordered by $orderby (each `Prop [asc|desc]`), then by key, as Gateway's SQL would."""
    result = sorted(rows, key=lambda r: tuple(str(r.get(k) or "") for k in schema.keys))
    if orderby:
        for part in reversed([p.strip() for p in orderby.split(",") if p.strip()]):
            name, _, direction = part.partition(" ")
            if schema.prop(name) is None:
                raise QueryError(f"Property '{name}' not found in type '{schema.type_name}'")
            result.sort(key=_by(name), reverse=direction.strip() == "desc")
    return result


def _by(name: str) -> Callable[[dict[str, Value]], tuple[int, Any]]:
    return lambda row: _sortable(row.get(name))


def _sortable(value: Value) -> tuple[int, Any]:
    if value is None or value == "":
        return (0, "")
    if isinstance(value, time):
        return (1, value.isoformat())
    compared = _comparable(value)
    return (1, compared.isoformat() if isinstance(compared, datetime) else compared)


def encode_value(value: Value, edm: str) -> Any:
    if value is None:
        return "" if edm == "Edm.String" else None
    if edm == "Edm.DateTime" and isinstance(value, date):
        wall = value if isinstance(value, datetime) else datetime.combine(value, time())
        return f"/Date({(wall - _EPOCH) // timedelta(milliseconds=1)})/"
    if edm == "Edm.Time" and isinstance(value, time):
        return f"PT{value.hour:02d}H{value.minute:02d}M{value.second:02d}S"
    if edm in ("Edm.Decimal", "Edm.Int64"):
        return str(value)
    return value


def encode_row(row: Mapping[str, Value], schema: SetSchema, uri: str, select: list[str] | None) -> dict[str, Any]:
    if len(schema.keys) > 1:
        keys = ",".join(f"{k}='{row.get(k)}'" for k in schema.keys)
    else:
        keys = f"'{row.get(schema.keys[0])}'"
    address = f"{uri}{schema.name}({keys})"
    service = uri.rstrip("/").rsplit("/", 1)[-1].split(";")[0]
    out: dict[str, Any] = {"__metadata": {"id": address, "uri": address, "type": f"{service}.{schema.type_name}"}}
    for prop in schema.props:
        if select and prop.name not in select:
            continue
        out[prop.name] = encode_value(row.get(prop.name), prop.edm)
    return out
