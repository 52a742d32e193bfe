"""Oracle E-Business Suite source: ISG REST services (PL/SQL "changed since" packages) or ORDS.

EBS has no standard "what changed" API. Each shop deploys its own PL/SQL package through the
Integrated SOA Gateway, so alias, method, parameter and output names are configuration with
defaults matching the common pattern (erp-apis.md §1.6):

    POST /webservices/rest/<alias>/<method>/
    {"<METHOD>_Input": {"RESTHeader": {...context...},
                        "InputParameters": {"P_SINCE": "...", "P_ORG_ID": 204, "P_MAX_ROWS": 200}}}
    -> {"OutputParameters": {"X_INVOICES": {"X_INVOICES_ITEM": [...]}, "X_RETURN_STATUS": "S"}}

Shops exposing tables through ORDS use collection paging (`items`, `hasMore`, `links`) and a `q=`
filter instead. Either way, DATE values are the server's local wall time (see ebs_clock).

Context (responsibility, application, security group, NLS language, org) is sent the way the
deployed service reads it: `RESTHeader` in the body, `ctx_*` query parameters, or `ctx_*`
headers. Multi-org shops define one entity (and flow) per operating unit, each with its org.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ml_connector.core.models import CheckResult, Delivery, Record
from ml_connector.errors import SourceAuthError, SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.sources.ebs_clock import format_for_ebs, parse_ebs_date, since_for_request
from ml_connector.sources.oracle_ebs_auth import EbsAuth

log = logging.getLogger(__name__)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class EbsContext(_Model):
    """Application context: responsibility key, application short name, security group, language, org."""

    responsibility: str | None = None
    application: str | None = None
    security_group: str | None = "STANDARD"
    nls_language: str | None = "AMERICAN"
    org_id: int | str | None = None

    def merged(self, override: EbsContext | None) -> EbsContext:
        if override is None:
            return self
        data = self.model_dump()
        data.update(override.model_dump(exclude_unset=True))
        return EbsContext(**data)


class EbsParams(_Model):
    """Parameter names of the shop's "changed since" method."""

    since: str = "P_SINCE"
    org: str | None = "P_ORG_ID"
    max_rows: str = "P_MAX_ROWS"
    offset: str | None = "P_OFFSET"


class EbsLookup(_Model):
    """How to fetch one record by key (e.g. a buyer's person record with phones)."""

    method: str
    param: str
    output: str
    service: str | None = None
    #: Nested collection pivoted into fields, e.g. PHONES rows -> PHONE_M, PHONE_W1, PHONE_H1.
    pivot: EbsPivot | None = None


class EbsPivot(_Model):
    collection: str = "PHONES"
    key: str = "PHONE_TYPE"
    value: str = "PHONE_NUMBER"
    prefix: str = "PHONE_"


class EbsEntity(_Model):
    """One kind of record: which method returns it and how to read its rows."""

    method: str | None = None         # ISG: the "changed since" method
    output: str | None = None         # ISG: the output collection, e.g. X_INVOICES
    service: str | None = None        # ISG alias; default: the source's `service`
    object: str | None = None         # ORDS: the AutoREST object alias, e.g. ap_invoices
    key: str
    changed_at: str = "LAST_UPDATE_DATE"
    params: EbsParams = EbsParams()
    page_size: int = Field(default=200, ge=1, le=5000)
    context: EbsContext | None = None
    table: str | None = None          # EBS table named in write-back, e.g. AP_INVOICES_ALL
    lookup: EbsLookup | None = None
    #: Date-tracked rows become current at midnight without any update: fields for the
    #: derived `EFFECTIVE_NOW` ('Y'/'N') that a trigger can watch (`becomes: 'Y'`).
    effective_start: str | None = None
    effective_end: str | None = None


class EbsWriteBack(_Model):
    enabled: bool = True
    service: str = "xx_mlc_audit"
    method: str = "record_delivery"


