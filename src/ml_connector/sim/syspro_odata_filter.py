"""OData v4 ``$filter`` for the SYSPRO OData simulator: comparisons joined by and/or, with brackets.

Supported: ``eq ne gt ge lt le``, ``and``, ``or``, parentheses; a property on the left and a
literal on the right. Literals are typed as OData types them and must match the property's type
(as ASP.NET OData insists): strings ``'it''s'``, dates ``2026-11-01`` (Edm.Date columns take no
DateTimeOffset), numbers, ``null``, and binary ``binary'AAAAAAAAB9M='`` for a rowversion exposed as
Edm.Binary. Functions (``contains``, ``startswith`` ...) and ``not`` are refused with 400: the
service is not known to offer them. String comparisons follow the SQL Server collation.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import NoReturn

from ml_connector.sim.syspro_data import COMPARISONS, Column, Row, Value

Predicate = Callable[[Row], bool]


class ODataQueryError(ValueError):
    """A query option the service rejects with HTTP 400."""


@dataclass(frozen=True)
class Literal:
    edm: str
    value: Value


OPERATORS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "eq": ("EQ", "Equal"), "ne": ("NE", "NotEqual"), "gt": ("GT", "GreaterThan"),
    "ge": ("GE", "GreaterThanOrEqual"), "lt": ("LT", "LessThan"), "le": ("LE", "LessThanOrEqual"),
})
"""OData operator -> (comparison, the operator kind ASP.NET OData names in errors)."""

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<paren>[()])
  | (?P<comma>,)
  | (?P<string>'(?:[^']|'')*')
  | (?P<binary>binary'[A-Za-z0-9+/=_-]*')
  | (?P<dto>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDlL]?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)


def _binary(text: str) -> int:
    raw = text[len("binary'"):-1]
    try:
        altchars = b"-_" if re.search("[-_]", raw) else None
        data = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ODataQueryError(f"Unrecognized 'Edm.Binary' literal '{text}'.") from exc
    if len(data) > 8:
        raise ODataQueryError(f"Unrecognized 'Edm.Binary' literal '{text}'.")
    return int.from_bytes(data, "big")


def _number(text: str) -> Literal:
    body = text.rstrip("mMdDlL")
    if re.fullmatch(r"-?\d+", body) and text[-1:] not in "mMdD":
        value = int(body)
        return Literal("Edm.Int32" if -2**31 <= value < 2**31 else "Edm.Int64", value)
    return Literal("Edm.Decimal", Decimal(body))


def _date(text: str) -> Literal:
    try:
        return Literal("Edm.Date", date.fromisoformat(text))
    except ValueError as exc:
        raise ODataQueryError(f"Unrecognized 'Edm.Date' literal '{text}'.") from exc


LITERALS: Mapping[str, Callable[[str], Literal]] = MappingProxyType({
    "string": lambda t: Literal("Edm.String", t[1:-1].replace("''", "'")),
    "binary": lambda t: Literal("Edm.Binary", _binary(t)),
    "dto": lambda t: Literal("Edm.DateTimeOffset", t),
    "date": _date,
    "number": _number,
})

WORD_LITERALS: Mapping[str, Literal] = MappingProxyType({
    "null": Literal("null", None), "true": Literal("Edm.Boolean", "true"),
    "false": Literal("Edm.Boolean", "false"),
})

ACCEPTS: Mapping[str, frozenset[str]] = MappingProxyType({
    "Edm.String": frozenset({"Edm.String"}),
    "Edm.Date": frozenset({"Edm.Date"}),
    "Edm.Decimal": frozenset({"Edm.Int32", "Edm.Int64", "Edm.Decimal"}),
    "Edm.Int32": frozenset({"Edm.Int32", "Edm.Int64"}),
    "Edm.Int64": frozenset({"Edm.Int32", "Edm.Int64"}),
    "Edm.Binary": frozenset({"Edm.Binary"}),
})
"""Property type -> literal types it may be compared with (null is always allowed)."""


class FilterParser:
    """Recursive descent over the tokens; builds a row predicate."""

    def __init__(self, text: str, columns: Mapping[str, Column], edm_type: Callable[[Column], str],
                 type_name: str) -> None:
        self.text, self.columns, self.edm_type, self.type_name = text, columns, edm_type, type_name
        self.tokens = self._tokenize(text)
        self.pos = 0

    def _tokenize(self, text: str) -> list[tuple[str, str, int]]:
        tokens, pos = [], 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.lastgroup is None:
                raise ODataQueryError(f"Syntax error: character '{text[pos]}' is not valid at position {pos} "
                                      f"in '{text}'.")
            if match.lastgroup != "ws":
                tokens.append((match.lastgroup, match.group(), pos))
            pos = match.end()
        return tokens

    def parse(self) -> Predicate:
        if not self.tokens:
            raise ODataQueryError("The $filter query option must not be empty.")
        predicate = self._or()
        if self.pos < len(self.tokens):
            self._syntax()
        return predicate

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str, int]:
        token = self._peek()
        if token is None:
            raise ODataQueryError(f"Expression expected at position {len(self.text)} in '{self.text}'.")
        self.pos += 1
        return token

    def _syntax(self) -> NoReturn:
        token = self._peek()
        where = token[2] if token else len(self.text)
        raise ODataQueryError(f"Syntax error at position {where} in '{self.text}'.")

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token[0] == "word" and token[1] == word:
            self.pos += 1
            return True
        return False

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._keyword("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._atom()]
        while self._keyword("and"):
            parts.append(self._atom())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def _atom(self) -> Predicate:
        kind, text, _ = self._take()
        if kind == "paren" and text == "(":
            inner = self._or()
            closing = self._take()
            if closing[:2] != ("paren", ")"):
                self.pos -= 1
                self._syntax()
            return inner
        if kind != "word" or text in WORD_LITERALS or text in OPERATORS or text in ("and", "or"):
            self.pos -= 1
            self._syntax()
        following = self._peek()
        if following is not None and following[:2] == ("paren", "("):
            raise ODataQueryError(f"The function '{text}' is not supported by this service.")
        if text == "not":
            raise ODataQueryError("The 'not' operator is not supported by this service.")
        return self._comparison(text)

    def _comparison(self, name: str) -> Predicate:
        column = self.columns.get(name)
        if column is None:
            raise ODataQueryError(f"Could not find a property named '{name}' on type '{self.type_name}'.")
        op_token = self._take()
        if op_token[0] != "word" or op_token[1] not in OPERATORS:
            self.pos -= 1
            self._syntax()
        condition, op_kind = OPERATORS[op_token[1]]
        literal = self._literal()
        edm = self.edm_type(column)
        if literal.edm != "null" and literal.edm not in ACCEPTS[edm]:
            raise ODataQueryError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{edm}' and '{literal.edm}' for operator kind '{op_kind}'.")
        if literal.value is None:
            wanted = condition == "EQ"
            return lambda row: (row[column.name] is None) == wanted
        compare, value = COMPARISONS[condition], literal.value
        return lambda row: compare(row[column.name], value)

    def _literal(self) -> Literal:
        kind, text, _ = self._take()
        if kind == "word" and text in WORD_LITERALS:
            return WORD_LITERALS[text]
        parse = LITERALS.get(kind)
        if parse is None:
            self.pos -= 1
            self._syntax()
        return parse(text)
