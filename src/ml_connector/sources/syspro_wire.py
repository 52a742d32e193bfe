"""SYSPRO e.net wire format: answer decoding, error recognition, XmlIn building, row parsing.

Everything here is pure (no I/O) so the odd parts of SYSPRO's answers are tested on their own:

* Answers are HTTP 200 whatever happened. Failure is a body starting ``ERROR`` (logon, logoff,
  any business object) or business-object XML whose elements carry ``ErrorDescription``
  (element names often lower-cased, unlike the input). Some WCF hosts wrap the string in JSON
  quotes or in ``<string>``; both are unwrapped.
* Bodies are Windows-1252.
* Key fields are space-padded (" 00001"), display numbers carry thousands separators
  ("38,400.000"). Raw values are kept for paging (the server compares what it stores); values
  handed to flows are normalised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from xml.etree import ElementTree

from ml_connector import safexml

ENCODING = "cp1252"

#: COMFND conditions; the same names are mapped to OData operators by the OData reader.
Condition = Literal["EQ", "NE", "GT", "GE", "LT", "LE", "LIKE"]

#: How a value is written in an OData $filter (COMFND takes every value as text).
ValueKind = Literal["text", "number", "date", "rowversion"]

_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_WCF_STRING = re.compile(r"^\s*<string\b[^>]*>(?P<inner>.*)</string>\s*$", re.DOTALL)
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


@dataclass(frozen=True, slots=True)
class Where:
    """One condition on one column; `kind` only matters for OData literals."""

    column: str
    condition: Condition
    value: str
    kind: ValueKind = "text"


@dataclass(frozen=True, slots=True)
class SysproFailure:
    """What SYSPRO said went wrong: its own text, and any error numbers it gave."""

    text: str
    numbers: tuple[str, ...] = ()


# --------------------------------------------------------------------------- answers


def decode(content: bytes) -> str:
    """A raw answer as text: Windows-1252, unwrapped from WCF's JSON or `<string>` wrapper."""
    text = content.decode(ENCODING, errors="replace")
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        try:
            inner = json.loads(stripped)
        except ValueError:
            return text
        return inner if isinstance(inner, str) else text
    wrapped = _WCF_STRING.match(text)
    if wrapped:
        return _unescape(wrapped.group("inner"))
    return text


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace(
        "&apos;", "'").replace("&amp;", "&")


def failure_of(text: str) -> SysproFailure | None:
    """SYSPRO's complaint in an answer, or None when the answer is not an error."""
    stripped = text.lstrip()
    if stripped[:5].upper() == "ERROR":
        return SysproFailure(stripped.strip())
    if stripped.startswith("<") and "errordescription" in stripped.lower():
        return _validation_failure(stripped)
    return None


def _validation_failure(text: str) -> SysproFailure | None:
    try:
        root = parse_xml(text)
    except ValueError:
        return SysproFailure("unreadable error XML: " + text[:200])
    descriptions: list[str] = []
    numbers: list[str] = []
    for parent in root.iter():
        children = {child.tag.lower(): child for child in parent}
        described = children.get("errordescription")
        if described is None or not (described.text or "").strip():
            continue
        detail = described.text.strip() if described.text else ""
        value = children.get("value")
        field = parent.tag if parent is not root else ""
        where = f"{field} {value.text.strip()!r}" if value is not None and value.text else field
        descriptions.append(f"{where}: {detail}" if where else detail)
        number = children.get("errornumber")
        if number is not None and number.text and number.text.strip():
            numbers.append(number.text.strip())
    if not descriptions:
        return None
    return SysproFailure("; ".join(descriptions), tuple(numbers))


def parse_xml(text: str) -> ElementTree.Element:
    """Parse an answer already decoded to text (its Windows-1252 declaration is dropped);
    safexml.XmlError (a ValueError) when it is malformed or declares entities."""
    return safexml.parse(_XML_DECL.sub("", text, count=1))


# --------------------------------------------------------------------------- values


def normalise(value: Any) -> Any:
    """A value as flows see it: strings stripped, "38,400.000" -> Decimal("38400.000")."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if _GROUPED.match(text):
        return Decimal(text.replace(",", ""))
    return text


def to_decimal(value: Any) -> Decimal | None:
    """A number from a raw or display value, or None when it is not one."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _GROUPED.match(text):
        text = text.replace(",", "")
    if not _NUMBER.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def normalise_row(row: Mapping[str, Any], numbers: Sequence[str] = ()) -> dict[str, Any]:
    """Every value normalised; columns listed in `numbers` become Decimal when they parse."""
    data = {name: normalise(value) for name, value in row.items()}
    for name in numbers:
        parsed = to_decimal(row.get(name))
        if parsed is not None:
            data[name] = parsed
    return data


# --------------------------------------------------------------------------- XmlIn


def _query_root(schema: str) -> ElementTree.Element:
    root = ElementTree.Element("Query")
    root.set("xmlns:xsd", "http://www.w3.org/2001/XMLSchema-instance")
    root.set("xsd:noNamespaceSchemaLocation", schema)
    return root


def _child(parent: ElementTree.Element, tag: str, text: str | None = None) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _serialise(root: ElementTree.Element) -> str:
    body = ElementTree.tostring(root, encoding="unicode", short_empty_elements=True)
    return '<?xml version="1.0" encoding="Windows-1252"?>' + body


