"""Recipient routing tables: ordered rules matching record fields -> recipients. Pure.

"Map SAP vendors, cost centers, and materials to messaging recipients based on configurable
business rules"::

    routing:
      match: first                 # or all: every matching rule adds its recipients
      rules:
        - when: {all: [{field: Ekgrp, eq: "001"}, {field: Netwr, gte: 50000}]}
          recipients: [{static: ["+14155550199"]}]               # the purchasing manager
        - when: {field: Ekgrp, in: ["001", "002"]}
          recipients: [{lookup: {entity: buyers, key_field: Ekgrp, fields: [Telfn]}}]
      default: [{static: ["+14155550100"]}]                      # when no rule matches

`when` is a trigger condition without transitions (a rule judges the record as it is). The
flow's own `recipients` are always added; the routed ones come after them. Recipients that
resolve to the same number are sent once (runtime.recipients).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ml_connector.core import rules
from ml_connector.core.flowspec import AllOf, Condition, LookupRecipient, RecipientSpec, TriggerNode
from ml_connector.errors import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RoutingRule(_Frozen):
    when: TriggerNode
    recipients: list[RecipientSpec] = Field(min_length=1)
    name: str | None = None

    @model_validator(mode="after")
    def _stateless(self) -> RoutingRule:
        try:
            rules.check_trigger(self.when)
        except ConfigError as exc:
            raise ValueError("; ".join(exc.problems)) from None
        stateful = [c.field for c in _conditions(self.when) if c.operator in ("becomes", "changed")]
        if stateful:
            raise ValueError(f"routing rule on {', '.join(stateful)}: `becomes`/`changed` belong in the trigger; "
                             "a rule matches the record as it is (eq, in, gte, ...)")
        return self


class RoutingTable(_Frozen):
    match: Literal["first", "all"] = "first"
    rules: list[RoutingRule] = Field(min_length=1)
    default: list[RecipientSpec] = []


def _conditions(node: TriggerNode) -> list[Condition]:
    if isinstance(node, Condition):
        return [node]
    children = node.all if isinstance(node, AllOf) else node.any
    return [c for child in children for c in _conditions(child)]


def matching(table: RoutingTable, data: Mapping[str, Any]) -> list[int]:
    """Indexes of the rules that match `data` (only the first with match: first)."""
    found = []
    for index, rule in enumerate(table.rules):
        if rules.evaluate(rule.when, data, None, "skip"):
            found.append(index)
            if table.match == "first":
                break
    return found


def route(table: RoutingTable | None, data: Mapping[str, Any]) -> list[RecipientSpec]:
    """The routed recipients for one record: matching rules' recipients in order, else the default."""
    if table is None:
        return []
    hits = matching(table, data)
    if not hits:
        return list(table.default)
    return [spec for index in hits for spec in table.rules[index].recipients]


def recipients_for(own: Sequence[RecipientSpec], table: RoutingTable | None,
                   data: Mapping[str, Any]) -> list[RecipientSpec]:
    """A flow's recipients for one record: its own, then the routed ones."""
    return [*own, *route(table, data)]


def routed_lookups(table: RoutingTable | None, where: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """(config location, entity) of every lookup recipient in a routing table, for validation."""
    if table is None:
        return []
    found: list[tuple[tuple[str | int, ...], str]] = []
    for i, rule in enumerate(table.rules):
        found += [((*where, "routing", "rules", i, "recipients", j, "lookup", "entity"), r.lookup.entity)
                  for j, r in enumerate(rule.recipients) if isinstance(r, LookupRecipient)]
    found += [((*where, "routing", "default", j, "lookup", "entity"), r.lookup.entity)
              for j, r in enumerate(table.default) if isinstance(r, LookupRecipient)]
    return found
