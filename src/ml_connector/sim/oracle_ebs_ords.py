"""The ORDS AutoREST side of the EBS simulator: ``/ords/<schema>/<object>/``.

AutoREST exposes the base tables as they are: all operating units (no MOAC), the header's own
columns (so invoice validation, which lives in the distributions, is invisible here), offset
paging with no snapshot (rows shift between pages when data changes mid-scan), and DATEs rendered
with a ``Z`` although they are server-local. ``$date`` filter values are compared the same naive
way: the ``Z`` is dropped, an explicit offset is converted to UTC first.
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, get_type_hints
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ml_connector.sim.oracle_ebs_data import EbsTables, Invoice, PersonRow, PurchaseOrder
from ml_connector.sim.oracle_ebs_isg import web_fault_response

if TYPE_CHECKING:
    from ml_connector.sim.oracle_ebs import EbsSim

DEFAULT_LIMIT = 25
MAX_LIMIT = 500

Row = Mapping[str, object]
Predicate = Callable[[Row], bool]


@dataclass(frozen=True)
class OrdsObject:
    """An AutoREST-enabled table: how to list its rows, its key, and its column types."""

    rows: Callable[[EbsTables], list[dict[str, object]]]
    key: str | None
    row_type: type


def _date_columns(row_type: type) -> frozenset[str]:
    hints = get_type_hints(row_type)
    return frozenset(f.name for f in fields(row_type) if "datetime" in str(hints[f.name]))


OBJECTS: Mapping[str, OrdsObject] = {
    "ap_invoices": OrdsObject(lambda t: [asdict(i) for i in t.invoices.values()], "invoice_id", Invoice),
    "po_headers": OrdsObject(lambda t: [asdict(p) for p in t.pos.values()], "po_header_id", PurchaseOrder),
    "people": OrdsObject(lambda t: [asdict(p) for p in t.people], None, PersonRow),
}


class QueryError(Exception):
    """The ``q`` filter cannot be evaluated: ORDS answers 400."""


def ords_error(sim: EbsSim, status: int, code: str, title: str, message: str,
               headers: Mapping[str, str] | None = None) -> Response:
    body = {"code": code, "title": title, "message": message,
            "type": f"tag:oracle.com,2020:error/{code}",
            "instance": f"tag:oracle.com,2020:ecid/{sim.next_instance_id()}"}
    return Response(json.dumps(body), status_code=status, media_type="application/problem+json",
                    headers=dict(headers or {}))


def _literal(value: object, is_date: bool) -> object:
    """A filter literal: ``{"$date": ...}`` becomes a naive datetime compared as-is."""
    if isinstance(value, dict):
        if set(value) != {"$date"} or not isinstance(value["$date"], str):
            raise QueryError(f"Unsupported literal {json.dumps(value)}")
        try:
            parsed = datetime.fromisoformat(value["$date"].replace("Z", "+00:00"))
        except ValueError:
            raise QueryError(f"Invalid date literal {value['$date']!r}") from None
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed
    if is_date:
        raise QueryError("A DATE column must be compared with a {\"$date\": ...} literal")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise QueryError(f"Unsupported literal {json.dumps(value)}")
    return value


def _comparable(a: object, b: object) -> bool:
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers)) or type(a) is type(b)


def _compare(fn: Callable[[Any, Any], bool]) -> Callable[[object, object], bool]:
    def check(cell: object, lit: object) -> bool:
        if cell is None:
            return False
        if not _comparable(cell, lit):
            raise QueryError("Filter literal does not match the column's type")
        return fn(cell, lit)
    return check


def _like(cell: object, pattern: object) -> bool:
    if cell is None:
        return False
    if not isinstance(cell, str) or not isinstance(pattern, str):
        raise QueryError("$like needs a text column and a text pattern")
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, cell, re.DOTALL) is not None


def _in(cell: object, literals: object) -> bool:
    equal = _compare(operator.eq)
    return cell is not None and isinstance(literals, list) and any(equal(cell, x) for x in literals)


# operator -> (test, how the literal is read: "one", "list" or "none")
_OPERATORS: Mapping[str, tuple[Callable[[object, object], bool], str]] = {
    "$eq": (_compare(operator.eq), "one"),
    "$ne": (_compare(operator.ne), "one"),
    "$gt": (_compare(operator.gt), "one"),
    "$gte": (_compare(operator.ge), "one"),
    "$lt": (_compare(operator.lt), "one"),
    "$lte": (_compare(operator.le), "one"),
    "$like": (_like, "one"),
    "$in": (_in, "list"),
    "$null": (lambda cell, _: cell is None, "none"),
    "$notnull": (lambda cell, _: cell is not None, "none"),
}


def compile_filter(q: object, columns: frozenset[str], dates: frozenset[str]) -> Predicate:
    """Compile a ``q`` object (``$orderby`` excluded) into a row predicate."""
    if not isinstance(q, dict):
        raise QueryError("The filter must be a JSON object")
    parts: list[Predicate] = []
    for key, value in q.items():
        if key == "$orderby":
            continue
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise QueryError(f"{key} needs a non-empty array")
            parts.append(_combine([compile_filter(v, columns, dates) for v in value], key == "$and"))
            continue
        if key not in columns:
            raise QueryError(f"Unknown column {key}")
        ops = value if isinstance(value, dict) and any(k.startswith("$") and k != "$date" for k in value) \
            else {"$eq": value}
        for op_name, operand in ops.items():
            parts.append(_column_test(key, op_name, operand, key in dates))
    return lambda row: all(p(row) for p in parts)


def _combine(subs: list[Predicate], conjunction: bool) -> Predicate:
    if conjunction:
        return lambda row: all(s(row) for s in subs)
    return lambda row: any(s(row) for s in subs)


def _column_test(column: str, op_name: str, operand: object, is_date: bool) -> Predicate:
    if op_name not in _OPERATORS:
        raise QueryError(f"Unsupported operator {op_name}")
    test, arity = _OPERATORS[op_name]
    literal: object
    if arity == "list":
        if not isinstance(operand, list):
            raise QueryError(f"{op_name} needs an array")
        literal = [_literal(v, is_date) for v in operand]
    elif arity == "one":
        literal = _literal(operand, is_date)
    else:
        literal = None
    return lambda row: test(row.get(column), literal)


def order_rows(
    rows: list[dict[str, object]], orderby: object, columns: frozenset[str]
) -> list[dict[str, object]]:
    """``$orderby``: Oracle's default NULLS LAST ascending, NULLS FIRST descending."""
    if orderby is None:
        return rows
    if not isinstance(orderby, dict):
        raise QueryError("$orderby must be an object")
    out = list(rows)
    for column, direction in reversed(list(orderby.items())):
        if column not in columns or str(direction).lower() not in ("asc", "desc"):
            raise QueryError(f"Invalid $orderby entry {column}: {direction}")

        def key(row: dict[str, object], column: str = column) -> tuple[int, object]:
            value = row.get(column)
            return (1, 0) if value is None else (0, value)

        out.sort(key=key, reverse=str(direction).lower() == "desc")
    return out