class OracleEbsConfig(_Model):
    type: Literal["oracle_ebs"]
    base_url: AnyHttpUrl
    username: str
    password: SecretStr
    auth: Literal["session", "basic"] = "session"
    mode: Literal["isg", "ords"] = "isg"
    ords_path: str = "/ords/apps"
    context_mode: Literal["body", "query", "headers"] = "body"
    context: EbsContext = EbsContext()
    service: str = "xx_mlc_events"
    timezone: str
    default_region: str = "US"
    verify_tls: bool = True
    ca_bundle: Path | None = None
    timeout: float = 30.0
    retries: int = Field(default=3, ge=0, le=10)
    retry_delay: float = 1.0
    entities: dict[str, EbsEntity]
    write_back: EbsWriteBack = EbsWriteBack()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as America/New_York)") from None
        return value

    @model_validator(mode="after")
    def _entities_fit_mode(self) -> OracleEbsConfig:
        for name, entity in self.entities.items():
            if self.mode == "isg" and not (entity.method and entity.output):
                raise ValueError(f"entity {name!r}: ISG mode needs `method` and `output`")
            if self.mode == "ords" and not entity.object:
                raise ValueError(f"entity {name!r}: ORDS mode needs `object`")
        return self


EbsLookup.model_rebuild()

_LOCKED = re.compile(r"lock", re.IGNORECASE)


def items_of(container: Any, name: str) -> list[dict[str, Any]]:
    """Rows of an output parameter.

    A PL/SQL table comes as `{"<NAME>_ITEM": [...]}`, and as `{"<NAME>_ITEM": {...}}` when it
    holds one row; a PL/SQL record comes as the row itself; empty outputs as null, "" or {}.
    """
    if container in (None, "", {}):
        return []
    if isinstance(container, list):
        return [row for row in container if isinstance(row, dict)]
    if not isinstance(container, dict):
        raise SourcePayloadError(f"output {name} is {type(container).__name__}, not a collection")
    item_key = f"{name}_ITEM"
    if item_key not in container:
        return [container]
    inner = container[item_key]
    if inner in (None, "", {}):
        return []
    if isinstance(inner, dict):
        return [inner]
    if isinstance(inner, list):
        return [row for row in inner if isinstance(row, dict)]
    raise SourcePayloadError(f"output {item_key} is {type(inner).__name__}")


