"""RFC_READ_TABLE's OPTIONS: a dynamic Open SQL WHERE clause in lines of at most 72 characters.

ABAP reads the lines as consecutive token sequences: a literal must close on the line it opens
on, and a line longer than 72 characters does not fit the OPTIONS row (TEXT is CHAR72). Either
breaks the statement: the function raises OPTION_NOT_VALID. Understood here: comparisons
(``=``, ``EQ``, ``<>``, ``NE``, ``>``, ``GT``, ``>=``, ``GE``, ``<``, ``LT``, ``<=``, ``LE``),
``[NOT] IN ( ... )``, ``BETWEEN ... AND ...``, ``LIKE`` with ``%`` and ``_``, ``AND``, ``OR``,
``NOT`` and parentheses. Literals are quoted (``'F'``, quotes doubled inside) or numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation

from ml_connector.sim.sap_agent_data import Field, Value

LINE_WIDTH = 72
_TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|(<>|<=|>=|=|<|>)|([(),])|([A-Za-z_][A-Za-z0-9_~-]*)|(-?\d+(?:\.\d+)?))")
_OPS = {"=": "=", "EQ": "=", "<>": "<>", "NE": "<>", ">": ">", "GT": ">", ">=": ">=", "GE": ">=",
        "<": "<", "LT": "<", "<=": "<=", "LE": "<="}

Predicate = Callable[[Mapping[str, Value]], bool]


class OptionNotValid(ValueError):
    """The WHERE clause cannot be parsed: RFC_READ_TABLE raises OPTION_NOT_VALID."""


def join_lines(lines: Sequence[str]) -> str:
    for n, line in enumerate(lines, start=1):
        if len(line) > LINE_WIDTH:
            raise OptionNotValid(f"OPTIONS line {n} is {len(line)} characters; TEXT holds {LINE_WIDTH}")
        if line.count("'") % 2:
            raise OptionNotValid(f"OPTIONS line {n}: a literal is not closed on its line")
    return " ".join(lines)


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise OptionNotValid(f"unexpected text at {text[pos:pos + 20]!r}")
        pos = m.end()
        literal, op, punct, word, number = m.groups()
        if literal is not None:
            found.append(("lit", literal[1:-1].replace("''", "'")))
        elif op is not None:
            found.append(("op", op))
        elif punct is not None:
            found.append((punct, punct))
        elif number is not None:
            found.append(("num", number))
        else:
            found.append(("word", word.upper()))
    return found


def compile_where(text: str, fields: Mapping[str, Field]) -> Predicate:
    """A predicate over a row, or OptionNotValid."""
    tokens = _tokens(text)
    if not tokens:
        return lambda row: True
    parser = _Parser(tokens, fields)
    predicate = parser.expr()
    if parser.pos != len(tokens):
        raise OptionNotValid(f"unexpected {tokens[parser.pos][1]!r}")
    return predicate


def _compare(field: Field, value: Value, literal: str) -> int:
    if field.type in ("P", "I"):
        try:
            left, right = Decimal(str(value)), Decimal(literal.strip() or "0")
        except InvalidOperation:
            raise OptionNotValid(f"{field.name}: {literal!r} is not a number") from None
        return (left > right) - (left < right)
    text = str(value)
    if field.type == "N" and literal.isdigit():
        literal = literal.zfill(field.length)
    left_s, right_s = text.rstrip(), literal.rstrip()
    return (left_s > right_s) - (left_s < right_s)


def _like(pattern: str) -> re.Pattern[str]:
    out = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern.rstrip())
    return re.compile(f"^{out}$", re.DOTALL)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], fields: Mapping[str, Field]) -> None:
        self.tokens = tokens
        self.fields = fields
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        found = self.peek()
        if found is None:
            raise OptionNotValid("the WHERE clause ends too early")
        self.pos += 1
        return found

    def word(self, *words: str) -> bool:
        found = self.peek()
        if found and found[0] == "word" and found[1] in words:
            self.pos += 1
            return True
        return False

    def expr(self) -> Predicate:
        parts = [self.term()]
        while self.word("OR"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self.word("AND"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def factor(self) -> Predicate:
        if self.word("NOT"):
            inner = self.factor()
            return lambda row: not inner(row)
        found = self.peek()
        if found and found[0] == "(":
            self.take()
            inner = self.expr()
            if self.take()[0] != ")":
                raise OptionNotValid("a parenthesis is not closed")
            return inner
        return self.comparison()

    def literal(self) -> str:
        kind, value = self.take()
        if kind not in ("lit", "num"):
            raise OptionNotValid(f"expected a literal, got {value!r}")
        return value

    def comparison(self) -> Predicate:
        kind, name = self.take()
        if kind != "word":
            raise OptionNotValid(f"expected a field name, got {name!r}")
        field = self.fields.get(name)
        if field is None:
            raise OptionNotValid(f"unknown field {name}")
        negate = self.word("NOT")
        if self.word("IN"):
            if self.take()[0] != "(":
                raise OptionNotValid("IN needs a parenthesised list")
            values = [self.literal()]
            while (nxt := self.take())[0] == ",":
                values.append(self.literal())
            if nxt[0] != ")":
                raise OptionNotValid("the IN list is not closed")
            return lambda row: (any(_compare(field, row[name], v) == 0 for v in values)) != negate
        if self.word("BETWEEN"):
            low = self.literal()
            if not self.word("AND"):
                raise OptionNotValid("BETWEEN needs AND")
            high = self.literal()
            def between(row: Mapping[str, Value]) -> bool:
                return _compare(field, row[name], low) >= 0 and _compare(field, row[name], high) <= 0
            return lambda row: between(row) != negate
        if self.word("LIKE"):
            pattern = _like(self.literal())
            return lambda row: bool(pattern.match(str(row[name]).rstrip())) != negate
        if negate:
            raise OptionNotValid("NOT before a comparison operator")
        op_kind, op = self.take()
        op = _OPS.get(op.upper()) if op_kind in ("op", "word") else None  # type: ignore[assignment]
        if op is None:
            raise OptionNotValid(f"expected a comparison after {name}")
        value = self.literal()
        tests: dict[str, Callable[[int], bool]] = {"=": lambda c: c == 0, "<>": lambda c: c != 0,
                                                   ">": lambda c: c > 0, ">=": lambda c: c >= 0,
                                                   "<": lambda c: c < 0, "<=": lambda c: c <= 0}
        test = tests[op]
        return lambda row: test(_compare(field, row[name], value))
