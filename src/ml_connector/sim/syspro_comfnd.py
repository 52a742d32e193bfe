"""COMFND, SYSPRO's generic table query: parse the XmlIn, run it over the tables, write the output.

The recorded shape: ``TableName``, ``ReturnRows``, ``Columns/Column``, ``Where/Expression``
(``OpenBracket``, ``AndOr``, ``Column``, ``Condition``, ``Value``, ``CloseBracket``) and
``OrderBy/Column``; the output root is the table name, a ``HeaderDetails`` echo, one ``Row`` per
row and ``RowsReturned`` right-aligned in eight characters. There is no offset: a client pages by
key (``Where Column GT <last key>`` + ``OrderBy`` + ``ReturnRows``).

Choices where the recordings are silent:

* Unknown table or column: ``ERROR: Invalid object name 'X'`` / ``ERROR: Invalid column name 'X'``
  (the BO passes SQL Server's complaint through as text). Bad values (a ``ReturnRows`` that is
  not a number, an unknown ``Condition`` or ``AndOr``, a ``Value`` that does not convert to the
  column's type) are validation errors in the lower-cased XML shape.
* ``Value`` converts to the column's type: dates ``YYYY-MM-DD``; numbers plain; ``TimeStamp`` only
  as the hex the rows show (``0x00000000000007D3``). Strings compare as SQL Server does (case-
  insensitive, trailing spaces ignored, leading spaces significant: keys are sent padded).
* No ``ReturnRows`` (or 0): every matching row. No ``Columns``: every column. No ``OrderBy``:
  primary-key order. ``OrderBy`` is ascending only. ``AndOr`` of the first expression is ignored;
  AND binds tighter than OR.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from xml.etree.ElementTree import Element

from ml_connector.sim.syspro_data import COMPARISONS, SCHEMAS, Column, Row, SysproData, Value, sort_key
from ml_connector.sim.syspro_wire import (
    BAD_BRACKETS,
    UNKNOWN_COLUMN,
    UNKNOWN_TABLE,
    EnetError,
    ValidationFault,
    document,
    element,
)

# Invented validation error numbers (SYSPRO's catalogue for COMFND is not public).
ERR_RETURN_ROWS = 100101
ERR_CONDITION = 100102
ERR_ANDOR = 100103
ERR_VALUE = 100104
ERR_TABLE_MISSING = 100105


@dataclass(frozen=True)
class Expression:
    open_bracket: str
    and_or: str
    column: str
    condition: str
    value: str
    close_bracket: str


@dataclass(frozen=True)
class ComfndQuery:
    table: str
    return_rows: int
    columns: tuple[str, ...]
    where: tuple[Expression, ...]
    order_by: tuple[str, ...]


def _text(node: Element | None, name: str) -> str:
    child = node.find(name) if node is not None else None
    return child.text or "" if child is not None else ""


def _names(root: Element, path: str) -> tuple[str, ...]:
    return tuple(name for name in ((c.text or "").strip() for c in root.findall(path)) if name)


def parse_comfnd(root: Element) -> ComfndQuery:
    """XmlIn -> query; raises ValidationFault for values that are not even well-typed."""
    table = _text(root, "TableName").strip()
    if not table:
        raise ValidationFault(("TableName",), "", ERR_TABLE_MISSING, "Table name is required")
    raw_rows = _text(root, "ReturnRows").strip()
    if raw_rows and not raw_rows.isdigit():
        raise ValidationFault(("ReturnRows",), raw_rows, ERR_RETURN_ROWS, "Return rows must be numeric")
    where = tuple(
        Expression(_text(e, "OpenBracket"), _text(e, "AndOr").strip(), _text(e, "Column").strip(),
                   _text(e, "Condition").strip().upper(), _text(e, "Value"), _text(e, "CloseBracket"))
        for e in root.findall("Where/Expression")
    )
    for expr in where:
        if expr.condition not in COMPARISONS:
            raise ValidationFault(("Where", "Expression", "Condition"), expr.condition, ERR_CONDITION,
                                  f"Condition '{expr.condition}' is invalid")
        if expr.and_or and expr.and_or.upper() not in ("AND", "OR"):
            raise ValidationFault(("Where", "Expression", "AndOr"), expr.and_or, ERR_ANDOR,
                                  f"AndOr '{expr.and_or}' is invalid")
    return ComfndQuery(
        table=table,
        return_rows=int(raw_rows or 0),
        columns=_names(root, "Columns/Column"),
        where=where,
        order_by=_names(root, "OrderBy/Column"),
    )


# -- values --------------------------------------------------------------------------------------

def _parse_hex(text: str) -> int:
    if not re.fullmatch(r"0x[0-9A-Fa-f]{1,16}", text):
        raise ValueError(text)
    return int(text, 16)


def _parse_date(text: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(text)
    return date.fromisoformat(text)


_PARSERS: Mapping[str, Callable[[str], Value]] = MappingProxyType({
    "str": lambda s: s,
    "date": lambda s: _parse_date(s.strip()),
    "dec": lambda s: Decimal(s.strip()),
    "int": lambda s: int(s.strip()),
    "rowversion": lambda s: _parse_hex(s.strip()),
})
"""Column kind -> how a ``Value`` text converts (ValueError/InvalidOperation when it does not)."""

_FORMATS: Mapping[str, Callable[[Value, Column], str]] = MappingProxyType({
    "str": lambda v, c: str(v),
    "date": lambda v, c: v.isoformat() if isinstance(v, date) else "",
    "dec": lambda v, c: f"{v:.{c.scale}f}" if isinstance(v, Decimal) else "",
    "int": lambda v, c: str(v),
    "rowversion": lambda v, c: f"0x{v:016X}" if isinstance(v, int) else "",
})
"""Column kind -> COMFND rendering: dates without time, numbers plain, rowversion as hex."""


def format_value(value: Value, column: Column) -> str:
    return "" if value is None else _FORMATS[column.kind](value, column)


def _typed(expr: Expression, column: Column) -> Value:
    try:
        return _PARSERS[column.kind](expr.value)
    except (ValueError, InvalidOperation) as exc:
        raise ValidationFault(("Where", "Expression", "Value"), expr.value, ERR_VALUE,
                              f"Value '{expr.value}' is invalid for column '{expr.column}'") from exc


# -- evaluation ----------------------------------------------------------------------------------

def _resolve(data: SysproData, table: str, name: str) -> Column:
    column = data.column(table, name)
    if column is None:
        raise EnetError(UNKNOWN_COLUMN.format(name))
    return column


def _tokens(query: ComfndQuery, data: SysproData, row: Row) -> Iterator[str | bool]:
    for i, expr in enumerate(query.where):
        if i:
            yield expr.and_or.upper() or "AND"
        yield from "(" * expr.open_bracket.count("(")
        column = _resolve(data, query.table, expr.column)
        yield COMPARISONS[expr.condition](row[column.name], _typed(expr, column))
        yield from ")" * expr.close_bracket.count(")")


class _BoolParser:
    """``a AND b OR (c ...)`` over already-evaluated conditions; AND binds tighter."""

    def __init__(self, tokens: list[str | bool]) -> None:
        self.tokens, self.pos = tokens, 0

    def parse(self) -> bool:
        value = self._or()
        if self.pos != len(self.tokens):
            raise EnetError(BAD_BRACKETS)
        return value

    def _or(self) -> bool:
        value = self._and()
        while self._peek() == "OR":
            self.pos += 1
            value = self._and() or value
        return value

    def _and(self) -> bool:
        value = self._atom()
        while self._peek() == "AND":
            self.pos += 1
            value = self._atom() and value
        return value

    def _atom(self) -> bool:
        token = self._peek()
        self.pos += 1
        if token == "(":  # noqa: S105 - a bracket, not a password
            value = self._or()
            if self._peek() != ")":
                raise EnetError(BAD_BRACKETS)
            self.pos += 1
            return value
        if isinstance(token, bool):
            return token
        raise EnetError(BAD_BRACKETS)

    def _peek(self) -> str | bool | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None


def run_comfnd(data: SysproData, query: ComfndQuery) -> tuple[tuple[Column, ...], list[Row]]:
    """The selected columns and the matching rows, ordered and capped."""
    if query.table not in SCHEMAS:
        raise EnetError(UNKNOWN_TABLE.format(query.table))
    columns = tuple(_resolve(data, query.table, n) for n in query.columns) or data.columns(query.table)
    order = tuple(_resolve(data, query.table, n) for n in query.order_by)
    for expr in query.where:
        _typed(expr, _resolve(data, query.table, expr.column))
    rows = [r for r in data.rows[query.table] if not query.where or _BoolParser(
        list(_tokens(query, data, r))).parse()]
    rows = (sorted(rows, key=lambda r: tuple(sort_key(r[c.name]) for c in order)) if order
            else data.key_order(query.table, rows))
    return columns, rows[: query.return_rows] if query.return_rows else rows


def render_comfnd(query: ComfndQuery, columns: tuple[Column, ...], rows: list[Row], version: str) -> str:
    lines = ["<HeaderDetails>", element("TableName", query.table), "<Columns>",
             *(element("Column", c.name) for c in columns), "</Columns>"]
    if query.order_by:
        lines += ["<OrderBy>", *(element("Column", n) for n in query.order_by), "</OrderBy>"]
    lines.append("</HeaderDetails>")
    for row in rows:
        lines += ["<Row>", *(element(c.name, format_value(row[c.name], c)) for c in columns), "</Row>"]
    lines.append(f"<RowsReturned>{len(rows):>8}</RowsReturned>")
    return document(query.table, version, lines)
