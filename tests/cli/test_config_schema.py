"""`ml-connector config schema`: a JSON Schema that the shipped configs satisfy and typos fail."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ml_connector.config import starter_config
from ml_connector.sources import registry
from tests.cli.conftest import Invoke

#: The connector's example configs (sap-agent.yaml configures the SAP agent, a program of its own).
EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.yaml")
                  if p.name != "sap-agent.yaml")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from tests.cli.conftest import run_cli

    result = run_cli(["config", "schema"])
    assert result.exit_code == 0, result.output
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_it_is_a_draft_2020_12_schema_of_every_section(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"store", "webhooks", "twilio", "sources", "flows", "dispatcher"} <= set(schema["properties"])
    alternatives = schema["properties"]["sources"]["additionalProperties"]["oneOf"]
    names = {schema["$defs"][alt["$ref"].rsplit("/", 1)[-1]]["properties"]["type"]["const"] for alt in alternatives}
    assert names == set(registry.SOURCE_TYPES)
    validator(schema)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_validates(schema: dict[str, Any], example: Path) -> None:
    data = yaml.safe_load(example.read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(schema).iter_errors(data)]
    assert errors == []


def test_the_starter_config_validates(schema: dict[str, Any]) -> None:
    data = yaml.safe_load(starter_config())
    assert list(validator(schema).iter_errors(data)) == []


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("flows", "*", "templat"), "typo"),             # unknown key in a flow
        (("sources", "*", "type"), "oracle_ebz"),        # unknown source type
        (("flows", "*", "first_sighting"), "sometimes"),  # not one of skip/fire
        (("store", "colour"), "blue"),                   # unknown key in a section
        (("version",), 2),
    ],
)
def test_mistakes_fail_the_schema(schema: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    data = yaml.safe_load(next(p for p in EXAMPLES if p.name == "oracle-ebs.yaml").read_text(encoding="utf-8"))
    broken = copy.deepcopy(data)
    node = broken
    for key in path[:-1]:
        node = node.setdefault(key, {}) if key != "*" else next(iter(node.values()))
    node[path[-1]] = value
    assert list(validator(schema).iter_errors(broken)) != []


def test_indent_zero_prints_one_line(invoke: Invoke) -> None:
    result = invoke(["config", "schema", "--indent", "0"])
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 1
    json.loads(result.stdout)
