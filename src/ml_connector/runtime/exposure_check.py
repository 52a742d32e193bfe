"""`validate`'s data-minimisation check: templates use only the fields their source exposes."""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateSyntaxError

from ml_connector.core.exposure import unexposed
from ml_connector.core.flowspec import FlowSpec


def exposure_problems(config: Any, name: str, spec: FlowSpec, where: str) -> list[str]:
    """One line per field the flow's template uses that its source's `exposed_fields` does not list."""
    section = config.sources.get(spec.source)
    patterns = getattr(section, "exposed_fields", None)
    if patterns is None:
        return []
    try:
        found = unexposed(spec.template, patterns)
    except TemplateSyntaxError:
        return []  # reported by the compiler already
    key = f"flows.{name}.template"
    return [f"{where}: {key}: line {line} of the template: field {field!r} is not in sources.{spec.source}."
            f"exposed_fields (only those may leave the ERP)" for line, field in found]
