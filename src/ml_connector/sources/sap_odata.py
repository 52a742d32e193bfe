"""SAP ECC over Gateway OData v2: what an entity is (config), and its `$filter`. Pure.

Every service, entity set and property name is the customer's (most ECC shops expose their own
``Z*_SRV`` services built in SEGW), so all of them are configuration::

    services:
      po: /sap/opu/odata/sap/ZMM_PO_SRV;v=0001/     # service root; matrix parameters allowed
    entities:
      purchase_orders:
        service: po
        entity_set: PurchaseOrderSet
        key: Ebeln
        alpha: {Ebeln: 10, Lifnr: 10}                # ALPHA-padded fields and their width
        change: {date: ChangedOn, time: ChangedAt}   # DATS + TIMS, SAP wall time
        where: [{field: Bstyp, eq: F}]

Change modes: ``timestamp`` reads rows whose change date/time lies in the window (a DATS
field filters whole days: the day of `since` is read again and times are judged here);
``date`` (a DATS field without time) and ``snapshot`` (no change field: a status that moves no
timestamp) stamp every row with the poll's time, like SYSPRO, and the flow's transition
trigger decides what is an event. Services are written by people and `$filter` may be ignored:
every row is matched again here, so a service returning too much floods no one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, time
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ml_connector.core import rules
from ml_connector.core.flowspec import Condition
from ml_connector.sources.sap_odata_metadata import EntitySet
from ml_connector.sources.sap_odata_values import alpha_pad, datetime_literal, quote

Operator = Literal["eq", "ne", "gt", "ge", "lt", "le"]
_OPERATORS: tuple[Operator, ...] = ("eq", "ne", "gt", "ge", "lt", "le")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SapWhere(_Model):
    """A fixed condition ANDed into the filter, e.g. ``{field: Bstyp, eq: F}``."""

    field: str
    eq: str | int | Decimal | None = None
    ne: str | int | Decimal | None = None
    gt: str | int | Decimal | None = None
    ge: str | int | Decimal | None = None
    lt: str | int | Decimal | None = None
    le: str | int | Decimal | None = None

    @model_validator(mode="after")
    def _one(self) -> SapWhere:
        given = [op for op in _OPERATORS if getattr(self, op) is not None]
        if len(given) != 1:
            raise ValueError(f"condition on {self.field!r} needs exactly one of {', '.join(_OPERATORS)}")
        return self

    @property
    def operator(self) -> Operator:
        return next(op for op in _OPERATORS if getattr(self, op) is not None)

    @property
    def value(self) -> str | int | Decimal:
        found = getattr(self, self.operator)
        assert found is not None
        return found  # type: ignore[no-any-return]


class SapChange(_Model):
    """Which properties say when a row changed (see the module docstring)."""

    mode: Literal["timestamp", "date", "snapshot"] = "timestamp"
    date: str | None = None       # DATS as Edm.DateTime (ChangedOn, Cpudt) or a full Edm.DateTime
    time: str | None = None       # TIMS as Edm.Time (ChangedAt, Cputm)

    @model_validator(mode="after")
    def _fields(self) -> SapChange:
        if self.mode != "snapshot" and not self.date:
            raise ValueError(f"change mode {self.mode} needs `date` (the change date property)")
        if self.mode == "date" and self.time:
            raise ValueError("change mode date reads a date only; with a time property use mode timestamp")
        return self


class SapWriteBack(_Model):
    """Final delivery statuses created as entities of a customer's entity set (CSRF-protected POST).

    `fields` maps the entity set's property names to what is written: one of flow, entity,
    record_key, notification_id, provider_id, status, error_code, error_message, finished_at.
    """

    enabled: bool = False
    service: str
    entity_set: str
    fields: dict[str, Literal["flow", "entity", "record_key", "notification_id", "provider_id", "status",
                              "error_code", "error_message", "finished_at"]] = Field(min_length=1)


class SapODataEntity(_Model):
    service: str | None = None    # a name in `services`; default: the only service
    entity_set: str
    key: str | list[str]
    select: list[str] = []
    change: SapChange = SapChange(mode="snapshot")
    where: list[SapWhere] = []
    alpha: dict[str, int] = {}
    page_size: int = Field(default=200, ge=1, le=5000)
    paging: Literal["auto", "skip", "server"] = "auto"
    orderby: bool = True

    @property
    def keys(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)

    @model_validator(mode="after")
    def _widths(self) -> SapODataEntity:
        if not self.keys:
            raise ValueError("key: name at least one property")
        for name, width in self.alpha.items():
            if not 1 <= width <= 40:
                raise ValueError(f"alpha.{name}: a width between 1 and 40 (LIFNR is 10)")
        return self

    def properties(self) -> list[str]:
        """Every property this config names (for check: each must exist in $metadata)."""
        named = [*self.keys, *self.select, *(w.field for w in self.where), *self.alpha]
        named += [p for p in (self.change.date, self.change.time) if p]
        return list(dict.fromkeys(named))

    def read_properties(self) -> list[str]:
        """$select: the configured ones plus those the adapter needs; empty means all."""
        if not self.select:
            return []
        return list(dict.fromkeys([*self.keys, *self.select, *(w.field for w in self.where),
                                   *(p for p in (self.change.date, self.change.time) if p)]))


def padded(spec: SapODataEntity, field: str, value: Any) -> Any:
    """A value as SAP stores it: ALPHA fields zero-padded to their width."""
    width = spec.alpha.get(field)
    return alpha_pad(str(value), width) if width and isinstance(value, str | int) else value


def literal(value: Any, edm: str | None) -> str:
    """An OData v2 literal for a property of type `edm` (strings quoted, Int64/Decimal suffixed)."""
    if edm in (None, "Edm.String", "Edm.Guid") or isinstance(value, str) and edm not in (
            "Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte", "Edm.Decimal", "Edm.Double", "Edm.Boolean"):
        return quote(str(value))
    if edm == "Edm.Boolean":
        return "true" if str(value).lower() in ("true", "1", "x") else "false"
    if edm == "Edm.Decimal":
        return f"{value}M"
    if edm == "Edm.Int64":
        return f"{value}L"
    return str(value)


def day_of(instant: datetime, zone: ZoneInfo) -> datetime:
    """Midnight (SAP wall time) of the day `instant` falls on in the SAP zone, naive."""
    local = instant.astimezone(zone).replace(tzinfo=None)
    return datetime.combine(local.date(), time())


def granularity(spec: SapODataEntity, entity_set: EntitySet | None) -> Literal["day", "second"]:
    """A DATS field (with a TIMS beside it, or marked sap:display-format="Date") filters by day."""
    if spec.change.time or spec.change.mode == "date":
        return "day"
    prop = entity_set.properties.get(spec.change.date or "") if entity_set else None
    return "day" if prop is not None and prop.date_only else "second"


def change_filter(spec: SapODataEntity, entity_set: EntitySet | None, since: datetime, until: datetime,
                  zone: ZoneInfo) -> list[str]:
    """`$filter` parts bounding the change date to the window (whole days for DATS fields)."""
    field = spec.change.date
    if spec.change.mode == "snapshot" or not field:
        return []
    prop = entity_set.properties.get(field) if entity_set else None
    if prop is not None and not prop.filterable:
        return []
    if granularity(spec, entity_set) == "day" or spec.change.mode == "date":
        first = day_of(since, zone)
        parts = [f"{field} ge {datetime_literal(first)}"]
        if spec.change.mode == "timestamp":
            parts.append(f"{field} le {datetime_literal(day_of(until, zone))}")
        return parts
    if prop is not None and prop.type == "Edm.DateTimeOffset":
        text = since.astimezone(ZoneInfo("UTC")).replace(tzinfo=None, microsecond=0).isoformat()
        return [f"{field} ge datetimeoffset'{text}Z'"]
    wall = since.astimezone(zone).replace(microsecond=0)
    return [f"{field} ge {datetime_literal(wall)}"]


def where_filter(spec: SapODataEntity, entity_set: EntitySet | None) -> list[str]:
    parts = []
    for where in spec.where:
        prop = entity_set.properties.get(where.field) if entity_set else None
        if prop is not None and not prop.filterable:
            continue
        value = literal(padded(spec, where.field, where.value), prop.type if prop else None)
        parts.append(f"{where.field} {where.operator} {value}")
    return parts


def key_filter(spec: SapODataEntity, entity_set: EntitySet | None, values: Sequence[str]) -> str:
    parts = []
    for field, value in zip(spec.keys, values, strict=True):
        prop = entity_set.properties.get(field) if entity_set else None
        parts.append(f"{field} eq {literal(padded(spec, field, value), prop.type if prop else None)}")
    return " and ".join(parts)


def key_predicate(spec: SapODataEntity, entity_set: EntitySet | None, values: Sequence[str]) -> str:
    """``('4500000001')`` or ``(Belnr='5105600001',Gjahr='2024')``: the entity's address."""
    pieces = []
    for field, value in zip(spec.keys, values, strict=True):
        prop = entity_set.properties.get(field) if entity_set else None
        pieces.append((field, literal(padded(spec, field, value), prop.type if prop else None)))
    if len(pieces) == 1:
        return f"({pieces[0][1]})"
    return "(" + ",".join(f"{f}={v}" for f, v in pieces) + ")"


def matches_where(spec: SapODataEntity, data: Mapping[str, Any]) -> bool:
    """The fixed conditions judged here, for services that ignore `$filter` (ALPHA-aware)."""
    for where in spec.where:
        value = data.get(where.field)
        expected = padded(spec, where.field, where.value)
        if where.operator == "eq":
            ok = rules.values_equal(value, expected)
        elif where.operator == "ne":
            ok = not rules.values_equal(value, expected)
        else:
            operator = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}[where.operator]
            condition = Condition.model_validate({"field": where.field, operator: expected})
            ok = rules.evaluate(condition, data, None, "skip")
        if not ok:
            return False
    return True
