"""SYSPRO OData (4.0, read-only, HTTP Basic) reader: `value` pages chained by `@odata.nextLink`.

The service root (host, path and company segment) is not documented, so it is configuration
(`odata_url`); each table is an entity set under it. Filters are `$filter` conjunctions, the
order is the key (`$orderby`), and the page size a `Prefer: odata.maxpagesize` wish the server
may ignore. The loop guard: a next link seen before, a next link after an empty page, or one
pointing away from the service root (our Basic credentials would follow it) is an error.
Numbers are read as Decimal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from ml_connector.errors import SourcePayloadError
from ml_connector.sources import syspro_http
from ml_connector.sources.syspro_wire import Condition, Where

log = logging.getLogger(__name__)

_OPERATORS: Mapping[Condition, str] = {"EQ": "eq", "NE": "ne", "GT": "gt", "GE": "ge", "LT": "lt", "LE": "le"}

_HINTS: Mapping[syspro_http.Action, str] = {
    "auth": "the OData service refused the Basic credentials (operator and password)",
    "missing": "not found; is odata_url the OData service root including the company segment, "
               "and is the table exposed?",
}


def literal(where: Where) -> str:
    """An OData literal: numbers and dates bare, rowversions as numbers or binary'...', text quoted."""
    value = where.value
    if where.kind in ("number", "date"):
        return value
    if where.kind == "rowversion":
        return value if value.isdigit() else f"binary'{value}'"
    return "'" + value.replace("'", "''") + "'"


def filter_expression(filters: Sequence[Where], any_of: Sequence[Sequence[Where]] = ()) -> str:
    """`filters` ANDed; `any_of` (alternatives, each a conjunction) ORed and ANDed to them."""
    parts = []
    for where in filters:
        if where.condition not in _OPERATORS:
            raise SourcePayloadError(f"OData cannot express {where.condition} on {where.column}")
        parts.append(f"{where.column} {_OPERATORS[where.condition]} {literal(where)}")
    alternatives = [f"({filter_expression(group)})" for group in any_of if group]
    if alternatives:
        parts.append(alternatives[0] if len(alternatives) == 1 else f"({' or '.join(alternatives)})")
    return " and ".join(parts)


class ODataReader:
    """Reads entity sets under one service root with the given client (Basic auth set on it)."""

    def __init__(self, http: httpx.AsyncClient, root: str, *, source: str, retries: int, retry_delay: float):
        self._http = http
        self._root = root.rstrip("/") + "/"
        self._source = source
        self._retries = retries
        self._retry_delay = retry_delay

    def first_url(self, table: str, columns: Sequence[str], filters: Sequence[Where],
                  order_by: Sequence[str], top: int | None = None,
                  any_of: Sequence[Sequence[Where]] = ()) -> str:
        params: list[tuple[str, str]] = []
        if columns:
            params.append(("$select", ",".join(columns)))
        if filters or any(any_of):
            params.append(("$filter", filter_expression(filters, any_of)))
        if order_by:
            params.append(("$orderby", ",".join(order_by)))
        if top is not None:
            params.append(("$top", str(top)))
        query = "&".join(f"{name}={quote(value, safe=',$')}" for name, value in params)
        return self._root + quote(table, safe="") + (f"?{query}" if query else "")

    async def pages(self, table: str, columns: Sequence[str], filters: Sequence[Where],
                    order_by: Sequence[str], page_size: int, *, top: int | None = None,
                    any_of: Sequence[Sequence[Where]] = ()) -> AsyncGenerator[list[dict[str, Any]], None]:
        url: str | None = self.first_url(table, columns, filters, order_by, top, any_of)
        seen: set[str] = set()
        what = f"OData {table}"
        while url is not None:
            if url in seen:
                raise SourcePayloadError(f"{what}: @odata.nextLink repeats a page already read",
                                         source=self._source)
            seen.add(url)
            page = await self._page(url, page_size, what)
            rows = page["value"]
            yield rows
            url = self._next(page, url, what)
            if url is not None and not rows:
                raise SourcePayloadError(f"{what}: an empty page with an @odata.nextLink",
                                         source=self._source)

    async def _page(self, url: str, page_size: int, what: str) -> dict[str, Any]:
        log.debug("%s: GET %s", self._source, syspro_http.safe_url(url))
        response = await syspro_http.get(self._http, url, what=what, source=self._source,
                                          retries=self._retries, retry_delay=self._retry_delay,
                                          hints=_HINTS, headers={"Prefer": f"odata.maxpagesize={page_size}"})
        try:
            body = json.loads(response.content.decode("utf-8"), parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise SourcePayloadError(f"{what}: answer is not JSON ({len(response.content)} bytes)",
                                     source=self._source) from None
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise SourcePayloadError(f"{what}: answer has no `value` list", source=self._source)
        if not all(isinstance(row, dict) for row in body["value"]):
            raise SourcePayloadError(f"{what}: `value` holds something other than rows", source=self._source)
        return body

    def _next(self, page: Mapping[str, Any], current: str, what: str) -> str | None:
        link = page.get("@odata.nextLink")
        if link is None:
            return None
        if not isinstance(link, str) or not link:
            raise SourcePayloadError(f"{what}: @odata.nextLink is not a URL", source=self._source)
        absolute = str(httpx.URL(self._root).join(current).join(link))
        root = httpx.URL(self._root)
        target = httpx.URL(absolute)
        if (target.scheme, target.host, target.port) != (root.scheme, root.host, root.port):
            raise SourcePayloadError(f"{what}: @odata.nextLink leaves the service root "
                                     f"({syspro_http.safe_url(absolute)})", source=self._source)
        return absolute
