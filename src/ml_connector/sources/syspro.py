"""SYSPRO source: e.net business objects over `/SYSPROWCFService/Rest`, or SYSPRO's OData service.

Config::

    sources:
      syspro:
        type: syspro
        mode: enet                         # or odata (SYSPRO 8 2021 R2+, read-only, Basic auth)
        base_url: http://syspro-app:20003  # e.net Communications Service
        operator: MLC
        operator_password: ${SYSPRO_OPERATOR_PASSWORD}
        company_id: EDU1
        company_password: ${SYSPRO_COMPANY_PASSWORD:-}
        odata_url: https://syspro-app/SYSPROODataService/odata/EDU1/   # mode odata: service root
        timezone: Africa/Johannesburg      # the site's clock: business dates are local
        session_timeout: 20m               # e.net inactivity timeout; we log on again before it
        entities:
          purchase_orders:
            table: PorMasterHdr
            key: PurchaseOrder
            change: snapshot               # timestamp | date | snapshot (see syspro_change)
            where: [{column: OrderStatus, condition: NE, value: "9"}]
            lines: {}                      # LineCount and OrderTotal from PorMasterDetail
            joins: [{table: ApSupplier, key: Supplier, columns: [SupplierName]}]
            lookup: porqry
          invoices:
            table: ApInvoice
            key: [Supplier, Invoice]
            change: date
            date_column: InvoiceDate

Reading: e.net tables are read with the generic query business object COMFND (TableName,
Columns, Where expressions, OrderBy, ReturnRows). COMFND has no offset, so pages follow the key:
each next page asks for rows after the last key read, as SYSPRO stored it (padding included).
OData pages follow `@odata.nextLink`. A record's key is its key columns stripped and joined by
"|"; its data is the row with strings stripped and display numbers ("38,400.000") as Decimal.

What a message needs beyond the row is added per page, never per row: `lines` counts an order's
detail lines and totals quantity x price in one extra query over the page's key range; `joins`
add columns of another table (a supplier's name) by key, cached for `cache`. `lookup` of an
entity reads one row the same way, or with `lookup: porqry` the PORQRY business object's full
order (header fields, `Lines`, LineCount, OrderTotal).

Change detection and `changed_at`: see `syspro_change`; in short every row read by a poll is
observed at the poll's time, and the flow's transition trigger (`becomes`/`changed`) decides
what is an event. Flows on SYSPRO entities therefore need such a trigger.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ml_connector.core.flowspec import Duration
from ml_connector.core.models import CheckResult, Record
from ml_connector.core.redact import mask_url
from ml_connector.errors import ConfigError, SourceError, SourcePayloadError
from ml_connector.sources import syspro_wire as wire
from ml_connector.sources.fields import PhoneRegion, TimeZoneName
from ml_connector.sources.syspro_change import Mark, RowversionHistory, observed_at, rowversion
from ml_connector.sources.syspro_enet import REST_PATH, EnetCredentials, EnetSession
from ml_connector.sources.syspro_odata import ODataReader
from ml_connector.tls import client_ssl_context

log = logging.getLogger(__name__)

KEY_SEPARATOR = "|"
KEY_WIDTH = 20  # SYSPRO key columns are up to 20 characters, numbers right-justified in them
_RAW_KEYS_KEPT = 50_000


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SysproWhere(_Model):
    """One fixed condition (ANDed with the others), e.g. open orders only."""

    column: str
    condition: wire.Condition = "EQ"
    value: str | int | Decimal

    def where(self) -> wire.Where:
        kind: wire.ValueKind = "text" if isinstance(self.value, str) else "number"
        return wire.Where(self.column, self.condition, str(self.value), kind)


class SysproLines(_Model):
    """Aggregate a detail table into each row: `count_as` lines and `total_as` = sum(qty x price)."""

    table: str = "PorMasterDetail"
    parent: str = "PurchaseOrder"     # detail column holding the entity's key
    line: str = "Line"
    quantity: str = "MOrderQty"
    price: str = "MPrice"
    where: list[SysproWhere] = []
    count_as: str = "LineCount"
    total_as: str = "OrderTotal"
    page_size: int = Field(default=1000, ge=1, le=10000)


class SysproJoin(_Model):
    """Columns of another table joined on a shared column (e.g. ApSupplier.SupplierName by Supplier)."""

    table: str
    key: str                          # column in both tables (YAML reads a bare `on` as true)
    columns: list[str] = Field(min_length=1)
    cache: Duration = timedelta(hours=1)


class SysproEntity(_Model):
    """One table read as records."""

    table: str
    key: str | list[str]
    columns: list[str] = []           # empty: every column
    change: Literal["timestamp", "date", "snapshot"] = "snapshot"
    timestamp_column: str = "TimeStamp"
    date_column: str | None = None
    where: list[SysproWhere] = []
    numbers: list[str] = []           # columns turned into Decimal
    page_size: int = Field(default=200, ge=1, le=10000)
    lines: SysproLines | None = None
    joins: list[SysproJoin] = []
    lookup: Literal["table", "porqry"] = "table"

    @property
    def keys(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)

    @model_validator(mode="after")
    def _consistent(self) -> SysproEntity:
        if not self.keys:
            raise ValueError("key: name at least one column")
        if self.change == "date" and not self.date_column:
            raise ValueError("change: date needs date_column (e.g. InvoiceDate)")
        if (self.lines or self.lookup == "porqry") and len(self.keys) != 1:
            raise ValueError("lines and lookup: porqry need a single-column key (PurchaseOrder)")
        return self

    def read_columns(self) -> list[str]:
        """Configured columns plus every column the adapter itself needs; empty means all."""
        if not self.columns:
            return []
        needed = [*self.keys, *self.columns]
        needed += {"timestamp": [self.timestamp_column], "date": [self.date_column or ""],
                   "snapshot": []}[self.change]
        needed += [join.key for join in self.joins]
        return list(dict.fromkeys(c for c in needed if c))


class SysproConfig(_Model):
    type: Literal["syspro"]
    mode: Literal["enet", "odata"] = "enet"
    base_url: AnyHttpUrl | None = None
    rest_path: str = REST_PATH
    operator: str
    operator_password: SecretStr = SecretStr("")
    company_id: str | None = None
    company_password: SecretStr = SecretStr("")
    odata_url: AnyHttpUrl | None = None
    odata_username: str | None = None          # default: operator
    odata_password: SecretStr | None = None    # default: operator_password
    session_timeout: Duration = timedelta(minutes=20)
    rowversion_memory: Duration = timedelta(days=2)
    timezone: TimeZoneName = "UTC"
    default_region: PhoneRegion = "US"
    verify_tls: bool = True
    ca_bundle: Path | None = None
    ca_bundle_only: bool = False  # trust only ca_bundle, not the system and certifi stores too
    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    retry_delay: float = Field(default=1.0, ge=0)
    entities: dict[str, SysproEntity] = Field(min_length=1)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (mask_url(str(value)) if name in ("base_url", "odata_url") and value else value)


    @field_validator("session_timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=10):
            raise ValueError("must be at least 10s")
        return value

    @model_validator(mode="after")
    def _mode_needs(self) -> SysproConfig:
        if self.mode == "enet" and (self.base_url is None or not self.company_id):
            raise ValueError("mode enet needs base_url (the e.net REST host) and company_id")
        if self.mode == "odata":
            if self.odata_url is None:
                raise ValueError("mode odata needs odata_url (the OData service root, with the company)")
            for name, entity in self.entities.items():
                if entity.lookup == "porqry":
                    raise ValueError(f"entity {name!r}: lookup porqry needs mode enet")
                if any(w.condition == "LIKE" for w in entity.where):
                    raise ValueError(f"entity {name!r}: LIKE is not available in OData mode")
        return self


def _tls(config: SysproConfig) -> ssl.SSLContext | bool:
    """Verification on by default; a site CA bundle (internal CA in front of IIS) added when given."""
    try:
        return client_ssl_context(verify=config.verify_tls, ca_bundle=config.ca_bundle,
                                  ca_bundle_only=config.ca_bundle_only)
    except ConfigError as exc:
        raise SourceError(str(exc)) from None


def key_forms(key: str, width: int = KEY_WIDTH) -> list[str]:
    """A key as typed, then right-justified in every width up to `width` (" 00001" and so on)."""
    return [key, *(key.rjust(w) for w in range(len(key) + 1, width + 1))]


def _odata_company(root: str) -> str:
    """The service root's last path segment, which names the company (the configured convention)."""
    segments = [part for part in httpx.URL(root).path.split("/") if part]
    return f"{segments[-1]} (from odata_url)" if segments else "unknown (set company_id)"


