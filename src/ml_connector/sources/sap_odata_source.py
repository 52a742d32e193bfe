"""The SAP ECC source in OData mode: check, fetch, lookup, describe and write-back over Gateway.

Each service's ``$metadata`` is read once per source (it types the values: Edm.Decimal strings
become exact Decimals, DATS fields dates, TIMS times) and tells which properties can be
filtered and sorted. Fetching a window asks Gateway for the rows changed in it, then judges
every row again here: services that ignore `$filter` (or a DATS filter that keeps whole days)
return rows outside the window, which are dropped, counted, and reported by `check`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from ml_connector import safexml
from ml_connector.core.models import CheckResult, Delivery, Record
from ml_connector.core.redact import mask_url
from ml_connector.errors import SourceError, SourcePayloadError
from ml_connector.sources import sap_odata as odata
from ml_connector.sources.sap_common import tls_context
from ml_connector.sources.sap_ecc import SapEccConfig, service_name
from ml_connector.sources.sap_odata_http import GatewayClient, GatewayError, NotImplementedByService
from ml_connector.sources.sap_odata_metadata import EntitySet, ServiceMetadata, parse_metadata
from ml_connector.sources.sap_odata_reader import EntitySetReader, entity_url
from ml_connector.sources.sap_odata_values import changed_at, row_values
from ml_connector.sources.syspro_change import observed_at

log = logging.getLogger(__name__)

KEY_SEPARATOR = "|"
#: How far back check() reads to see whether a service honours the change filter.
CHECK_LOOKBACK = timedelta(days=7)
_SEEN_KEPT = 100_000


class SapODataSource:
    """Implements sources.base.Source (and WriteBack, Closeable) for SAP ECC through Gateway."""

    def __init__(self, name: str, config: SapEccConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.name = name
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._http = httpx.AsyncClient(transport=transport, verify=tls_context(config), timeout=config.timeout)
        self.gateway = GatewayClient(self._http, username=config.username,
                                     password=config.password.get_secret_value(), client=config.sap_client,
                                     language=config.sap_language, source=name, retries=config.retries,
                                     retry_delay=config.retry_delay)
        self._readers = {service: EntitySetReader(self.gateway, config.service_root(service),
                                                  service=service_name(path), source=name)
                         for service, path in config.services.items()}
        self._metadata: dict[str, ServiceMetadata] = {}
        #: rows a service returned outside the filter asked, per entity (see check)
        self.outside: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"SapODataSource(name={self.name!r})"

    # -- metadata ----------------------------------------------------------------------------------

    def _spec(self, entity: str) -> odata.SapODataEntity:
        try:
            return self.config.entities[entity]
        except KeyError:
            raise SourceError(f"no entity {entity!r} configured", source=self.name) from None

    def _what(self, service: str, entity_set: str | None = None) -> str:
        name = service_name(self.config.services[service])
        return f"{name}/{entity_set}" if entity_set else name

    async def metadata(self, service: str) -> ServiceMetadata:
        """The service's $metadata, read once."""
        found = self._metadata.get(service)
        if found is None:
            what = f"{self._what(service)}/$metadata"
            response = await self.gateway.get(self.config.service_root(service) + "$metadata", what=what,
                                              headers={"Accept": "application/xml"})
            try:
                found = parse_metadata(response.content)
            except ValueError as exc:
                raise SourcePayloadError(f"{what}: {exc}", source=self.name) from None
            self._metadata[service] = found
        return found

    async def entity_set(self, entity: str) -> EntitySet:
        """The entity's set in $metadata; an error listing the sets the service has otherwise."""
        spec = self._spec(entity)
        service = self.config.service_of(spec)
        meta = await self.metadata(service)
        found = meta.entity_sets.get(spec.entity_set)
        if found is None:
            raise SourceError(f"entities.{entity}.entity_set: {self._what(service)} has no entity set "
                              f"{spec.entity_set!r}; it has: {', '.join(sorted(meta.entity_sets)) or 'none'}",
                              source=self.name)
        return found

    def _missing(self, entity: str, spec: odata.SapODataEntity, entity_set: EntitySet) -> None:
        missing = [p for p in spec.properties() if p not in entity_set.properties]
        if missing:
            service = self._what(self.config.service_of(spec), spec.entity_set)
            raise SourceError(f"entities.{entity}: {service} has no propert{'y' if len(missing) == 1 else 'ies'} "
                              f"{', '.join(missing)}; it has: {', '.join(entity_set.properties)}", source=self.name)

    # -- reading -----------------------------------------------------------------------------------

    def _params(self, spec: odata.SapODataEntity, entity_set: EntitySet, filters: list[str]) -> dict[str, str]:
        params: dict[str, str] = {}
        if filters:
            params["$filter"] = " and ".join(filters)
        order = self._order(spec, entity_set)
        if order:
            params["$orderby"] = ",".join(order)
        if spec.read_properties():
            params["$select"] = ",".join(spec.read_properties())
        return params

    @staticmethod
    def _order(spec: odata.SapODataEntity, entity_set: EntitySet) -> list[str]:
        if not spec.orderby:
            return []
        fields = [*(p for p in (spec.change.date, spec.change.time) if p and spec.change.mode == "timestamp"),
                  *spec.keys]
        props = entity_set.properties
        if any(name in props and not props[name].sortable for name in fields):
            return []
        return fields

    def _record(self, entity: str, spec: odata.SapODataEntity, entity_set: EntitySet, row: Mapping[str, Any],
                observed: datetime | None) -> Record:
        missing = [k for k in spec.keys if row.get(k) in (None, "")]
        if missing:
            raise SourcePayloadError(f"{entity}: a {spec.entity_set} row has no {', '.join(missing)}",
                                     source=self.name)
        key = KEY_SEPARATOR.join(str(row[k]).strip() for k in spec.keys)
        try:
            data = row_values(row, entity_set.types(), self.zone)
            if observed is not None:
                when = observed
            else:
                found = changed_at(row.get(spec.change.date or ""),
                                   row.get(spec.change.time) if spec.change.time else None, self.zone)
                if found is None:
                    raise ValueError(f"{spec.change.date} is empty")
                when = found
        except ValueError as exc:
            raise SourcePayloadError(f"{entity} {key}: {exc}", source=self.name) from None
        return Record(entity=entity, key=key, changed_at=when, data=data)

    def _in_window(self, spec: odata.SapODataEntity, record: Record, since: datetime, until: datetime,
                   first_day: datetime) -> bool:
        if not odata.matches_where(spec, record.data):
            return False
        if spec.change.mode == "timestamp":
            return since <= record.changed_at < until
        if spec.change.mode == "date":
            day = record.data.get(spec.change.date or "")
            day = day.date() if isinstance(day, datetime) else day
            return day is not None and day >= first_day.date()
        return True

    async def fetch(self, entity: str, since: datetime, until: datetime) -> AsyncIterator[Record]:
        """Records changed in [since, until), ordered by (changed_at, key), streamed page by page."""
        spec = self._spec(entity)
        if until <= since:
            return
        entity_set = await self.entity_set(entity)
        observed = None
        if spec.change.mode != "timestamp":
            observed = observed_at(self._clock(), since, until)
            if observed is None:
                return
        filters = [*odata.where_filter(spec, entity_set),
                   *odata.change_filter(spec, entity_set, since, until, self.zone)]
        ordered = bool(self._order(spec, entity_set))
        first_day = odata.day_of(since, self.zone)
        reader = self._readers[self.config.service_of(spec)]
        seen: set[tuple[str, datetime]] = set()
        held: list[Record] = []
        outside = 0
        pages = reader.pages(spec.entity_set, self._params(spec, entity_set, filters), page_size=spec.page_size,
                             paging=spec.paging, pageable=entity_set.pageable)
        async with contextlib.aclosing(pages):
            async for page in pages:
                kept: list[Record] = []
                for row in page.rows:
                    record = self._record(entity, spec, entity_set, row, observed)
                    if not self._in_window(spec, record, since, until, first_day):
                        outside += self._outside_filter(spec, entity_set, record, since, until)
                        continue
                    version = (record.key, record.changed_at)
                    if version in seen:  # offset paging that shifted re-reads a row: once
                        continue
                    if len(seen) < _SEEN_KEPT:
                        seen.add(version)
                    kept.append(record)
                kept.sort(key=lambda r: (r.changed_at, r.key))
                if ordered:
                    for record in kept:
                        yield record
                else:
                    held.extend(kept)
        self.outside[entity] = outside
        if outside:
            log.info("%s: %s: %d row(s) outside the filter were dropped (the service ignores part of $filter)",
                     self.name, entity, outside)
        held.sort(key=lambda r: (r.changed_at, r.key))
        for record in held:
            yield record

    def _outside_filter(self, spec: odata.SapODataEntity, entity_set: EntitySet, record: Record,
                        since: datetime, until: datetime) -> int:
        """1 when the row breaks the filter that was sent, not merely the window's times."""
        if not odata.matches_where(spec, record.data):
            return 1
        if spec.change.mode == "snapshot" or not odata.change_filter(spec, entity_set, since, until, self.zone):
            return 0
        if spec.change.mode == "date":
            return 1  # _in_window only drops a date-mode row for its date
        if odata.granularity(spec, entity_set) == "second":
            return 1 if record.changed_at < since else 0
        day = odata.day_of(record.changed_at, self.zone)
        return 1 if day < odata.day_of(since, self.zone) or day > odata.day_of(until, self.zone) else 0

    async def lookup(self, entity: str, key: str) -> Record | None:
        """One entity by key (ALPHA fields padded): GET Set('...'), or a key $filter when the service
        does not implement reading one entity (501)."""
        spec = self._spec(entity)
        values = key.split(KEY_SEPARATOR)
        if len(values) != len(spec.keys):
            raise SourceError(f"{entity}: key {key!r} does not have the {len(spec.keys)} parts "
                              f"{KEY_SEPARATOR.join(spec.keys)}", source=self.name)
        entity_set = await self.entity_set(entity)
        service = self.config.service_of(spec)
        root = self.config.service_root(service)
        what = self._what(service, spec.entity_set)
        now = self._clock()
        url = root + spec.entity_set + odata.key_predicate(spec, entity_set, values) + "?$format=json"
        try:
            response = await self.gateway.get(url, what=what)
        except NotImplementedByService:
            url = entity_url(root, spec.entity_set, {"$format": "json", "$top": "1",
                                                     "$filter": odata.key_filter(spec, entity_set, values)})
            response = await self.gateway.get(url, what=what)
        except GatewayError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            body = response.json()
        except ValueError:
            raise SourcePayloadError(f"{what}: answer is not JSON", source=self.name) from None
        d = body.get("d") if isinstance(body, dict) else None
        if isinstance(d, dict) and isinstance(d.get("results"), list):
            d = d["results"][0] if d["results"] else None
            if d is None:
                return None
        if not isinstance(d, dict):
            raise SourcePayloadError(f"{what}: answer has no entity under d", source=self.name)
        observed = now if spec.change.mode != "timestamp" else None
        record = self._record(entity, spec, entity_set, d, observed)
        return Record(entity=record.entity, key=record.key, changed_at=record.changed_at, data=record.data)

    # -- check, describe, write-back ---------------------------------------------------------------

    async def system_info(self) -> dict[str, str]:
        """Release and system id from ``/sap/public/info`` (often deactivated: then 'not reported')."""
        url = str(self.config.base_url).rstrip("/") + "/sap/public/info"
        try:
            response = await self.gateway.get(url, what="/sap/public/info", headers={"Accept": "text/xml"})
            root = safexml.parse(response.content)
        except (SourceError, safexml.XmlError):
            return {"release": "not reported (/sap/public/info is not active in SICF)"}
        found = {el.tag.rsplit("}", 1)[-1]: (el.text or "").strip() for el in root.iter()}
        info = {"release": found.get("RFCSAPRL") or "not reported"}
        if found.get("RFCSYSID"):
            info["system_id"] = found["RFCSYSID"]
        if found.get("RFCKERNRL"):
            info["kernel"] = found["RFCKERNRL"]
        return info

    async def check(self) -> CheckResult:
        """Log on, read each service's $metadata, check every configured name against it, read
        each entity once with its change filter and warn when the service ignores the filter."""
        details: dict[str, str] = {"mode": "odata", "url": mask_url(str(self.config.base_url)),
                                   "client": self.config.sap_client, "user": self.config.username,
                                   "language": self.config.sap_language}
        services = []
        for service in self.config.services:
            meta = await self._step(f"reading {self._what(service)}/$metadata", self.metadata(service))
            services.append(f"{self._what(service)} ({len(meta.entity_sets)} entity sets)")
        details["services"] = ", ".join(services)
        session_client = self.gateway.session_client()
        if session_client and session_client != self.config.sap_client:
            raise SourceError(f"check: Gateway logged us on to client {session_client}, not {self.config.sap_client}",
                              source=self.name)
        details.update(await self.system_info())
        warnings = []
        now = self._clock()
        for entity, spec in self.config.entities.items():
            entity_set = await self.entity_set(entity)
            self._missing(entity, spec, entity_set)
            read, kept = await self._probe(entity, now - CHECK_LOOKBACK, now + timedelta(seconds=1))
            span = "" if spec.change.mode == "snapshot" else f" changed in the last {CHECK_LOOKBACK.days} days"
            details[f"entity {entity}"] = f"{spec.entity_set}: first page {read} row(s), {kept} of them{span}"
            if self.outside.get(entity):
                warnings.append(f"{entity}: {self._what(self.config.service_of(spec), spec.entity_set)} returned "
                                f"{self.outside[entity]} row(s) outside the $filter sent: the service ignores "
                                "(part of) $filter. Rows are filtered here, so nobody is flooded, but every poll "
                                "reads more than it needs: ask the service developer to implement the filter")
        wb = self.config.write_back
        if wb is not None and wb.enabled:
            meta = await self.metadata(wb.service)
            target = meta.entity_sets.get(wb.entity_set)
            what = self._what(wb.service)
            if target is None:
                raise SourceError(f"write_back.entity_set: {what} has no entity set {wb.entity_set!r}; it has: "
                                  f"{', '.join(sorted(meta.entity_sets))}", source=self.name)
            missing = [p for p in wb.fields if p not in target.properties]
            if missing:
                raise SourceError(f"write_back.fields: {what}/{wb.entity_set} has no {', '.join(missing)}; it has: "
                                  f"{', '.join(target.properties)}", source=self.name)
            if not target.creatable:
                warnings.append(f"write_back: {what}/{wb.entity_set} is marked sap:creatable=\"false\"")
            details["write_back"] = f"{what}/{wb.entity_set} (POST with CSRF token)"
        if warnings:
            details["warning"] = "; ".join(warnings)
        return CheckResult(system="SAP ECC (Gateway OData v2)", details=details)

    async def _probe(self, entity: str, since: datetime, until: datetime) -> tuple[int, int]:
        """One page of the entity as fetch asks for it: (rows read, rows inside the filter);
        rows outside it are counted in `outside` (the service ignores part of $filter)."""
        spec = self._spec(entity)
        entity_set = await self.entity_set(entity)
        filters = [*odata.where_filter(spec, entity_set),
                   *odata.change_filter(spec, entity_set, since, until, self.zone)]
        observed = observed_at(self._clock(), since, until) if spec.change.mode != "timestamp" else None
        reader = self._readers[self.config.service_of(spec)]
        pages = reader.pages(spec.entity_set, self._params(spec, entity_set, filters), page_size=spec.page_size,
                             paging=spec.paging, pageable=entity_set.pageable)
        read = kept = outside = 0
        first_day = odata.day_of(since, self.zone)
        async with contextlib.aclosing(pages):
            async for page in pages:
                for row in page.rows:
                    record = self._record(entity, spec, entity_set, row, observed)
                    read += 1
                    if self._in_window(spec, record, since, until, first_day):
                        kept += 1
                    else:
                        outside += self._outside_filter(spec, entity_set, record, since, until)
                break
        self.outside[entity] = outside
        return read, kept

    async def _step(self, step: str, work: Any) -> Any:
        try:
            return await work
        except SourceError as exc:
            message = str(exc).removeprefix(f"{self.name}: ")
            raise type(exc)(f"check failed at {step}: {message}", source=self.name) from None

    async def describe(self) -> dict[str, Any]:
        """Entity sets with keys and property types of every configured service (for `discover`)."""
        found: dict[str, Any] = {}
        for service in self.config.services:
            meta = await self.metadata(service)
            found[self._what(service)] = {
                name: {"keys": list(es.keys), "pageable": es.pageable,
                       "properties": {p.name: {"type": p.type, "filterable": p.filterable, "sortable": p.sortable,
                                               **({"display_format": "Date"} if p.date_only else {}),
                                               **({"label": p.label} if p.label else {})}
                                      for p in es.properties.values()}}
                for name, es in sorted(meta.entity_sets.items())}
        return found

    async def write_back(self, delivery: Delivery) -> None:
        """POST the final status as a new entity of the configured entity set (CSRF-protected)."""
        wb = self.config.write_back
        if wb is None or not wb.enabled:
            return
        values = {"flow": delivery.flow, "entity": delivery.entity, "record_key": delivery.record_key,
                  "notification_id": str(delivery.notification_id), "provider_id": delivery.provider_id or "",
                  "status": str(delivery.status), "error_code": "" if delivery.error_code is None
                  else str(delivery.error_code), "error_message": (delivery.error_message or "")[:255],
                  "finished_at": f"/Date({int(delivery.finished_at.timestamp() * 1000)})/"}
        root = self.config.service_root(wb.service)
        await self.gateway.write("POST", root + wb.entity_set, what=self._what(wb.service, wb.entity_set),
                                 body={prop: values[field] for prop, field in wb.fields.items()}, csrf_root=root)

    async def aclose(self) -> None:
        await self._http.aclose()
