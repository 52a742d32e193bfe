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

import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator

from ml_connector.core.models import CheckResult, Delivery, Record
from ml_connector.errors import SourceAuthError, SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.sources.ebs_clock import format_for_ebs, local_to_utc, parse_ebs_date, since_for_request
from ml_connector.sources.fields import PhoneRegion, TimeZoneName
from ml_connector.sources.oracle_ebs_auth import EbsAuth
from ml_connector.sources.oracle_ebs_json import as_flag, as_list, unbridged
from ml_connector.sources.oracle_ebs_writeback import EbsWriteBack, write_back_params
from ml_connector.sources.retrying import RetryPolicy, TryAgain
from ml_connector.tls import client_ssl_context, tls_failure

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
    """How to fetch one record by key (e.g. a buyer's person record with phones).

    `via: method` (the default) calls a get-one method (`method`, key in `param`, record in
    `output`). Shops that deployed none use `via: changed_since`: the entity's own changed-since
    method, read from `since`, with the key in `param` when the method takes such a filter, and
    the rows filtered by key here in any case (without `param` a lookup reads the whole entity;
    lookups are cached per poll).
    """

    via: Literal["method", "changed_since"] = "method"
    method: str | None = None
    param: str | None = None
    output: str | None = None
    service: str | None = None
    #: A collection pivoted into fields, e.g. X_PHONES rows -> PHONE_M, PHONE_W1, PHONE_H1.
    pivot: EbsPivot | None = None
    #: An "E" answer whose message matches this means "no such record": lookup returns None.
    not_found: str = r"(?i)\bno\b.*\b(found|exists?|is effective)\b|not found"
    #: `via: changed_since`: the "since" sent, server-local (early enough for every record).
    since: str = "1900-01-01T00:00:00"

    @model_validator(mode="after")
    def _complete(self) -> EbsLookup:
        if self.via == "method" and not (self.method and self.param and self.output):
            raise ValueError("a lookup via a get-one method needs `method`, `param` and `output` "
                             "(or `via: changed_since` to use the entity's changed-since method)")
        if self.via == "changed_since" and (self.method or self.output):
            raise ValueError("`via: changed_since` uses the entity's own method and output: "
                             "leave out `method` and `output`")
        try:
            datetime.strptime(self.since, "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise ValueError(f"since {self.since!r}: expected YYYY-MM-DDTHH:MM:SS") from None
        return self


class EbsPivot(_Model):
    """Rows of type/value pairs turned into fields of a record (PHONE_M, PHONE_W1, ...).

    On a lookup the rows come from the sibling OUT parameter `collection` (a PL/SQL procedure
    returning the person and its phones as two tables), or, failing that, from a field of that
    name nested in the record itself. On an entity (`pivot:` next to `key:`) they come from the
    nested field of each row, e.g. `PHONES: {"PHONES_ITEM": [...]}` (one phone may be a bare
    object), so `recipients: [{field: [PHONE_M, PHONE_W1]}]` works on the entity itself.
    """

    collection: str = "X_PHONES"
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
    #: A nested collection of each row pivoted into fields (e.g. PHONES -> PHONE_M, PHONE_W1).
    pivot: EbsPivot | None = None
    #: Date-tracked rows become current at midnight without any update: fields for the
    #: derived `EFFECTIVE_NOW` ('Y'/'N') that a trigger can watch (`becomes: 'Y'`).
    effective_start: str | None = None
    effective_end: str | None = None


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
    timezone: TimeZoneName
    default_region: PhoneRegion = "US"
    verify_tls: bool = True
    ca_bundle: Path | None = None
    ca_bundle_only: bool = False  # trust only ca_bundle, not the system and certifi stores too
    timeout: float = 30.0
    retries: int = Field(default=3, ge=0, le=10)
    retry_delay: float = Field(default=1.0, ge=0)
    entities: dict[str, EbsEntity]
    write_back: EbsWriteBack = EbsWriteBack()


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

#: The "until" of a lookup through the changed-since method: every row, whatever its date.
_END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)

#: How far back check() looks for one row to prove the service sees data.
CHECK_LOOKBACK = timedelta(days=366)