def _messages(output: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for key in ("X_MSG_DATA", "X_MESSAGE", "X_ERROR_MESSAGE"):
        if output.get(key):
            parts.append(str(output[key]))
    for row in items_of(output.get("X_MESSAGES"), "X_MESSAGES"):
        text = row.get("MESSAGE_TEXT") or row.get("MESSAGE")
        if text:
            parts.append(str(text))
    return "; ".join(parts) or "no message"


class OracleEbsSource:
    """Implements sources.base.Source (and WriteBack) for Oracle EBS."""

    def __init__(self, name: str, config: OracleEbsConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Any = None) -> None:
        self.name = name
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self._clock = clock or (lambda: datetime.now(UTC))
        base = str(config.base_url).rstrip("/")
        self.auth = EbsAuth(base, config.username, config.password.get_secret_value(),
                            session=config.auth == "session" and config.mode == "isg", source=name)
        verify: Any = str(config.ca_bundle) if config.ca_bundle and config.verify_tls else config.verify_tls
        self._http = httpx.AsyncClient(
            base_url=base, auth=self.auth, timeout=config.timeout, transport=transport,
            verify=verify, headers={"Accept": "application/json"},
        )
        self.calls = 0

    # -- one ISG call ---------------------------------------------------------------------------

    def _context_parts(self, ctx: EbsContext) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
        """(query params, headers, RESTHeader) for the configured context mode."""
        fields = {
            "responsibility": ctx.responsibility, "respapplication": ctx.application,
            "securitygroup": ctx.security_group, "nlslanguage": ctx.nls_language, "orgid": ctx.org_id,
        }
        present = {k: str(v) for k, v in fields.items() if v is not None}
        mode = self.config.context_mode
        if mode == "query":
            return {f"ctx_{k}": v for k, v in present.items()}, {}, {}
        if mode == "headers":
            return {}, {f"ctx_{k}": v for k, v in present.items()}, {}
        header_names = {"responsibility": "Responsibility", "respapplication": "RespApplication",
                        "securitygroup": "SecurityGroup", "nlslanguage": "NLSLanguage", "orgid": "Org_Id"}
        return {}, {}, {header_names[k]: v for k, v in present.items()}

    async def call(self, service: str, method: str, params: Mapping[str, Any],
                   ctx: EbsContext) -> dict[str, Any]:
        """Call one ISG PL/SQL method; returns OutputParameters or raises a precise SourceError."""
        query, headers, rest_header = self._context_parts(ctx)
        inner: dict[str, Any] = {}
        if rest_header:
            inner["RESTHeader"] = rest_header
        inner["InputParameters"] = dict(params)
        body = {f"{method.upper()}_Input": inner}
        path = f"/webservices/rest/{service}/{method}/"
        if query:
            path += "?" + urlencode(query)
        response = await self._send("POST", path, json=body, headers=headers, what=f"{service}/{method}")
        output = self._json(response, f"{service}/{method}")
        if not isinstance(output, dict) or "OutputParameters" not in output:
            raise SourcePayloadError(f"{service}/{method}: answer has no OutputParameters", source=self.name)
        params_out = output["OutputParameters"]
        if not isinstance(params_out, dict):
            raise SourcePayloadError(f"{service}/{method}: OutputParameters is not an object", source=self.name)
        status = str(params_out.get("X_RETURN_STATUS") or "S").upper()
        if status != "S":
            message = _messages(params_out)
            kind = SourceUnavailable if _LOCKED.search(message) else SourceError
            label = {"E": "error", "U": "unexpected error"}.get(status, f"status {status}")
            raise kind(f"{service}/{method} returned {label}: {message}", source=self.name)
        return params_out

    async def _send(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        """One request with backoff on 5xx and network errors; maps failures to SourceErrors."""
        attempt = 0
        while True:
            attempt += 1
            self.calls += 1
            try:
                response = await self._http.request(method, path, **kwargs)
            except (SourceError, httpx.HTTPError) as exc:
                if isinstance(exc, SourceError):
                    raise
                if attempt > self.config.retries:
                    raise SourceUnavailable(f"{what}: cannot reach EBS: {type(exc).__name__}",
                                            source=self.name) from None
                await asyncio.sleep(self.config.retry_delay * 2 ** (attempt - 1))
                continue
            if response.status_code >= 500 and not self._is_fault(response):
                if attempt > self.config.retries:
                    raise SourceUnavailable(f"{what}: EBS web tier answered HTTP {response.status_code} "
                                            f"{attempt} times", source=self.name)
                await asyncio.sleep(self.config.retry_delay * 2 ** (attempt - 1))
                continue
            self._raise_for(response, what)
            return response

    @staticmethod
    def _is_fault(response: httpx.Response) -> bool:
        return b"ISGServiceFault" in response.content[:200]

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        if response.status_code < 400 and not self._is_fault(response):
            return
        if self._is_fault(response):
            try:
                fault = response.json().get("ISGServiceFault", {})
            except ValueError:
                fault = {}
            code, message = fault.get("Code", "ISG fault"), fault.get("Message", "")
            kind = SourceAuthError if "AUTHORI" in str(code).upper() or "GRANT" in str(code).upper() else SourceError
            hint = " (grant the method to the ISG user)" if kind is SourceAuthError else ""
            raise kind(f"{what}: {code}: {message}{hint}", source=self.name)
        if response.status_code == 401:
            raise SourceAuthError(f"{what}: refused (HTTP 401) even after logging in again", source=self.name)
        if response.status_code == 404:
            raise SourceError(f"{what}: not found (HTTP 404): is the service alias deployed and the "
                              "method name right?", source=self.name)
        raise SourceError(f"{what}: HTTP {response.status_code}", source=self.name)

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SourcePayloadError(f"{what}: answer is not valid JSON ({len(response.content)} bytes)",
                                     source=self.name) from None

    # -- Source --------------------------------------------------------------------------------

    def _entity(self, entity: str) -> EbsEntity:
        try:
            return self.config.entities[entity]
        except KeyError:
            raise SourceError(f"no entity {entity!r} configured", source=self.name) from None

    def _record(self, entity: str, spec: EbsEntity, row: Mapping[str, Any], *, z_is_local: bool) -> Record:
        if spec.key not in row:
            raise SourcePayloadError(f"{entity}: row without key field {spec.key}", source=self.name)
        try:
            changed = parse_ebs_date(row.get(spec.changed_at), self.zone, z_is_local=z_is_local)
        except ValueError as exc:
            raise SourcePayloadError(f"{entity}.{spec.changed_at}: {exc}", source=self.name) from None
        if changed is None:
            raise SourcePayloadError(f"{entity}: row {row.get(spec.key)} has no {spec.changed_at}",
                                     source=self.name)
        data = dict(row)
        data.pop("links", None)
        if spec.effective_start:
            data["EFFECTIVE_NOW"] = self._effective_now(row, spec, z_is_local)
        return Record(entity=entity, key=str(row[spec.key]).strip(), changed_at=changed, data=data)

    def _effective_now(self, row: Mapping[str, Any], spec: EbsEntity, z_is_local: bool) -> str:
        now = self._clock()
        start = parse_ebs_date(row.get(spec.effective_start or ""), self.zone, z_is_local=z_is_local)
        end = parse_ebs_date(row.get(spec.effective_end or ""), self.zone, z_is_local=z_is_local) \
            if spec.effective_end else None
        current = start is not None and start <= now and (end is None or now < end + timedelta(days=1))
        return "Y" if current else "N"

    async def fetch(self, entity: str, since: datetime, until: datetime) -> AsyncIterator[Record]:
        spec = self._entity(entity)
        pages = self._ords_pages(entity, spec, since) if self.config.mode == "ords" \
            else self._isg_pages(entity, spec, since)
        seen: set[tuple[str, datetime]] = set()
        async for records in pages:
            inside = sorted((r for r in records if since <= r.changed_at < until),
                            key=lambda r: (r.changed_at, r.key))
            for record in inside:
                if (record.key, record.changed_at) not in seen:  # keyset ties re-read a row: once
                    seen.add((record.key, record.changed_at))
                    yield record
            if records and min(r.changed_at for r in records) >= until:
                return

    async def _isg_pages(self, entity: str, spec: EbsEntity, since: datetime) -> AsyncIterator[list[Record]]:
        ctx = self.config.context.merged(spec.context)
        service = spec.service or self.config.service
        assert spec.method and spec.output  # noqa: S101 - guaranteed by the config validator
        offset = 0
        since_local = since_for_request(since, self.zone)
        last_page: tuple[Any, ...] | None = None
        while True:
            params: dict[str, Any] = {spec.params.since: since_local.strftime("%Y-%m-%dT%H:%M:%S"),
                                      spec.params.max_rows: spec.page_size}
            if spec.params.org and ctx.org_id is not None:
                params[spec.params.org] = ctx.org_id
            if spec.params.offset:
                params[spec.params.offset] = offset
            output = await self.call(service, spec.method, params, ctx)
            rows = items_of(output.get(spec.output), spec.output)
            records = [self._record(entity, spec, row, z_is_local=False) for row in rows]
            signature = tuple((r.key, r.changed_at) for r in records)
            if records and signature == last_page:
                raise SourcePayloadError(f"{service}/{spec.method} returned the same page twice: does it "
                                         f"honour {spec.params.offset}?", source=self.name)
            last_page = signature
            yield records
            if len(rows) < spec.page_size or not spec.params.offset:
                return
            offset += len(rows)

    async def _ords_pages(self, entity: str, spec: EbsEntity, since: datetime) -> AsyncIterator[list[Record]]:
        # ORDS shows local DATEs with a Z, and compares $date literals the same naive way.
        since_local = since_for_request(since, self.zone).strftime("%Y-%m-%dT%H:%M:%SZ")
        q = {spec.changed_at: {"$gte": {"$date": since_local}},
             "$orderby": {spec.changed_at: "asc", spec.key: "asc"}}
        path = f"{self.config.ords_path.rstrip('/')}/{spec.object}/"
        url: str | None = path + "?" + urlencode({"q": json.dumps(q, separators=(",", ":")),
                                                  "limit": spec.page_size, "offset": 0})
        visited: set[str] = set()
        while url:
            if url in visited:
                raise SourcePayloadError(f"ORDS {spec.object}: next link repeats {url}", source=self.name)
            visited.add(url)
            response = await self._send("GET", url, what=f"ORDS {spec.object}")
            page = self._json(response, f"ORDS {spec.object}")
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise SourcePayloadError(f"ORDS {spec.object}: answer has no items list", source=self.name)
            yield [self._record(entity, spec, row, z_is_local=True) for row in page["items"]]
            url = self._next_link(page, path, spec)

    def _next_link(self, page: Mapping[str, Any], path: str, spec: EbsEntity) -> str | None:
        for link in page.get("links") or []:
            if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
                href = str(link["href"])
                base = str(self.config.base_url).rstrip("/")
                return href[len(base):] if href.startswith(base) else href
        if page.get("hasMore"):
            raise SourcePayloadError(f"ORDS {spec.object}: hasMore without a next link", source=self.name)
        return None

    async def lookup(self, entity: str, key: str) -> Record | None:
        spec = self._entity(entity)
        if self.config.mode == "ords":
            q = {spec.key: {"$eq": _typed_key(key)}}
            response = await self._send("GET", f"{self.config.ords_path.rstrip('/')}/{spec.object}/?"
                                        + urlencode({"q": json.dumps(q)}), what=f"ORDS {spec.object}")
            items = self._json(response, f"ORDS {spec.object}").get("items") or []
            return self._record(entity, spec, items[0], z_is_local=True) if items else None
        if spec.lookup is None:
            raise SourceError(f"entity {entity!r} has no `lookup` method configured", source=self.name)
        look = spec.lookup
        ctx = self.config.context.merged(spec.context)
        output = await self.call(look.service or spec.service or self.config.service, look.method,
                                 {look.param: _typed_key(key)}, ctx)
        rows = items_of(output.get(look.output), look.output)
        if not rows:
            return None
        row = dict(rows[0])
        if look.pivot:
            for item in items_of(row.pop(look.pivot.collection, None), look.pivot.collection):
                name = f"{look.pivot.prefix}{str(item.get(look.pivot.key, '')).strip()}"
                row.setdefault(name, item.get(look.pivot.value))
        if spec.changed_at not in row:
            row[spec.changed_at] = format_for_ebs(self._clock(), self.zone)
        return self._record(entity, spec, row, z_is_local=False)

    async def check(self) -> CheckResult:
        details: dict[str, str] = {"url": str(self.config.base_url), "mode": self.config.mode}
        entity, spec = next(iter(self.config.entities.items()))
        since = self._clock() - timedelta(days=1)
        if self.config.mode == "isg":
            ctx = self.config.context.merged(spec.context)
            params: dict[str, Any] = {spec.params.since: format_for_ebs(since, self.zone), spec.params.max_rows: 1}
            if spec.params.org and ctx.org_id is not None:
                params[spec.params.org] = ctx.org_id
            await self.call(spec.service or self.config.service, spec.method or "", params, ctx)
            session = self.auth.session
            if session is not None:
                details["ebs_version"] = session.ebs_version or "?"
                details["user"] = session.user_name or self.config.username
            else:
                details["user"] = self.config.username
            details["responsibility"] = ctx.responsibility or "-"
            details["org_id"] = str(ctx.org_id) if ctx.org_id is not None else "-"
            details["service"] = f"{spec.service or self.config.service}/{spec.method}"
        else:
            async for _ in self.fetch(entity, since, self._clock()):
                break
            details["user"] = self.config.username
            details["object"] = str(spec.object)
        return CheckResult(system="Oracle E-Business Suite", details=details)

    async def write_back(self, delivery: Delivery) -> None:
        wb = self.config.write_back
        if not wb.enabled:
            return
        spec = self._entity(delivery.entity)
        params = {
            "P_SOURCE_TABLE": spec.table or delivery.entity.upper(),
            "P_SOURCE_ID": delivery.record_key,
            "P_MESSAGE_SID": delivery.provider_id or "",
            "P_STATUS": str(delivery.status).upper(),
            "P_ERROR_CODE": delivery.error_code if delivery.error_code is not None else "",
            "P_SENT_AT": format_for_ebs(delivery.created_at, self.zone),
            "P_FINAL_AT": format_for_ebs(delivery.finished_at, self.zone),
        }
        await self.call(wb.service, wb.method, params, self.config.context.merged(spec.context))

    async def aclose(self) -> None:
        logout = self.auth.logout_request()
        if logout is not None:
            try:
                await self._http.send(logout, auth=None)
            except httpx.HTTPError:
                log.info("%s: logout failed; the session expires by itself", self.name)
        await self._http.aclose()


def _typed_key(key: str) -> int | str:
    return int(key) if key.isdigit() else key


def build(config: OracleEbsConfig, context: Mapping[str, Any]) -> OracleEbsSource:
    return OracleEbsSource(context.get("name", "oracle_ebs"), config,
                           transport=(context.get("transports") or {}).get(context.get("name")),
                           clock=context.get("clock"))