def _raw(value: Any) -> str:
    return "" if value is None else str(value)


def _where(column: str, condition: wire.Condition, value: Any) -> wire.Where:
    """A condition on a value as served: OData wants numbers bare, COMFND takes text either way."""
    numeric = isinstance(value, int | Decimal) and not isinstance(value, bool)
    return wire.Where(column, condition, _raw(value), "number" if numeric else "text")


class SysproSource:
    """Implements sources.base.Source (and Closeable) for SYSPRO."""

    def __init__(self, name: str, config: SysproConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.name = name
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self._clock = clock or (lambda: datetime.now(UTC))
        verify = _tls(config)
        self._clients: list[httpx.AsyncClient] = []
        self.session: EnetSession | None = None
        self._odata: ODataReader | None = None
        if config.base_url is not None and config.company_id:
            http = httpx.AsyncClient(base_url=str(config.base_url).rstrip("/"), transport=transport,
                                     verify=verify, timeout=config.timeout)
            self._clients.append(http)
            credentials = EnetCredentials(config.operator, config.operator_password.get_secret_value(),
                                          config.company_id, config.company_password.get_secret_value())
            self.session = EnetSession(http, credentials, source=name, clock=self._clock,
                                       idle_timeout=config.session_timeout, retries=config.retries,
                                       retry_delay=config.retry_delay, rest_path=config.rest_path)
        if config.mode == "odata" and config.odata_url is not None:
            password = config.odata_password or config.operator_password
            http = httpx.AsyncClient(transport=transport, verify=verify, timeout=config.timeout,
                                     auth=httpx.BasicAuth(config.odata_username or config.operator,
                                                          password.get_secret_value()),
                                     headers={"Accept": "application/json"})
            self._clients.append(http)
            self._odata = ODataReader(http, str(config.odata_url), source=name, retries=config.retries,
                                      retry_delay=config.retry_delay)
        self._history: dict[str, RowversionHistory] = {}
        self._joined: dict[tuple[str, str, str], tuple[datetime, dict[str, Any]]] = {}
        self._raw_keys: dict[str, dict[str, tuple[str, ...]]] = {}

    def __repr__(self) -> str:
        return f"SysproSource(name={self.name!r}, mode={self.config.mode!r})"

    # -- reading pages ------------------------------------------------------------------------

    def _entity(self, entity: str) -> SysproEntity:
        try:
            return self.config.entities[entity]
        except KeyError:
            raise SourceError(f"no entity {entity!r} configured", source=self.name) from None

    def _enet(self) -> EnetSession:
        if self.session is None:
            raise SourceError("e.net is not configured (base_url, company_id)", source=self.name)
        return self.session

    async def _pages(self, table: str, columns: Sequence[str], filters: Sequence[wire.Where],
                     keys: Sequence[str], page_size: int) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Raw rows in key order, one list per page, from COMFND (key paging) or OData (next links)."""
        if self._odata is not None:
            async for page in self._odata.pages(table, columns, filters, keys, page_size):
                yield page
            return
        last: tuple[str, ...] | None = None
        what = f"COMFND {table}"
        while True:
            groups = [list(filters)] if last is None else wire.after_key(keys, last, filters)
            xml = wire.comfnd_xml(table, columns, groups, keys, page_size)
            text = await self._enet().call("Query/Query", (("BusinessObject", "COMFND"), ("XmlIn", xml)),
                                           what=what)
            try:
                rows: list[dict[str, Any]] = list(wire.comfnd_rows(text))
            except ValueError as exc:
                raise SourcePayloadError(f"{what}: {exc}", source=self.name) from None
            missing = [k for k in keys if rows and k not in rows[-1]]
            if missing:
                raise SourcePayloadError(f"{what}: rows lack key column(s) {', '.join(missing)}",
                                         source=self.name)
            if rows:
                after = tuple(_raw(rows[-1][k]) for k in keys)
                if after == last or (last is not None and tuple(_raw(rows[0][k]) for k in keys) == last):
                    raise SourcePayloadError(f"{what}: the next page started again at the last key read: "
                                             "does COMFND honour the Where expressions?", source=self.name)
                last = after
            yield rows
            if len(rows) < page_size:
                return

    async def _first(self, table: str, columns: Sequence[str], filters: Sequence[wire.Where],
                     keys: Sequence[str], *, any_of: Sequence[Sequence[wire.Where]] = ()
                     ) -> dict[str, Any] | None:
        """The first row in key order matching `filters` and (when given) one of `any_of`."""
        if any_of and self._odata is None:
            groups = [[*filters, *group] for group in any_of]
            xml = wire.comfnd_xml(table, columns, groups, keys, 1)
            what = f"COMFND {table}"
            text = await self._enet().call("Query/Query", (("BusinessObject", "COMFND"), ("XmlIn", xml)),
                                           what=what)
            try:
                rows = wire.comfnd_rows(text)
            except ValueError as exc:
                raise SourcePayloadError(f"{what}: {exc}", source=self.name) from None
            return dict(rows[0]) if rows else None
        pages: AsyncGenerator[list[dict[str, Any]], None]
        if self._odata is not None:
            pages = self._odata.pages(table, columns, filters, keys, 1, top=1, any_of=any_of)
        else:
            pages = self._pages(table, columns, filters, keys, 1)
        async with contextlib.aclosing(pages):
            async for rows in pages:
                return rows[0] if rows else None
        return None

    # -- enrichment (per page) -----------------------------------------------------------------

    async def _enrich(self, spec: SysproEntity, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        extras: list[dict[str, Any]] = [{} for _ in rows]
        if not rows:
            return extras
        if spec.lines is not None:
            totals = await self._line_totals(spec.lines, [r.get(spec.keys[0]) for r in rows])
            for row, extra in zip(rows, extras, strict=True):
                count, total = totals.get(_raw(row.get(spec.keys[0])).strip(), (0, Decimal(0)))
                extra[spec.lines.count_as] = count
                extra[spec.lines.total_as] = total
        for join in spec.joins:
            for row, extra in zip(rows, extras, strict=True):
                extra.update(await self._joined_columns(join, row.get(join.key)))
        return extras

    async def _line_totals(self, lines: SysproLines,
                           parents: Sequence[Any]) -> dict[str, tuple[int, Decimal]]:
        """Per parent key (stripped): (line count, sum of quantity x price) over the page's key range.

        Pages arrive in the server's key order, so the first and last keys bound the range in the
        server's own collation (padded keys compare as stored).
        """
        wanted = {_raw(p).strip() for p in parents}
        filters = [_where(lines.parent, "GE", parents[0]), _where(lines.parent, "LE", parents[-1]),
                   *(w.where() for w in lines.where)]
        columns = [lines.parent, lines.line, lines.quantity, lines.price]
        found: dict[str, tuple[int, Decimal]] = {}
        pages = self._pages(lines.table, columns, filters, [lines.parent, lines.line], lines.page_size)
        async for rows in pages:
            for row in rows:
                parent = _raw(row.get(lines.parent)).strip()
                if parent not in wanted:
                    continue
                count, total = found.get(parent, (0, Decimal(0)))
                qty, price = wire.to_decimal(row.get(lines.quantity)), wire.to_decimal(row.get(lines.price))
                amount = qty * price if qty is not None and price is not None else Decimal(0)
                found[parent] = (count + 1, total + amount)
        return found

    async def _joined_columns(self, join: SysproJoin, value: Any) -> dict[str, Any]:
        empty: dict[str, Any] = dict.fromkeys(join.columns)
        if not _raw(value).strip():
            return empty
        cache_key = (join.table, join.key, _raw(value).strip())
        now = self._clock()
        cached = self._joined.get(cache_key)
        if cached is not None and now - cached[0] < join.cache:
            return cached[1]
        row = await self._first(join.table, [join.key, *join.columns], [_where(join.key, "EQ", value)],
                                [join.key])
        columns = empty if row is None else {c: wire.normalise(row.get(c)) for c in join.columns}
        if len(self._joined) >= _RAW_KEYS_KEPT:
            self._joined.clear()
        self._joined[cache_key] = (now, columns)
        return columns

    # -- records -------------------------------------------------------------------------------

    def _record(self, entity: str, spec: SysproEntity, row: Mapping[str, Any], changed_at: datetime,
                extra: Mapping[str, Any]) -> Record:
        raw_key = tuple(_raw(row.get(k)) for k in spec.keys)
        key = KEY_SEPARATOR.join(part.strip() for part in raw_key)
        if not key.strip(KEY_SEPARATOR):
            raise SourcePayloadError(f"{entity}: a {spec.table} row has an empty key", source=self.name)
        remembered = self._raw_keys.setdefault(entity, {})
        remembered.pop(key, None)
        remembered[key] = raw_key
        if len(remembered) > _RAW_KEYS_KEPT:
            del remembered[next(iter(remembered))]
        data = wire.normalise_row(row, spec.numbers)
        data.update(extra)
        return Record(entity=entity, key=key, changed_at=changed_at, data=data)

    def _change_filters(self, entity: str, spec: SysproEntity,
                        since: datetime) -> tuple[list[wire.Where], Mark | None]:
        if spec.change == "date":
            local_day = since.astimezone(self.zone).date().isoformat()
            return [wire.Where(spec.date_column or "", "GE", local_day, "date")], None
        if spec.change == "timestamp":
            history = self._history.setdefault(entity, RowversionHistory(self.config.rowversion_memory))
            floor = history.floor(since)
            if floor is not None:
                return [wire.Where(spec.timestamp_column, "GT", floor.raw, "rowversion")], floor
        return [], None

    async def fetch(self, entity: str, since: datetime, until: datetime) -> AsyncIterator[Record]:
        """Rows read now, each with changed_at = now clamped into [since, until) (see syspro_change)."""
        spec = self._entity(entity)
        at = observed_at(self._clock(), since, until)
        if at is None:
            return
        change, floor = self._change_filters(entity, spec, since)
        filters = [*(w.where() for w in spec.where), *change]
        highest = floor
        async for rows in self._pages(spec.table, spec.read_columns(), filters, spec.keys, spec.page_size):
            extras = await self._enrich(spec, rows)
            for row, extra in zip(rows, extras, strict=True):
                if spec.change == "timestamp":
                    highest = self._higher(entity, spec, row, highest)
                yield self._record(entity, spec, row, at, extra)
        if spec.change == "timestamp" and highest is not None:
            self._history[entity].record(Mark(self._clock(), highest.value, highest.raw))

    def _higher(self, entity: str, spec: SysproEntity, row: Mapping[str, Any], highest: Mark | None) -> Mark:
        raw = row.get(spec.timestamp_column)
        value = rowversion(raw)
        if value is None:
            raise SourcePayloadError(
                f"{entity}: {spec.table}.{spec.timestamp_column} is missing or not a rowversion "
                f"({_raw(raw)[:40]!r}); use change: snapshot or date for this table", source=self.name)
        if highest is None or value > highest.value:
            return Mark(self._clock(), value, _raw(raw).strip())
        return highest

    async def lookup(self, entity: str, key: str) -> Record | None:
        """One record by its key as records carry it (stripped), e.g. "00001" or "ACM001|INV-1".

        SYSPRO compares keys as stored, leading spaces included, so the stored form is needed:
        the one a fetch saw, else (single-column keys) the row whose key is the given one as
        typed or right-justified in any width up to the column's 20 characters, in one query.
        """
        spec = self._entity(entity)
        remembered = self._raw_keys.get(entity, {}).get(key)
        raw_key = remembered or tuple(key.split(KEY_SEPARATOR))
        if len(raw_key) != len(spec.keys):
            raise SourceError(f"{entity}: key {key!r} does not have the {len(spec.keys)} parts "
                              f"{KEY_SEPARATOR.join(spec.keys)}", source=self.name)
        now = self._clock()
        if spec.lookup == "porqry" and remembered is not None:
            return await self._porqry(entity, spec, remembered[0], now)
        columns = [spec.keys[0]] if spec.lookup == "porqry" else spec.read_columns()
        if remembered is None and len(spec.keys) == 1:
            alternatives = [[wire.Where(spec.keys[0], "EQ", form)] for form in key_forms(key)]
            row = await self._first(spec.table, columns, [], spec.keys, any_of=alternatives)
        else:
            row = await self._first(spec.table, columns,
                                    [wire.Where(k, "EQ", v) for k, v in zip(spec.keys, raw_key, strict=True)],
                                    spec.keys)
        if row is None:
            return None
        if spec.lookup == "porqry":
            return await self._porqry(entity, spec, _raw(row.get(spec.keys[0])), now)
        extras = await self._enrich(spec, [row])
        return self._record(entity, spec, row, now, extras[0])

    async def _porqry(self, entity: str, spec: SysproEntity, order: str, now: datetime) -> Record | None:
        what = f"PORQRY {order.strip()}"
        try:
            text = await self._enet().call("Query/Query", (("BusinessObject", "PORQRY"),
                                                           ("XmlIn", wire.porqry_xml(order))), what=what)
        except SourceError as exc:
            if "not found" in str(exc).lower() or "not on file" in str(exc).lower():
                return None
            raise
        try:
            data = wire.porqry_data(text)
        except ValueError as exc:
            raise SourcePayloadError(f"{what}: {exc}", source=self.name) from None
        if data is None:
            return None
        lines = spec.lines or SysproLines()
        total = Decimal(0)
        for line in data["Lines"]:
            qty, price = wire.to_decimal(line.get(lines.quantity)), wire.to_decimal(line.get(lines.price))
            total += qty * price if qty is not None and price is not None else 0
        data[lines.count_as] = len(data["Lines"])
        data[lines.total_as] = total
        return Record(entity=entity, key=str(data["PurchaseOrder"]).strip(), changed_at=now, data=data)

    # -- check and close -----------------------------------------------------------------------

    async def check(self) -> CheckResult:
        """e.net: logon, getversion, one COMFND row, logoff. OData: one row, and the version from
        e.net's getversion when base_url is set (it needs no logon, so no licence seat).
        Says which step failed."""
        entity, spec = next(iter(self.config.entities.items()))
        details: dict[str, str] = {"mode": self.config.mode, "table": spec.table}
        if self._odata is not None:
            details["odata_url"] = mask_url(str(self.config.odata_url))
            details["company"] = self.config.company_id or _odata_company(str(self.config.odata_url))
            row = await self._step(f"reading one {spec.table} row over OData",
                                   self._first(spec.table, spec.read_columns(), [], spec.keys))
            details["rows"] = "1" if row else "0 (the table is empty)"
            if self.session is not None:
                details["version"] = await self._step("getversion (e.net)", self.session.version())
            else:
                details["version"] = "not reported by OData (set base_url and company_id to read it from e.net)"
            return CheckResult(system="SYSPRO (OData)", details=details)
        session = self._enet()
        details.update(url=mask_url(str(self.config.base_url)), operator=self.config.operator,
                       company=str(self.config.company_id))
        await self._step("logon", session.logon())
        details["version"] = await self._step("getversion", session.version())
        row = await self._step(f"COMFND on {spec.table}",
                               self._first(spec.table, spec.read_columns(), [], spec.keys))
        details["rows"] = "1" if row else "0 (the table is empty)"
        await self._step("logoff", session.logoff(strict=True))
        return CheckResult(system="SYSPRO e.net", details=details)

    async def _step(self, step: str, work: Any) -> Any:
        try:
            return await work
        except SourceError as exc:
            message = str(exc).removeprefix(f"{self.name}: ")
            raise type(exc)(f"check failed at {step}: {message}", source=self.name) from None

    async def aclose(self) -> None:
        """Log off (frees the e.net licence seat) and close connections."""
        if self.session is not None and self.session.logged_on:
            await self.session.logoff()
        for client in self._clients:
            await client.aclose()


def build(config: SysproConfig, context: Mapping[str, Any]) -> SysproSource:
    return SysproSource(context.get("name", "syspro"), config,
                        transport=(context.get("transports") or {}).get(context.get("name")),
                        clock=context.get("clock"))

