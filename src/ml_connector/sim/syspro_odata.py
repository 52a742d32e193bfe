"""SYSPRO OData v4 (read-only, HTTP Basic with operator credentials) over the simulated tables.

The service root is not documented; the simulator serves ``/SYSPROODataService/odata/<company>``
(configurable). Entity sets: ``PorMasterHdr``, ``PorMasterDetail``, ``ApInvoice``, ``ApSupplier``.
Query options: ``$filter`` (see syspro_odata_filter), ``$orderby``, ``$top``, ``$skip``,
``$select``, ``$count``; any other ``$`` option is a 400. Server-driven paging as ASP.NET OData
does it: at most ``page_size`` rows, then an absolute ``@odata.nextLink`` carrying ``$skip`` (and
the rest of ``$top``). Results are ordered by ``$orderby`` then by the key, so pages are stable
while the data is; offset paging still drifts when rows are inserted mid-scan, as it does for real.

Choices where SYSPRO says nothing (documented so adapters can be checked against them):

* Dates are ``Edm.Date`` (``"2026-11-01"``); decimals are JSON numbers; keys keep their padding.
* ``TimeStamp`` (rowversion) is ``Edm.Binary`` by default: base64 of eight big-endian bytes in the
  JSON, compared with ``binary'...'`` literals. ``timestamp_style="int64"`` exposes it as an
  integer instead.
* Errors: 400 for bad query options, 404 for unknown entity sets, both
  ``{"error": {"code": "", "message": "..."}}`` (ASP.NET leaves the code empty); 401 from IIS
  with ``WWW-Authenticate: Basic`` and an HTML body.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ml_connector.sim.syspro_data import SCHEMAS, Column, Row, Value, sort_key
from ml_connector.sim.syspro_odata_filter import FilterParser, ODataQueryError

if TYPE_CHECKING:
    from ml_connector.sim.syspro import SysproSim

TimestampStyle = Literal["binary", "int64"]
IIS_SERVER = "Microsoft-IIS/10.0"
JSON_TYPE = ("application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; "
             "charset=utf-8")
NAMESPACE = "SYSPRO"
SUPPORTED_OPTIONS = frozenset({"$filter", "$orderby", "$top", "$skip", "$select", "$count", "$format"})

EDM: Mapping[str, str] = MappingProxyType({
    "str": "Edm.String", "date": "Edm.Date", "dec": "Edm.Decimal", "int": "Edm.Int32",
})


def edm_type(column: Column, style: TimestampStyle) -> str:
    if column.kind == "rowversion":
        return "Edm.Binary" if style == "binary" else "Edm.Int64"
    return EDM[column.kind]


def _json_value(value: Value, column: Column, style: TimestampStyle) -> object:
    if value is None:
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if column.kind == "rowversion" and style == "binary" and isinstance(value, int):
        return base64.b64encode(value.to_bytes(8, "big")).decode("ascii")
    return value


def odata_error(status: int, message: str) -> Response:
    body = json.dumps({"error": {"code": "", "message": message}})
    return Response(body, status_code=status, media_type="application/json; charset=utf-8",
                    headers={"Server": IIS_SERVER, "OData-Version": "4.0"})


def unauthorized() -> Response:
    html = ("<!DOCTYPE html><html><head><title>401 - Unauthorized: Access is denied due to invalid "
            "credentials.</title></head><body><h2>401 - Unauthorized: Access is denied due to invalid "
            "credentials.</h2></body></html>")
    return Response(html, status_code=401, media_type="text/html",
                    headers={"Server": IIS_SERVER, "WWW-Authenticate": 'Basic realm="SYSPRO OData"'})


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _nonnegative(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise ODataQueryError(f"Invalid value '{text}' for {name} query option found.")
    return int(text)


def _order(table: str, columns: Mapping[str, Column], text: str | None) -> list[tuple[str, bool]]:
    """``$orderby`` then the key columns (ASP.NET OData adds them for stable paging)."""
    order: list[tuple[str, bool]] = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, *direction = item.split()
        if name not in columns:
            raise ODataQueryError(f"Could not find a property named '{name}' on type '{NAMESPACE}.{table}'.")
        if direction not in ([], ["asc"], ["desc"]):
            raise ODataQueryError(f"Syntax error at position {len(name) + 1} in '{item.strip()}'.")
        order.append((name, direction == ["desc"]))
    return order + [(k, False) for k in SCHEMAS[table].key if k not in {n for n, _ in order}]


def _sorted(rows: list[Row], order: list[tuple[str, bool]]) -> list[Row]:
    for name, descending in reversed(order):
        rows = sorted(rows, key=lambda r, n=name: sort_key(r[n]), reverse=descending)  # type: ignore[misc]
    return rows


def _select(table: str, columns: Mapping[str, Column], text: str | None) -> list[Column]:
    if not text:
        return list(columns.values())
    chosen = []
    for name in (n.strip() for n in text.split(",")):
        if name not in columns:
            raise ODataQueryError(f"Could not find a property named '{name}' on type '{NAMESPACE}.{table}'.")
        chosen.append(columns[name])
    return chosen


class ODataService:
    """Serves one company's entity sets under ``root``."""

    def __init__(self, sim: SysproSim, *, root: str, page_size: int, timestamp_style: TimestampStyle) -> None:
        if page_size < 1:
            raise ValueError("odata_page_size must be at least 1")
        if timestamp_style not in ("binary", "int64"):
            raise ValueError("odata_timestamp must be 'binary' or 'int64'")
        self.sim, self.root, self.page_size, self.style = sim, root.rstrip("/"), page_size, timestamp_style

    def _json(self, payload: Mapping[str, object]) -> Response:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if self.sim.take_malformed():
            body = body[: max(1, len(body) // 2)]
        return Response(body, status_code=200, media_type=JSON_TYPE,
                        headers={"Server": IIS_SERVER, "OData-Version": "4.0"})

    def _base(self, request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}{self.root}"

    async def handle(self, request: Request) -> Response:
        refused = self.sim.gate(request)
        if refused is not None:
            return refused
        credentials = _basic_credentials(request)
        if credentials is None or self.sim.sessions.authenticate(*credentials) is None:
            return unauthorized()
        if request.method != "GET":
            return odata_error(405, "The requested resource does not support http method "
                                    f"'{request.method}'.")
        await self.sim.pause()
        path = str(request.path_params.get("rest", "")).strip("/")
        routes: Mapping[str, Callable[[Request], Response]] = {"": self._service_document,
                                                               "$metadata": self._metadata}
        if path in routes:
            return routes[path](request)
        if path not in SCHEMAS:
            return odata_error(404, f"No HTTP resource was found that matches the request URI "
                                    f"'{request.url}'.")
        try:
            return self._entity_set(request, path)
        except ODataQueryError as exc:
            return odata_error(400, f"The query specified in the URI is not valid. {exc}")

    def _service_document(self, request: Request) -> Response:
        base = self._base(request)
        return self._json({"@odata.context": f"{base}/$metadata",
                           "value": [{"name": t, "kind": "EntitySet", "url": t} for t in SCHEMAS]})

    def _metadata(self, request: Request) -> Response:
        types = []
        for table, schema in SCHEMAS.items():
            props = "".join(
                f'<Property Name="{c.name}" Type="{edm_type(c, self.style)}"'
                + (' Nullable="false"' if c.name in schema.key else "") + "/>"
                for c in self.sim.data.columns(table))
            keys = "".join(f'<PropertyRef Name="{k}"/>' for k in schema.key)
            types.append(f'<EntityType Name="{table}"><Key>{keys}</Key>{props}</EntityType>')
        sets = "".join(f'<EntitySet Name="{t}" EntityType="{NAMESPACE}.{t}"/>' for t in SCHEMAS)
        xml = ('<?xml version="1.0" encoding="utf-8"?><edmx:Edmx Version="4.0" '
               'xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>'
               f'<Schema Namespace="{NAMESPACE}" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
               f'{"".join(types)}<EntityContainer Name="Container">{sets}</EntityContainer></Schema>'
               "</edmx:DataServices></edmx:Edmx>")
        return Response(xml, media_type="application/xml",
                        headers={"Server": IIS_SERVER, "OData-Version": "4.0"})

    def _entity_set(self, request: Request, table: str) -> Response:
        options = dict(request.query_params)
        unknown = sorted(k for k in options if k.startswith("$") and k not in SUPPORTED_OPTIONS)
        if unknown:
            raise ODataQueryError(f"The query parameter '{unknown[0]}' is not supported.")
        columns = {c.name: c for c in self.sim.data.columns(table)}
        top = _nonnegative("$top", options.get("$top"))
        skip = _nonnegative("$skip", options.get("$skip")) or 0
        count = options.get("$count")
        if count not in (None, "true", "false"):
            raise ODataQueryError(f"'{count}' is not a valid count option.")
        selected = _select(table, columns, options.get("$select"))
        order = _order(table, columns, options.get("$orderby"))
        rows = self.sim.data.rows[table]
        if "$filter" in options:
            predicate = FilterParser(options["$filter"], columns, lambda c: edm_type(c, self.style),
                                     f"{NAMESPACE}.{table}").parse()
            rows = [r for r in rows if predicate(r)]
        matched = _sorted(rows, order)
        window = matched[skip:] if top is None else matched[skip: skip + top]
        page = window[: self.page_size]
        base = self._base(request)
        select = options.get("$select")
        payload: dict[str, object] = {
            "@odata.context": f"{base}/$metadata#{table}" + (f"({','.join(c.name for c in selected)})"
                                                            if select else ""),
        }
        if count == "true":
            payload["@odata.count"] = len(matched)
        payload["value"] = [{c.name: _json_value(r[c.name], c, self.style) for c in selected} for r in page]
        if len(window) > len(page):
            following = {k: v for k, v in options.items() if k not in ("$skip", "$top")}
            following["$skip"] = str(skip + len(page))
            if top is not None:
                following["$top"] = str(top - len(page))
            payload["@odata.nextLink"] = f"{base}/{table}?{urlencode(following)}"
        return self._json(payload)
