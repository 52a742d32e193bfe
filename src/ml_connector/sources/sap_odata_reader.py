"""Pages of one Gateway entity set: `$top/$skip` where the service pages that way, else `__next`.

Paging is the service developer's job and often missing: ``paging: auto`` (the default) asks
``$top``/``$skip`` (``$skip=0`` first, so a 501 comes before any row), and on a 501 switches
to server-driven paging for the rest of the process: no ``$top``/``$skip``, the service's own
``__next`` links followed verbatim (the ``$skiptoken`` is opaque). A ``__next`` on any answer
wins over ``$skip``. Loop guards: the same next link twice, or a ``$skip`` page identical to the
one before (a service ignoring ``$skip``) are errors, never endless loops.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

import httpx

from ml_connector.errors import SourcePayloadError
from ml_connector.sources.sap_odata_http import GatewayClient, NotImplementedByService, safe_url

log = logging.getLogger(__name__)

Paging = Literal["skip", "server"]


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    count: int | None        # __count (string or number), when the service sent one
    next: str | None


def entity_url(root: str, entity_set: str, params: Mapping[str, str]) -> str:
    query = "&".join(f"{name}={quote(value, safe=',$()')}" for name, value in params.items() if value)
    return root + quote(entity_set, safe="") + (f"?{query}" if query else "")


def parse_page(content: bytes, what: str, source: str) -> Page:
    """A JSON answer: ``{"d": {"results": [...], "__count": "245", "__next": "..."}}``."""
    try:
        body = json.loads(content.decode("utf-8"), parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise SourcePayloadError(f"{what}: answer is not JSON ({len(content)} bytes)", source=source) from None
    d = body.get("d") if isinstance(body, dict) else None
    if isinstance(d, list):  # OData v1 form
        d = {"results": d}
    if not isinstance(d, dict) or not isinstance(d.get("results"), list):
        raise SourcePayloadError(f"{what}: answer has no d.results list", source=source)
    rows = d["results"]
    if not all(isinstance(row, dict) for row in rows):
        raise SourcePayloadError(f"{what}: d.results holds something other than entities", source=source)
    raw_count = d.get("__count")
    count: int | None = None
    if raw_count is not None:
        if isinstance(raw_count, int) or (isinstance(raw_count, str) and raw_count.isdigit()):
            count = int(raw_count)
        else:
            raise SourcePayloadError(f"{what}: __count is {str(raw_count)[:20]!r}, not a number", source=source)
    nxt = d.get("__next")
    if nxt is not None and (not isinstance(nxt, str) or not nxt):
        raise SourcePayloadError(f"{what}: __next is not a URL", source=source)
    return Page(rows, count, nxt)


class EntitySetReader:
    """Reads one service root's entity sets through a GatewayClient; remembers 501s on $skip."""

    def __init__(self, gateway: GatewayClient, root: str, *, service: str, source: str) -> None:
        self._gateway = gateway
        self._root = root
        self._service = service
        self._source = source
        self._server_paging: set[str] = set()

    def paging_of(self, entity_set: str, configured: str, pageable: bool) -> Paging:
        if configured == "server" or not pageable or entity_set in self._server_paging:
            return "server"
        return "skip"

    async def pages(self, entity_set: str, params: Mapping[str, str], *, page_size: int,
                    paging: str = "auto", pageable: bool = True) -> AsyncGenerator[Page, None]:
        what = f"{self._service}/{entity_set}"
        mode = self.paging_of(entity_set, paging, pageable)
        offset = 0
        seen: set[str] = set()
        previous: list[dict[str, Any]] | None = None
        url: str | None = self._first(entity_set, params, mode, page_size, offset)
        while url is not None:
            if url in seen:
                raise SourcePayloadError(f"{what}: __next repeats a page already read "
                                         f"({safe_url(url)})", source=self._source)
            seen.add(url)
            try:
                response = await self._gateway.get(url, what=what)
            except NotImplementedByService:
                if mode != "skip" or paging == "skip" or offset:
                    raise
                log.info("%s: %s answers 501 to $skip: using server-driven paging", self._source, what)
                self._server_paging.add(entity_set)
                mode = "server"
                seen.clear()
                url = self._first(entity_set, params, mode, page_size, 0)
                continue
            page = parse_page(response.content, what, self._source)
            yield page
            if page.next is not None:  # the service pages itself: its links from here on
                mode = "server"
                url = self._absolute(page.next, url, what)
                if not page.rows:
                    raise SourcePayloadError(f"{what}: an empty page with a __next link", source=self._source)
                continue
            if mode == "server" or len(page.rows) < page_size:
                return
            if previous is not None and page.rows == previous:
                raise SourcePayloadError(f"{what}: $skip={offset} returned the page before again: "
                                         "the service ignores $skip (set paging: server)", source=self._source)
            previous = page.rows
            offset += len(page.rows)
            url = self._first(entity_set, params, mode, page_size, offset)

    def _first(self, entity_set: str, params: Mapping[str, str], mode: Paging, page_size: int, offset: int) -> str:
        query = {"$format": "json", **params}
        if mode == "skip":
            query["$top"] = str(page_size)
            query["$skip"] = str(offset)
        return entity_url(self._root, entity_set, query)

    def _absolute(self, link: str, current: str, what: str) -> str:
        target = httpx.URL(current).join(link)
        root = httpx.URL(self._root)
        if (target.scheme, target.host, target.port) != (root.scheme, root.host, root.port):
            raise SourcePayloadError(f"{what}: __next leaves the SAP system ({safe_url(target)})",
                                     source=self._source)
        return str(target)