def _render(row: Mapping[str, object]) -> dict[str, object]:
    return {k: (v.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, datetime) else v) for k, v in row.items()}


def _authorized(sim: EbsSim, request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    user = None
    if scheme.lower() == "basic" and encoded:
        try:
            name, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
            user = sim.check_password(name, password)
        except (binascii.Error, UnicodeDecodeError):
            user = None
    if user is None:
        return ords_error(sim, 401, "Unauthorized", "Unauthorized",
                          "Access to this resource is protected. Please sign in to access this resource.",
                          {"WWW-Authenticate": 'Basic realm="Oracle REST Data Services"'})
    if not user.ords:
        return ords_error(sim, 403, "Forbidden", "Forbidden",
                          "You do not have the privilege required to access this resource.")
    return None


def _int_param(request: Request, name: str, default: int, minimum: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise QueryError(f"{name} must be an integer") from None
    if value < minimum:
        raise QueryError(f"{name} must be at least {minimum}")
    return value


async def ords_endpoint(sim: EbsSim, request: Request) -> Response:
    """Everything under ``/ords/``."""
    fault = sim.take_web_fault()
    if fault is not None:
        return web_fault_response(fault)
    parts = [p for p in str(request.path_params["rest"]).split("/") if p]
    if len(parts) not in (2, 3) or parts[0] != sim.ords_schema or parts[1] not in OBJECTS:
        return ords_error(sim, 404, "NotFound", "Not Found",
                          "The request could not be mapped to any database object")
    denied = _authorized(sim, request)
    if denied is not None:
        return denied
    if request.method != "GET":
        return ords_error(sim, 405, "MethodNotAllowed", "Method Not Allowed",
                          "The request method is not supported for this resource")
    obj = OBJECTS[parts[1]]
    base = f"{str(request.base_url).rstrip('/')}/ords/{parts[0]}/{parts[1]}/"
    if len(parts) == 3:
        return _item(sim, obj, parts[2], base)
    try:
        return _collection(sim, request, obj, parts, base)
    except QueryError as exc:
        return ords_error(sim, 400, "BadRequest", "Bad Request",
                          f"The request could not be processed: {exc}")


def _item(sim: EbsSim, obj: OrdsObject, key: str, base: str) -> Response:
    row = next((r for r in obj.rows(sim.tables) if obj.key and str(r[obj.key]) == key), None)
    if row is None:
        return ords_error(sim, 404, "NotFound", "Not Found", f"No row with key {key}")
    return sim.json_response({**_render(row), "links": [{"rel": "self", "href": f"{base}{key}"}]})


def _collection(sim: EbsSim, request: Request, obj: OrdsObject, parts: list[str], base: str) -> Response:
    limit = min(_int_param(request, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0)
    q_text = request.query_params.get("q")
    rows = obj.rows(sim.tables)
    columns = frozenset(rows[0]) if rows else frozenset(f.name for f in fields(obj.row_type))
    if q_text is not None:
        try:
            q = json.loads(q_text)
        except ValueError:
            raise QueryError("The q parameter is not valid JSON") from None
        predicate = compile_filter(q, columns, _date_columns(obj.row_type))
        rows = order_rows([r for r in rows if predicate(r)], q.get("$orderby"), columns)
    window = rows[offset: offset + limit]
    has_more = len(rows) > offset + limit
    items = []
    for row in window:
        item = _render(row)
        if obj.key is not None:
            item["links"] = [{"rel": "self", "href": f"{base}{row[obj.key]}"}]
        items.append(item)

    def href(at: int) -> str:
        params: dict[str, object] = {}
        if q_text is not None:
            params["q"] = q_text
        if "limit" in request.query_params:
            params["limit"] = limit
        params["offset"] = at
        return f"{base}?{urlencode(params)}"

    links = [
        {"rel": "self", "href": str(request.url)},
        {"rel": "describedby",
         "href": f"{str(request.base_url).rstrip('/')}/ords/{parts[0]}/metadata-catalog/{parts[1]}/"},
        {"rel": "first", "href": href(0)},
    ]
    if offset > 0:
        links.append({"rel": "prev", "href": href(max(0, offset - limit))})
    if has_more:
        links.append({"rel": "next", "href": href(offset + limit)})
    return sim.json_response({"items": items, "hasMore": has_more, "limit": limit, "offset": offset,
                              "count": len(items), "links": links})
