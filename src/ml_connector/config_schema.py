"""The configuration file as a JSON Schema, for editors (yaml-language-server) and CI checks.

Built from the same pydantic models that validate the file, so it cannot drift from them. The
`sources` section is validated by the model its `type:` names (sources.registry); the schema
says the same with one alternative per source type. What a schema cannot say stays with
`ml-connector validate`: references between sections, templates, file modes, `${...}` values
in non-text fields (an editor sees `port: ${PORT}` as text).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ml_connector import __version__
from ml_connector.config import Config
from ml_connector.sources import registry

DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: A value that `${NAME}`, `${NAME:-default}` or `${secret:NAME}` fills in when the file is loaded.
INTERPOLATED: dict[str, Any] = {"type": "string", "pattern": r"\$\{[^}]+\}"}
_CHECKED_TEXT = ("pattern", "format")
_NOT_TEXT = frozenset({"integer", "number", "boolean"})
_SCHEMA_MAPS = frozenset({"properties", "$defs", "patternProperties", "dependentSchemas"})


def _allow_interpolation(node: Any) -> Any:
    """Where the schema checks a value's shape (a pattern, a number), a `${...}` is accepted too:
    the loader substitutes it before validating, and `validate` checks the result."""
    if isinstance(node, list):
        return [_allow_interpolation(item) for item in node]
    if not isinstance(node, dict):
        return node
    walked: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):  # name -> schema, not a schema
            walked[key] = {name: _allow_interpolation(sub) for name, sub in value.items()}
        elif key in ("default", "const", "enum", "examples"):
            walked[key] = value
        else:
            walked[key] = _allow_interpolation(value)
    kind = walked.get("type")
    if any(isinstance(walked.get(key), str) for key in _CHECKED_TEXT) or (isinstance(kind, str) and kind in _NOT_TEXT):
        return {"anyOf": [walked, INTERPOLATED]}
    return walked


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the whole configuration file."""
    sources: list[type[BaseModel]] = [registry.config_model(name) for name in sorted(registry.SOURCE_TYPES)]
    models: list[type[BaseModel]] = [Config, *sources]
    refs, shared = models_json_schema([(model, "validation") for model in models],
                                      ref_template="#/$defs/{model}")
    definitions: dict[str, Any] = shared.get("$defs", {})
    config_ref = refs[(Config, "validation")]["$ref"].rsplit("/", 1)[-1]
    root = dict(definitions.pop(config_ref))
    root["properties"] = dict(root["properties"])
    root["properties"]["sources"] = {
        "title": "Sources",
        "description": "ERP connections by name; each one's `type` picks its settings.",
        "type": "object",
        "minProperties": 1,
        "additionalProperties": {"oneOf": [refs[(model, "validation")] for model in sources]},
    }
    root = _allow_interpolation(root)
    definitions = _allow_interpolation(definitions)
    return {
        "$schema": DIALECT,
        "$comment": f"ml-connector {__version__}",
        **root,
        "title": "ml-connector configuration",
        "$defs": definitions,
    }