def comfnd_xml(
    table: str,
    columns: Sequence[str],
    groups: Sequence[Sequence[Where]],
    order_by: Sequence[str],
    rows: int,
) -> str:
    """COMFND XmlIn. `groups` is a disjunction of conjunctions: (a And b) Or (c And d).

    A single group is written as bracketed expressions joined by And, the recorded shape; several
    groups bracket each group, the first expression opening it with Or.
    """
    root = _query_root("COMFND.XSD")
    _child(root, "TableName", table)
    _child(root, "ReturnRows", str(rows))
    if columns:
        cols = _child(root, "Columns")
        for column in columns:
            _child(cols, "Column", column)
    expressions = [g for g in groups if g]
    if expressions:
        where = _child(root, "Where")
        single = len(expressions) == 1
        for number, group in enumerate(expressions):
            for position, condition in enumerate(group):
                first, last = position == 0, position == len(group) - 1
                expression = _child(where, "Expression")
                if single or first:
                    _child(expression, "OpenBracket", "(")
                joiner = "Or" if first and number > 0 else "And"
                _child(expression, "AndOr", joiner)
                _child(expression, "Column", condition.column)
                _child(expression, "Condition", condition.condition)
                _child(expression, "Value", condition.value)
                if single or last:
                    _child(expression, "CloseBracket", ")")
    if order_by:
        order = _child(root, "OrderBy")
        for column in order_by:
            _child(order, "Column", column)
    return _serialise(root)


def after_key(keys: Sequence[str], last: Sequence[str], filters: Sequence[Where]) -> list[list[Where]]:
    """Rows strictly after `last` in (k1, k2, ...) order, as groups for `comfnd_xml`.

    (k1 > v1) or (k1 = v1 and k2 > v2) or ..., each group also carrying `filters`, so no nested
    brackets are needed.
    """
    groups: list[list[Where]] = []
    for depth in range(len(keys)):
        group = list(filters)
        group += [Where(keys[i], "EQ", last[i]) for i in range(depth)]
        group.append(Where(keys[depth], "GT", last[depth]))
        groups.append(group)
    return groups


def porqry_xml(purchase_order: str) -> str:
    """PORQRY XmlIn for one purchase order with its lines (no history, no custom forms)."""
    root = _query_root("PORQRY.XSD")
    key = _child(root, "Key")
    _child(key, "PurchaseOrder", purchase_order)
    option = _child(root, "Option")
    for name, flag in (
        ("IncludeStockedLines", "Y"), ("IncludeNonStockedLines", "Y"), ("IncludeFreightLines", "Y"),
        ("IncludeMiscLines", "Y"), ("IncludeCommentLines", "N"), ("IncludeHistory", "N"),
        ("IncludeCustomForms", "N"),
    ):
        _child(option, name, flag)
    _child(option, "XslStylesheet")
    filter_ = _child(root, "Filter")
    line = _child(filter_, "LineNo")
    line.set("FilterType", "A")
    line.set("FilterValue", "")
    return _serialise(root)


# --------------------------------------------------------------------------- outputs


def comfnd_rows(text: str) -> list[dict[str, str]]:
    """The `<Row>` elements of a COMFND answer (root element = table name), raw text values."""
    try:
        root = parse_xml(text)
    except ValueError as exc:
        raise ValueError(f"COMFND answer is {exc}") from None
    rows = [child for child in root if child.tag.lower() == "row"]
    if not rows and not any(child.tag.lower() in ("headerdetails", "rowsreturned") for child in root):
        raise ValueError(f"COMFND answer <{root.tag}> has neither rows nor HeaderDetails")
    return [{cell.tag: cell.text or "" for cell in row} for row in rows]


def element_data(element: ElementTree.Element) -> Any:
    """An element as data: a leaf is its text, repeated tags become lists, attributes are dropped."""
    children = list(element)
    if not children:
        return element.text or ""
    data: dict[str, Any] = {}
    for child in children:
        value = element_data(child)
        if child.tag in data:
            existing = data[child.tag]
            data[child.tag] = existing + [value] if isinstance(existing, list) else [existing, value]
        else:
            data[child.tag] = value
    return data


def _normalise_deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalise_deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_deep(v) for v in value]
    return normalise(value)


def porqry_data(text: str) -> dict[str, Any] | None:
    """A PORQRY answer as flat header fields plus `Lines` (one dict per line), or None if empty."""
    root = parse_xml(text)
    data: dict[str, Any] = {}
    lines: list[dict[str, Any]] = []
    for child in root:
        if child.tag == "PurchaseOrderLine":
            line: dict[str, Any] = {}
            for part in child:  # Merchandise / Freight / Misc / Comment
                body = element_data(part)
                line.update(body if isinstance(body, dict) else {part.tag: body})
            line = _normalise_deep(line)
            for name, value in list(line.items()):  # full-precision twins win over display values
                number = to_decimal(value) if name.startswith("Unedited_") else None
                if number is not None:
                    line[name[len("Unedited_"):]] = number
            lines.append(line)
        else:
            data[child.tag] = _normalise_deep(element_data(child))
    if not data.get("PurchaseOrder"):
        return None
    data["Lines"] = lines
    return data