#: Web-tier answers worth retrying with backoff (oacore/OAFM restarting behind OHS).
_RETRIED_STATUSES = frozenset({500, 502, 503, 504})

#: ISG fault code -> (error, what to do). Checked before the HTTP status.
_FAULTS: tuple[tuple[frozenset[str], type[SourceError], str], ...] = (
    (frozenset({"ISG_USER_NOT_AUTHORIZED"}), SourceAuthError,
     "(grant {what} to user {user} in the Integration Repository)"),
    (frozenset({"ISG_AUTHENTICATION_FAILED"}), SourceAuthError, "(check username and password)"),
    (frozenset({"ISG_INVALID_SESSION"}), SourceAuthError,
     "(the session was refused even after logging in again)"),
    (frozenset({"ISG_INVALID_REQUEST"}), SourcePayloadError, "(the request body was refused)"),
)

#: HTTP status -> (error, explanation), for answers that are not ISG faults.
_STATUSES: Mapping[int, tuple[type[SourceError], str]] = {
    401: (SourceAuthError, "refused (HTTP 401) even after logging in again"),
    403: (SourceAuthError, "forbidden (HTTP 403): the user lacks the privilege for this resource"),
    404: (SourceError, "not found (HTTP 404): is the service alias deployed and the method name right?"),
    415: (SourcePayloadError, "content type refused (HTTP 415)"),
}


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

    def __init__(self, name: str, config: OracleEbsConfig, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.name = name
        self.config = config
        self._retry = RetryPolicy(config.retries, config.retry_delay)
        self.zone = ZoneInfo(config.timezone)
        self._clock = clock or (lambda: datetime.now(UTC))
        base = str(config.base_url).rstrip("/")
        self.auth = EbsAuth(base, config.username, config.password.get_secret_value(),
                            session=config.auth == "session" and config.mode == "isg", source=name)
        verify: Any = client_ssl_context(verify=config.verify_tls, ca_bundle=config.ca_bundle,
                                         ca_bundle_only=config.ca_bundle_only)
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
            raise SourcePayloadError(f"{service}/{method}: OutputParameters is not an object",
                                     source=self.name)
        status = str(params_out.get("X_RETURN_STATUS") or "S").upper()
        if status != "S":
            message = _messages(params_out)
            kind = SourceUnavailable if _LOCKED.search(message) else SourceError
            label = {"E": "error", "U": "unexpected error"}.get(status, f"status {status}")
            raise kind(f"{service}/{method} returned {label}: {message}", source=self.name)
        return params_out

    async def _send(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        """One request with backoff on 5xx and network errors; maps failures to SourceErrors."""
        async def attempt(number: int) -> httpx.Response:
            self.calls += 1
            try:
                response = await self._http.request(method, path, **kwargs)
            except SourceUnavailable as exc:  # the login in the auth flow met a 5xx
                raise TryAgain(exc) from None
            except httpx.HTTPError as exc:
                raise TryAgain(SourceUnavailable(f"{what}: cannot reach EBS: {type(exc).__name__}"
                                                 + (f" ({tls})" if (tls := tls_failure(exc)) else ""),
                                                 source=self.name)) from None
            if response.status_code in _RETRIED_STATUSES and not self._is_fault(response):
                raise TryAgain(SourceUnavailable(f"{what}: EBS web tier answered HTTP {response.status_code} "
                                                 f"{number} time(s)", source=self.name))
            self._raise_for(response, what)
            return response

        return await self._retry.run(attempt, source=self.name, what=what)

    @staticmethod
    def _is_fault(response: httpx.Response) -> bool:
        return b"ISGServiceFault" in response.content[:200]

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        if response.status_code < 400 and not self._is_fault(response):
            return
        code, message = "", ""
        if self._is_fault(response):
            try:
                fault = response.json().get("ISGServiceFault", {})
            except (ValueError, AttributeError):
                fault = {}
            code, message = str(fault.get("Code", "ISG fault")), str(fault.get("Message", ""))
        for codes, kind, explain in _FAULTS:
            if code in codes:
                raise kind(f"{what}: {code}: {message} {explain.format(user=self.config.username, what=what)}"
                           .rstrip(), source=self.name)
        kind, explain = _STATUSES.get(response.status_code, (SourceError, "HTTP {status}"))
        if self.config.mode == "ords" and response.status_code == 404:
            explain = "not found (HTTP 404): check ords_path and the object alias"
        detail = f" ({code}: {message})" if code else ""
        raise kind(f"{what}: {explain.format(status=response.status_code)}{detail}", source=self.name)

    def _json(self, response: httpx.Response, what: str) -> Any:
        """The parsed answer, nil objects of an XML-to-JSON bridge already read as None."""
        try:
            return unbridged(response.json())
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
        if row.get(spec.key) is None or not str(row[spec.key]).strip():
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
        if spec.pivot:
            data.update(_pivoted(spec.pivot, {}, data))
        if spec.effective_start:
            data["EFFECTIVE_NOW"] = self._effective_now(row, spec, z_is_local)
        return Record(entity=entity, key=str(row[spec.key]).strip(), changed_at=changed, data=data)

    def _effective_range(self, row: Mapping[str, Any], spec: EbsEntity,
                         z_is_local: bool) -> tuple[datetime | None, datetime | None]:
        """(first instant in effect, first instant no longer in effect) of a date-track row."""
        start = parse_ebs_date(row.get(spec.effective_start or ""), self.zone, z_is_local=z_is_local)
        end = parse_ebs_date(row.get(spec.effective_end or ""), self.zone, z_is_local=z_is_local) \
            if spec.effective_end else None
        return start, (end + timedelta(days=1) if end is not None else None)  # the end date is inclusive

    def _effective_now(self, row: Mapping[str, Any], spec: EbsEntity, z_is_local: bool) -> str:
        start, stop = self._effective_range(row, spec, z_is_local)
        now = self._clock()
        return "Y" if start is not None and start <= now and (stop is None or now < stop) else "N"

    async def fetch(self, entity: str, since: datetime, until: datetime) -> AsyncIterator[Record]:
        spec = self._entity(entity)
        records = self._in_window(entity, spec, since, until)
        if spec.effective_start:
            records = self._collapsed(records, spec)
        async for record in records:
            yield record

    async def _in_window(self, entity: str, spec: EbsEntity, since: datetime, until: datetime,
                         extra: Mapping[str, Any] | None = None) -> AsyncIterator[Record]:
        pages = self._ords_pages(entity, spec, since) if self.config.mode == "ords" \
            else self._isg_pages(entity, spec, since, extra or {})
        seen: set[tuple[str, datetime, str | None]] = set()
        async for records in pages:
            inside = sorted((r for r in records if since <= r.changed_at < until),
                            key=lambda r: (r.changed_at, r.key))
            for record in inside:
                version = (record.key, record.changed_at, self._row_start(record, spec))
                if version not in seen:  # offset paging that shifts re-reads a row: once
                    seen.add(version)
                    yield record
            if records and min(r.changed_at for r in records) >= until:
                return

    @staticmethod
    def _row_start(record: Record, spec: EbsEntity) -> str | None:
        return str(record.data.get(spec.effective_start)) if spec.effective_start else None

    async def _collapsed(self, records: AsyncIterator[Record], spec: EbsEntity) -> AsyncIterator[Record]:
        """One record per key for date-tracked entities: the row that matters now.

        That is the row in effect now, else the earliest future row; rows already ended are
        skipped. The record keeps the newest change time of its rows in the window, so a change
        to any of them is a new version. The window is held in memory to group its rows (a
        date-tracked window is a few rows per person, not a table scan).
        """
        now = self._clock()
        groups: dict[str, list[Record]] = {}
        async for record in records:
            groups.setdefault(record.key, []).append(record)
        z_is_local = self.config.mode == "ords"
        chosen: list[Record] = []
        for rows in groups.values():
            current: list[tuple[datetime | None, Record]] = []
            future: list[tuple[datetime | None, Record]] = []
            for record in rows:
                start, stop = self._effective_range(record.data, spec, z_is_local)
                if stop is not None and stop <= now:
                    continue
                (future if start is not None and start > now else current).append((start, record))
            pick = current or sorted(future, key=lambda pair: pair[0] or now)[:1]
            if pick:
                newest = max(r.changed_at for r in rows)
                chosen.append(replace(pick[0][1], changed_at=newest))
        for record in sorted(chosen, key=lambda r: (r.changed_at, r.key)):
            yield record

    async def _isg_pages(self, entity: str, spec: EbsEntity, since: datetime,
                         extra: Mapping[str, Any]) -> AsyncIterator[list[Record]]:
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
            params.update(extra)
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
            yield [self._record(entity, spec, row, z_is_local=True) for row in self._ords_items(page, spec)]
            url = self._next_link(page, path, spec)

    def _ords_items(self, page: Any, spec: EbsEntity) -> list[dict[str, Any]]:
        """The rows of an ORDS collection page (a bridge makes one row a bare object, none a nil)."""
        if not isinstance(page, dict) or "items" not in page:
            raise SourcePayloadError(f"ORDS {spec.object}: answer has no items list", source=self.name)
        rows = as_list(page["items"])
        if not all(isinstance(row, dict) for row in rows):
            raise SourcePayloadError(f"ORDS {spec.object}: items are not rows", source=self.name)
        return rows

    def _next_link(self, page: Mapping[str, Any], path: str, spec: EbsEntity) -> str | None:
        for link in as_list(page.get("links")):
            if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
                href = str(link["href"])
                base = str(self.config.base_url).rstrip("/")
                return href[len(base):] if href.startswith(base) else href
        if as_flag(page.get("hasMore")):
            raise SourcePayloadError(f"ORDS {spec.object}: hasMore without a next link", source=self.name)
        return None

    async def lookup(self, entity: str, key: str) -> Record | None:
        spec = self._entity(entity)
        if self.config.mode == "ords":
            q = {spec.key: {"$eq": _typed_key(key)}}
            response = await self._send("GET", f"{self.config.ords_path.rstrip('/')}/{spec.object}/?"
                                        + urlencode({"q": json.dumps(q)}), what=f"ORDS {spec.object}")
            items = self._ords_items(self._json(response, f"ORDS {spec.object}"), spec)
            return self._record(entity, spec, items[0], z_is_local=True) if items else None
        if spec.lookup is None:
            raise SourceError(f"entity {entity!r} has no `lookup` method configured", source=self.name)
        look = spec.lookup
        if look.via == "changed_since":
            return await self._lookup_by_changes(entity, spec, look, key)
        assert look.method and look.param and look.output  # noqa: S101 - guaranteed by the config validator
        ctx = self.config.context.merged(spec.context)
        service = look.service or spec.service or self.config.service
        try:
            output = await self.call(service, look.method, {look.param: _typed_key(key)}, ctx)
        except SourceError as exc:
            if type(exc) is SourceError and re.search(look.not_found, str(exc)):
                return None
            raise
        rows = items_of(output.get(look.output), look.output)
        if not rows:
            return None
        row = dict(rows[0])
        if look.pivot:
            row.update(_pivoted(look.pivot, output, row))
        elif spec.pivot:
            row.update(_pivoted(spec.pivot, {}, row))
        if spec.changed_at not in row:
            row[spec.changed_at] = format_for_ebs(self._clock(), self.zone)
        return self._record(entity, spec, row, z_is_local=False)

    async def _lookup_by_changes(self, entity: str, spec: EbsEntity, look: EbsLookup, key: str) -> Record | None:
        """One record through the changed-since method: every row of `key` since `look.since`,
        filtered here (a service may ignore the key filter), date-track rows collapsed."""
        wanted = key.strip()
        since = local_to_utc(datetime.strptime(look.since, "%Y-%m-%dT%H:%M:%S"), self.zone)
        extra = {look.param: _typed_key(wanted)} if look.param else {}
        matches = [r async for r in self._in_window(entity, spec, since, _END_OF_TIME, extra) if r.key == wanted]
        if spec.effective_start:
            matches = [r async for r in self._collapsed(_replayed(matches), spec)]
        return matches[-1] if matches else None

    async def check(self) -> CheckResult:
        """Log in and read one row of the first entity; say so when nothing at all is visible.

        EBS answers a service run without (or with the wrong) application context with zero rows,
        not an error, so an empty answer over a whole year is reported as a warning naming the
        context that was sent and where.
        """
        details: dict[str, str] = {"url": str(self.config.base_url), "mode": self.config.mode,
                                   "user": self.config.username}
        entity, spec = next(iter(self.config.entities.items()))
        since = self._clock() - CHECK_LOOKBACK
        if self.config.mode == "isg":
            ctx = self.config.context.merged(spec.context)
            params: dict[str, Any] = {spec.params.since: format_for_ebs(since, self.zone),
                                      spec.params.max_rows: 1}
            if spec.params.org and ctx.org_id is not None:
                params[spec.params.org] = ctx.org_id
            service = f"{spec.service or self.config.service}/{spec.method}"
            output = await self.call(spec.service or self.config.service, spec.method or "", params, ctx)
            visible = bool(items_of(output.get(spec.output or ""), spec.output or ""))
            session = self.auth.session
            if session is not None:
                details["ebs_version"] = session.ebs_version or "?"
                details["user"] = session.user_name or self.config.username
            details["responsibility"] = ctx.responsibility or "-"
            details["org_id"] = str(ctx.org_id) if ctx.org_id is not None else "-"
            details["service"] = service
            if not visible:
                details["warning"] = (
                    f"{service} returned no {entity} rows changed in the last {CHECK_LOOKBACK.days} days. "
                    f"If EBS has some, the service is not receiving the application context "
                    f"(responsibility {ctx.responsibility or 'none'}, org {ctx.org_id or 'none'}, "
                    f"sent as context_mode {self.config.context_mode!r}): without it multi-org "
                    f"services see no operating unit.")
        else:
            path = f"{self.config.ords_path.rstrip('/')}/{spec.object}/?limit=1"
            what = f"ORDS {spec.object}"
            page = self._json(await self._send("GET", path, what=what), what)
            items = self._ords_items(page, spec)
            details["object"] = str(spec.object)
            if not items:
                details["warning"] = f"ORDS {spec.object} returned no rows: is the object the right one?"
        return CheckResult(system="Oracle E-Business Suite", details=details)

    def writes_back(self, delivery: Delivery) -> bool:
        """Whether this delivery's status is one the shop records (`write_back.statuses`)."""
        return self.config.write_back.wants(delivery)

    @property
    def rejected_tries(self) -> int:
        """Tries before a write-back the audit service refuses as invalid is given up."""
        return self.config.write_back.rejected_tries

    async def write_back(self, delivery: Delivery) -> None:
        """Record one final status through the shop's audit method (names from `write_back`)."""
        wb = self.config.write_back
        if not wb.wants(delivery):
            return
        spec = self._entity(delivery.entity)
        params = write_back_params(wb, delivery, spec.table or delivery.entity.upper(), self.zone)
        await self.call(wb.service, wb.method, params, self.config.context.merged(spec.context))

    async def aclose(self) -> None:
        logout = self.auth.logout_request()
        if logout is not None:
            try:
                await self._http.send(logout, auth=None)
            except httpx.HTTPError:
                log.info("%s: logout failed; the session expires by itself", self.name)
        await self._http.aclose()


def _pivoted(pivot: EbsPivot, output: Mapping[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Type/value rows as fields (PHONE_M, PHONE_W1, ...); the first row of each type wins."""
    source = output.get(pivot.collection) if pivot.collection in output else row.pop(pivot.collection, None)
    fields: dict[str, Any] = {}
    for item in items_of(source, pivot.collection):
        kind = str(item.get(pivot.key) or "").strip()
        if kind:
            fields.setdefault(f"{pivot.prefix}{kind}", item.get(pivot.value))
    return {name: value for name, value in fields.items() if name not in row}


async def _replayed(records: list[Record]) -> AsyncIterator[Record]:
    for record in records:
        yield record


def _typed_key(key: str) -> int | str:
    return int(key) if key.isdigit() else key


def build(config: OracleEbsConfig, context: Mapping[str, Any]) -> OracleEbsSource:
    return OracleEbsSource(context.get("name", "oracle_ebs"), config,
                           transport=(context.get("transports") or {}).get(context.get("name")),
                           clock=context.get("clock"))
