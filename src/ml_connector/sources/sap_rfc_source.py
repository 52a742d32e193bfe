"""The SAP ECC source in RFC mode: check, fetch, lookup, describe and write-back through the agent.

* `table` entities read one table with RFC_READ_TABLE. A DATS change field keeps whole days in
  the WHERE clause (the day of `since` is read again); the times are judged here, in the SAP
  system's wall time of the configured zone.
* `change_documents` entities find the objects changed in the window in CDHDR (object class
  EINKBELEG for POs: EKKO-AEDAT is the creation date, not a change date), optionally only those
  whose CDPOS rows touch watched fields, and read each with its BAPI (BAPI_PO_GETDETAIL1). A
  record's change time is its newest change document in the window: a V1 update task that
  commits one late, stamped in the past, is caught by the flow's overlap or lookback.
* `bapi` entities are look-ups through one BAPI (BAPI_VENDOR_GETDETAIL).
* Write-back calls the configured Z module and BAPI_TRANSACTION_COMMIT in one agent session.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from ml_connector.core.models import CheckResult, Delivery, Record
from ml_connector.core.redact import mask_url
from ml_connector.errors import SourceError, SourcePayloadError
from ml_connector.sources import sap_odata as odata
from ml_connector.sources import sap_rfc_table as rt
from ml_connector.sources.sap_common import tls_context
from ml_connector.sources.sap_ecc import SapEccConfig
from ml_connector.sources.sap_odata_values import alpha_pad, wall_to_utc
from ml_connector.sources.sap_rfc import (
    RfcBapiEntity,
    RfcChangeDocuments,
    RfcDetail,
    RfcEntity,
    RfcTableEntity,
    SapAgent,
    SapRfc,
)
from ml_connector.sources.sap_rfc_client import AgentClient, RfcError, RfcResult, reworded
from ml_connector.sources.syspro_change import observed_at

log = logging.getLogger(__name__)

KEY_SEPARATOR = "|"
CDPOS_CHUNK = 40
CHECK_LOOKBACK = timedelta(days=7)


def _dats(day: date) -> str:
    return day.strftime("%Y%m%d")


class SapRfcSource:
    """Implements sources.base.Source (and WriteBack, Closeable) for SAP ECC through the RFC agent."""

    def __init__(self, name: str, config: SapEccConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        assert config.agent is not None and config.rfc is not None  # the config's mode check
        self.name = name
        self.config = config
        self.agent_config: SapAgent = config.agent
        self.rfc: SapRfc = config.rfc
        self.zone = ZoneInfo(config.timezone)
        self._clock = clock or (lambda: datetime.now(UTC))
        verify = tls_context(config)
        if self.agent_config.client_cert:  # mutual TLS: our certificate in the same context
            if isinstance(verify, bool):
                context = ssl.create_default_context()
                if not verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                verify = context
            try:
                verify.load_cert_chain(self.agent_config.client_cert, self.agent_config.client_key)
            except (OSError, ssl.SSLError) as exc:
                raise SourceError(f"agent.client_cert: cannot load {self.agent_config.client_cert}"
                                  f"{' with ' + self.agent_config.client_key if self.agent_config.client_key else ''}"
                                  f": {exc.strerror or exc}", source=name) from None
        self._http = httpx.AsyncClient(transport=transport, verify=verify, timeout=config.timeout)
        token = self.agent_config.token.get_secret_value() if self.agent_config.token else None
        self.agent = AgentClient(self._http, url=self.agent_config.url, token=token, client=config.sap_client,
                                 source=name, cap_size=self.rfc.max_concurrent_calls, retries=config.retries,
                                 retry_delay=config.retry_delay)
        self.reader = rt.TableReader(self.agent, source=name, delimiter=self.rfc.delimiter)

    def __repr__(self) -> str:
        return f"SapRfcSource(name={self.name!r})"

    def _spec(self, entity: str) -> RfcEntity:
        try:
            return self.rfc.entities[entity]
        except KeyError:
            raise SourceError(f"no entity {entity!r} configured", source=self.name) from None

    # -- values ------------------------------------------------------------------------------------

    def _when(self, day: Any, at: Any) -> datetime | None:
        if not isinstance(day, date):
            return None
        return wall_to_utc(day, at if isinstance(at, time) else time(), self.zone)

    def _wall_day(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    # -- table entities ----------------------------------------------------------------------------

    def _table_clause(self, spec: RfcTableEntity, since: datetime | None, until: datetime | None) -> str:
        parts = [rt.condition(w, spec.alpha) for w in spec.where]
        if since is not None and until is not None and spec.change.mode != "snapshot" and spec.change.date:
            parts.append(f"{spec.change.date} >= {rt.quote(_dats(self._wall_day(since)))}")
            if spec.change.mode == "timestamp":
                parts.append(f"{spec.change.date} <= {rt.quote(_dats(self._wall_day(until)))}")
        return rt.conjunction(parts)

    def _table_record(self, entity: str, spec: RfcTableEntity, row: dict[str, Any],
                      observed: datetime | None) -> Record:
        missing = [k for k in spec.keys if row.get(k) in (None, "")]
        if missing:
            raise SourcePayloadError(f"{entity}: a {spec.table} row has no {', '.join(missing)}", source=self.name)
        key = KEY_SEPARATOR.join(str(row[k]).strip() for k in spec.keys)
        when = observed
        if when is None:
            when = self._when(row.get(spec.change.date or ""), row.get(spec.change.time or ""))
            if when is None:
                raise SourcePayloadError(f"{entity} {key}: {spec.change.date} is empty", source=self.name)
        return Record(entity=entity, key=key, changed_at=when, data=row)

    async def _join(self, spec: RfcTableEntity, row: dict[str, Any]) -> None:
        for join in spec.join:
            parts = [f"{theirs} = {rt.quote(row.get(mine) or '')}" for mine, theirs in join.by.items()]
            parts += [rt.condition(w, {}) for w in join.where]
            names = list(dict.fromkeys([*join.by.values(), *join.fields]))
            _, found = await self.reader.read(join.table, names, list(join.by.values()), rt.conjunction(parts),
                                              page_size=1, limit=1)
            for name in join.fields:
                row.setdefault(name, found[0].get(name) if found else "")

    async def _fetch_table(self, entity: str, spec: RfcTableEntity, since: datetime,
                           until: datetime) -> AsyncIterator[Record]:
        observed = None
        if spec.change.mode != "timestamp":
            observed = observed_at(self._clock(), since, until)
            if observed is None:
                return
        _, rows = await self.reader.read(spec.table, spec.read_fields(), spec.keys,
                                         self._table_clause(spec, since, until), page_size=spec.page_size)
        first_day = self._wall_day(since)
        judged = odata.SapODataEntity(entity_set=spec.table, key=spec.keys, alpha=spec.alpha, where=spec.where)
        records = []
        for row in rows:
            record = self._table_record(entity, spec, row, observed)
            if not odata.matches_where(judged, record.data):
                continue
            if spec.change.mode == "timestamp" and not since <= record.changed_at < until:
                continue
            if spec.change.mode == "date":
                day = record.data.get(spec.change.date or "")
                if not isinstance(day, date) or day < first_day:
                    continue
            records.append(record)
        records.sort(key=lambda r: (r.changed_at, r.key))
        for record in records:
            data = dict(record.data)
            await self._join(spec, data)
            yield Record(entity=record.entity, key=record.key, changed_at=record.changed_at, data=data)

    async def _lookup_table(self, entity: str, spec: RfcTableEntity, key: str) -> Record | None:
        values = key.split(KEY_SEPARATOR)
        if len(values) != len(spec.keys):
            raise SourceError(f"{entity}: key {key!r} does not have the {len(spec.keys)} parts "
                              f"{KEY_SEPARATOR.join(spec.keys)}", source=self.name)
        parts = [f"{k} = {rt.quote(alpha_pad(v, spec.alpha[k]) if k in spec.alpha else v)}"
                 for k, v in zip(spec.keys, values, strict=True)]
        _, rows = await self.reader.read(spec.table, spec.read_fields(), spec.keys, rt.conjunction(parts),
                                         page_size=1, limit=1)
        if not rows:
            return None
        data = dict(rows[0])
        await self._join(spec, data)
        observed = self._clock() if spec.change.mode != "timestamp" else None
        return self._table_record(entity, spec, data, observed)

    # -- change documents --------------------------------------------------------------------------

    async def _changed_objects(self, spec: RfcChangeDocuments, since: datetime, until: datetime,
                               limit: int | None = None) -> list[tuple[datetime, str]]:
        """(newest change time in the window, object id) of each object changed in [since, until)."""
        clause = rt.conjunction([f"OBJECTCLAS = {rt.quote(spec.object_class)}",
                                 f"UDATE >= {rt.quote(_dats(self._wall_day(since)))}",
                                 f"UDATE <= {rt.quote(_dats(self._wall_day(until)))}"])
        _, headers = await self.reader.read(spec.header_table, ["OBJECTID", "CHANGENR", "UDATE", "UTIME"],
                                            ["OBJECTID", "CHANGENR"], clause, page_size=spec.page_size, limit=limit)
        docs: list[tuple[datetime, str, str]] = []
        for row in headers:
            when = self._when(row.get("UDATE"), row.get("UTIME"))
            if when is None:
                raise SourcePayloadError(f"{spec.header_table} {row.get('CHANGENR')}: UDATE is empty",
                                         source=self.name)
            if since <= when < until:
                docs.append((when, str(row["OBJECTID"]).strip(), str(row["CHANGENR"]).strip()))
        if spec.watch and docs:
            watched = {tuple(w.upper().split("-", 1)) for w in spec.watch}
            touching: set[str] = set()
            numbers = sorted({d[2] for d in docs})
            for start in range(0, len(numbers), CDPOS_CHUNK):
                chunk = numbers[start:start + CDPOS_CHUNK]
                clause = rt.conjunction([f"OBJECTCLAS = {rt.quote(spec.object_class)}", rt.in_list("CHANGENR", chunk)])
                _, items = await self.reader.read(spec.item_table, ["OBJECTID", "CHANGENR", "TABNAME", "FNAME",
                                                                    "TABKEY", "CHNGIND"],
                                                  ["OBJECTID", "CHANGENR", "TABNAME", "TABKEY", "FNAME", "CHNGIND"],
                                                  clause, page_size=spec.page_size)
                touching.update(str(i["CHANGENR"]).strip() for i in items
                                if (str(i["TABNAME"]).strip(), str(i["FNAME"]).strip()) in watched)
            docs = [d for d in docs if d[2] in touching]
        newest: dict[str, datetime] = {}
        for when, objectid, _ in docs:
            newest[objectid] = max(when, newest.get(objectid, when))
        return sorted(((when, objectid) for objectid, when in newest.items()), key=lambda p: (p[0], p[1]))

    def _detail_data(self, detail: RfcDetail, result: RfcResult) -> dict[str, Any]:
        header = result.exports.get(detail.header)
        if not isinstance(header, Mapping) or not header:
            raise SourcePayloadError(f"{detail.function}: no {detail.header} in the answer", source=self.name)
        data = {k: self._value(detail, k, v) for k, v in header.items()}
        items = [{k: self._value(detail, k, v) for k, v in row.items()}
                 for row in (result.tables.get(detail.items, []) if detail.items else [])]
        schedules = [{k: self._value(detail, k, v) for k, v in row.items()}
                     for row in (result.tables.get(detail.schedules, []) if detail.schedules else [])]
        if detail.items:
            data["ITEMS"] = items
            total = Decimal("0")
            for item in items:
                if str(item.get("DELETE_IND", "")).strip():
                    continue
                quantity, price = item.get("QUANTITY"), item.get("NET_PRICE")
                unit = Decimal(str(item.get("PRICE_UNIT") or 1)) or Decimal(1)
                if isinstance(quantity, Decimal) and isinstance(price, Decimal):
                    total += quantity * price / unit
            data["NET_VALUE"] = total.quantize(Decimal("0.01"))
        if detail.schedules:
            dates = [s["DELIVERY_DATE"] for s in schedules if isinstance(s.get("DELIVERY_DATE"), date)]
            data["DELIVERY_DATE"] = min(dates) if dates else None
        return data

    def _value(self, detail: RfcDetail, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            if name in detail.dates:
                return rt.convert("D", value)
            if name in detail.decimals:
                return rt.convert("P", value)
        except (ValueError, InvalidOperation):
            raise SourcePayloadError(f"{detail.function}: {name} holds {value[:20]!r}", source=self.name) from None
        return value

    async def _detail(self, detail: RfcDetail, objectid: str, *, missing_ok: bool) -> dict[str, Any] | None:
        imports = {detail.key_parameter: alpha_pad(objectid, detail.key_width), **detail.flags}
        result = await self.agent.call(detail.function, imports, what=objectid)
        if missing_ok and _does_not_exist(result, detail.header, detail.not_found):
            return None
        result.raise_for_return(self.name, objectid)
        return self._detail_data(detail, result)

    async def _fetch_changes(self, entity: str, spec: RfcChangeDocuments, since: datetime,
                             until: datetime) -> AsyncIterator[Record]:
        for when, objectid in await self._changed_objects(spec, since, until):
            # an object with change documents must be readable: a refusal (E/A) stops the poll
            data = await self._detail(spec.detail, objectid, missing_ok=False)
            assert data is not None
            yield Record(entity=entity, key=objectid, changed_at=when, data=data)

    # -- the contract ------------------------------------------------------------------------------

    async def fetch(self, entity: str, since: datetime, until: datetime) -> AsyncIterator[Record]:
        """Records changed in [since, until), ordered by (changed_at, key)."""
        spec = self._spec(entity)
        if until <= since:
            return
        if isinstance(spec, RfcTableEntity):
            async for record in self._fetch_table(entity, spec, since, until):
                yield record
        elif isinstance(spec, RfcChangeDocuments):
            async for record in self._fetch_changes(entity, spec, since, until):
                yield record
        else:
            raise SourceError(f"{entity} is a {spec.function} look-up; flows cannot poll it", source=self.name)

    async def lookup(self, entity: str, key: str) -> Record | None:
        spec = self._spec(entity)
        now = self._clock()
        if isinstance(spec, RfcTableEntity):
            return await self._lookup_table(entity, spec, key)
        if isinstance(spec, RfcChangeDocuments):
            data = await self._detail(spec.detail, key, missing_ok=True)
            return None if data is None else Record(entity=entity, key=key, changed_at=now, data=data)
        return await self._lookup_bapi(entity, spec, key, now)

    async def _lookup_bapi(self, entity: str, spec: RfcBapiEntity, key: str, now: datetime) -> Record | None:
        value = alpha_pad(key, spec.key_width) if spec.key_width else key
        result = await self.agent.call(spec.function, {spec.key_parameter: value}, what=key)
        found = [result.exports.get(name) for name in spec.exports]
        if _does_not_exist(result, spec.exports[0], spec.not_found):
            return None
        result.raise_for_return(self.name, key)
        data: dict[str, Any] = {}
        for part in found:
            if isinstance(part, Mapping):
                data.update(part)
        return Record(entity=entity, key=key, changed_at=now, data=data)

    async def check(self) -> CheckResult:
        """The agent's info (release, client, user), then one cheap read per entity."""
        info = await self.agent.info()
        system = info.get("system") if isinstance(info.get("system"), Mapping) else {}
        assert isinstance(system, Mapping)
        client = str(system.get("client") or "")
        if client and client != self.config.sap_client:
            raise SourceError(f"check: the agent is logged on to client {client}, not {self.config.sap_client} "
                              "(client in the config)", source=self.name)
        details: dict[str, str] = {"mode": "rfc", "agent": mask_url(self.agent.url),
                                   "protocol": str(info.get("protocol") or ""),
                                   "client": client or self.config.sap_client, "user": str(system.get("user") or ""),
                                   "release": str(system.get("release") or "not reported"),
                                   "max_concurrent_calls": str(self.rfc.max_concurrent_calls)}
        for name in ("sid", "host", "codepage"):
            if system.get(name):
                details["system_id" if name == "sid" else name] = str(system[name])
        now = self._clock()
        for entity, spec in self.rfc.entities.items():
            details[f"entity {entity}"] = await self._probe(entity, spec, now)
        wb = self.config.rfc_write_back
        if wb is not None and wb.enabled:
            details["write_back"] = f"{wb.function} + {wb.commit} in one agent session"
        return CheckResult(system="SAP ECC (RFC through the agent)", details=details)

    async def _probe(self, entity: str, spec: RfcEntity, now: datetime) -> str:
        try:
            if isinstance(spec, RfcTableEntity):
                fields = await self.reader.fields(spec.table, spec.read_fields())
                return f"{spec.table}: {len(fields)} field(s)"
            if isinstance(spec, RfcChangeDocuments):
                changed = await self._changed_objects(spec, now - CHECK_LOOKBACK, now + timedelta(seconds=1),
                                                      limit=spec.page_size)  # one page is enough to know
                return (f"{spec.header_table} {spec.object_class}: {len(changed)} object(s) in the first page of "
                        f"change documents of the last {CHECK_LOOKBACK.days} days, read by {spec.detail.function}")
            return f"look-up by {spec.function}"
        except SourceError as exc:
            raise reworded(exc, f"check failed at entities.{entity}", self.name) from None

    async def describe(self) -> dict[str, Any]:
        """Fields with types of every table the entities read (DDIF_FIELDINFO_GET, or the
        RFC_READ_TABLE field list when the agent does not offer it)."""
        tables: list[str] = []
        for spec in self.rfc.entities.values():
            if isinstance(spec, RfcTableEntity):
                tables += [spec.table, *(j.table for j in spec.join)]
            elif isinstance(spec, RfcChangeDocuments):
                tables += [spec.header_table, spec.item_table]
        found: dict[str, Any] = {}
        for table in dict.fromkeys(tables):
            found[table] = await self._describe_table(table)
        return {"RFC tables": found}

    async def _describe_table(self, table: str) -> dict[str, Any]:
        try:
            result = await self.agent.call("DDIF_FIELDINFO_GET", {"TABNAME": table}, what=table)
            rows = result.tables.get("DFIES_TAB", [])
            return {"keys": [str(r["FIELDNAME"]) for r in rows if str(r.get("KEYFLAG", "")).strip()],
                    "properties": {str(r["FIELDNAME"]): {"type": f"{str(r.get('DATATYPE', '')).strip()}"
                                                                f"({int(str(r.get('LENG') or 0))})",
                                                        "label": str(r.get("FIELDTEXT", "")).strip()}
                                   for r in rows}}
        except RfcError as exc:
            if exc.body.type not in ("FUNCTION_NOT_ALLOWED", "ABAP_APPLICATION_ERROR") or exc.key == "NOT_FOUND":
                raise
        fields = await self.reader.fields(table)
        return {"keys": [], "properties": {f.name: {"type": f"{f.type}({f.length})", "label": f.text}
                                           for f in fields}}

    async def write_back(self, delivery: Delivery) -> None:
        """The final status through the Z module, committed by BAPI_TRANSACTION_COMMIT in the same
        agent session; E/A RETURN rows roll back and are errors naming message class and number."""
        wb = self.config.rfc_write_back
        if wb is None or not wb.enabled:
            return
        values = {"flow": delivery.flow, "entity": delivery.entity, "record_key": delivery.record_key,
                  "notification_id": str(delivery.notification_id), "provider_id": delivery.provider_id or "",
                  "status": str(delivery.status),
                  "error_code": "" if delivery.error_code is None else str(delivery.error_code),
                  "error_message": (delivery.error_message or "")[:220],
                  "finished_at": delivery.finished_at.astimezone(UTC).strftime("%Y%m%d%H%M%S")}
        imports = {param: values[what] for param, what in wb.parameters.items()}
        async with self.agent.session() as session:
            result = await self.agent.call(wb.function, imports, session=session, what=str(delivery.notification_id))
            try:
                result.raise_for_return(self.name, f"notification {delivery.notification_id}")
            except SourceError:
                await self.agent.call(wb.rollback, session=session)
                raise
            commit = await self.agent.call(wb.commit, {"WAIT": "X"}, session=session)
            commit.raise_for_return(self.name)

    async def aclose(self) -> None:
        await self._http.aclose()


def _does_not_exist(result: RfcResult, export: str, not_found: list[str]) -> bool:
    """A BAPI's "does not exist": nothing exported, and every RETURN row an E whose ID/NUMBER is
    configured as such (other errors, such as missing authorisation, stay errors)."""
    exported = result.exports.get(export)
    if isinstance(exported, Mapping) and any(str(v).strip() for v in exported.values()):
        return False
    known = {m.strip().upper() for m in not_found}
    rows = result.returned
    return bool(rows) and all(str(r.get("TYPE", "")).strip() == "E" and
                              f"{str(r.get('ID', '')).strip()}/{str(r.get('NUMBER', '')).strip()}".upper() in known
                              for r in rows)

