"""core.routing: ordered rules route records to recipients; first match or all; a default."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from ml_connector.core.flowspec import FlowSpec, LookupRecipient, StaticRecipients
from ml_connector.core.routing import RoutingTable, matching, recipients_for, route

MANAGER, BUYERS, AP, FALLBACK = "+14155550199", "+14155550100", "+14155550111", "+14155550122"


def table(match: str = "first", default: bool = True) -> RoutingTable:
    raw: dict[str, Any] = {"match": match, "rules": [
        {"name": "big", "when": {"all": [{"field": "Ekgrp", "eq": "001"}, {"field": "Netwr", "gte": 50000}]},
         "recipients": [{"static": [MANAGER]}]},
        {"when": {"field": "Ekgrp", "in": ["001", "002"]},
         "recipients": [{"lookup": {"entity": "buyers", "key_field": "Ekgrp", "fields": ["Telfn"]}}]},
        {"when": {"any": [{"field": "Lifnr", "eq": "0000100000"}, {"field": "Kostl", "matches": "^41"}]},
         "recipients": [{"static": [AP]}]},
    ]}
    if default:
        raw["default"] = [{"static": [FALLBACK]}]
    return RoutingTable.model_validate(raw)


def statics(specs: list[Any]) -> list[str]:
    return [n for s in specs if isinstance(s, StaticRecipients) for n in s.static] + \
        [f"lookup:{s.lookup.entity}" for s in specs if isinstance(s, LookupRecipient)]


@pytest.mark.parametrize(("data", "first", "every"), [
    ({"Ekgrp": "001", "Netwr": Decimal("75000.00")}, [0], [0, 1]),
    ({"Ekgrp": "001", "Netwr": "49999.99"}, [1], [1]),        # string amounts compare as numbers
    ({"Ekgrp": "001", "Netwr": Decimal("50000")}, [0], [0, 1]),  # the threshold itself matches gte
    ({"Ekgrp": "002", "Netwr": Decimal("90000"), "Lifnr": "0000100000"}, [1], [1, 2]),
    ({"Ekgrp": "009", "Kostl": "4100"}, [2], [2]),
    ({"Ekgrp": "009", "Kostl": "5100"}, [], []),
    ({}, [], []),                                              # missing fields match nothing
])
def test_rules_match_in_order(data: dict[str, Any], first: list[int], every: list[int]) -> None:
    assert matching(table("first"), data) == first
    assert matching(table("all"), data) == every


def test_first_match_routes_to_that_rule_only() -> None:
    assert statics(route(table(), {"Ekgrp": "001", "Netwr": 60000})) == [MANAGER]


def test_all_matches_route_to_every_rule_in_order() -> None:
    specs = route(table("all"), {"Ekgrp": "001", "Netwr": 60000, "Lifnr": "0000100000"})
    assert statics(specs) == [MANAGER, AP, "lookup:buyers"]
    assert isinstance(specs[1], LookupRecipient)  # order kept: big, buyers, AP


def test_no_match_uses_the_default_or_nobody() -> None:
    assert statics(route(table(), {"Ekgrp": "777"})) == [FALLBACK]
    assert route(table(default=False), {"Ekgrp": "777"}) == []
    assert route(None, {"Ekgrp": "001"}) == []


def test_the_flow_recipients_come_first() -> None:
    own = [StaticRecipients(static=["+14155550000"])]
    assert statics(recipients_for(own, table(), {"Ekgrp": "777"})) == ["+14155550000", FALLBACK]
    assert statics(recipients_for(own, None, {})) == ["+14155550000"]


def test_a_rule_cannot_watch_transitions() -> None:
    with pytest.raises(ValidationError, match="becomes"):
        RoutingTable.model_validate({"rules": [{"when": {"field": "Frgke", "becomes": "R"},
                                                "recipients": [{"static": [AP]}]}]})


def test_a_bad_pattern_is_refused() -> None:
    with pytest.raises(ValidationError, match="Kostl"):
        RoutingTable.model_validate({"rules": [{"when": {"field": "Kostl", "matches": "(["},
                                                "recipients": [{"static": [AP]}]}]})


def test_rules_need_recipients_and_a_table_needs_rules() -> None:
    with pytest.raises(ValidationError):
        RoutingTable.model_validate({"rules": [{"when": {"field": "a", "eq": 1}, "recipients": []}]})
    with pytest.raises(ValidationError):
        RoutingTable.model_validate({"rules": []})


FLOW: dict[str, Any] = {"source": "sap", "entity": "po", "trigger": {"field": "Frgke", "becomes": "R"},
                        "sender": "main.alerts", "template": "PO {{ Ebeln }}"}


def test_a_flow_may_route_without_its_own_recipients() -> None:
    spec = FlowSpec.model_validate({**FLOW, "routing": {"rules": [{"when": {"field": "Ekgrp", "eq": "001"},
                                                                   "recipients": [{"static": [AP]}]}]}})
    assert spec.routing_table is not None and spec.recipients == []


def test_a_flow_needs_recipients_or_routing() -> None:
    with pytest.raises(ValidationError, match="recipients"):
        FlowSpec.model_validate(FLOW)


def test_a_flow_with_a_bad_routing_table_says_where() -> None:
    with pytest.raises(ValidationError, match="rules"):
        FlowSpec.model_validate({**FLOW, "routing": {"rules": [{"when": {"field": "a", "eq": 1}}]}})
