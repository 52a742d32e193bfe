"""`validate`'s check of template variables against the fields an entity is known to have."""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateSyntaxError

from ml_connector.core.field_names import unknown_fields
from ml_connector.core.flowspec import FlowSpec


def known_fields(config: Any, spec: FlowSpec) -> list[str] | None:
    """The fields every record of the flow's entity has, when the config says (None: unknown).

    A SQL entity that lists its `columns` has those, its key and its change time; other sources
    learn their fields from the ERP at run time (or compute some), so they are not checked here.
    """
    section = config.sources.get(spec.source)
    if getattr(section, "type", None) != "sql":
        return None
    entity: Any = getattr(section, "entities", {}).get(spec.entity)
    columns = getattr(entity, "columns", None)
    if not columns:
        return None
    return [*columns, entity.key, entity.changed_at]


def field_problems(config: Any, name: str, spec: FlowSpec, where: str) -> list[str]:
    """One line per template variable that no record of the flow's entity has."""
    known = known_fields(config, spec)
    if known is None:
        return []
    try:
        found = unknown_fields(spec.template, known)
    except TemplateSyntaxError:
        return []  # reported by the compiler already
    key = f"flows.{name}.template"
    return [
        f"{where}: {key}: line {line} of the template: {field!r} is not a field of "
        f"sources.{spec.source}.entities.{spec.entity}" + (f"; did you mean {close!r}?" if close else
                                                          f" (its fields: {', '.join(known)})")
        for line, field, close in found
    ]
