"""Template syntax errors read straight from the YAML, for `validate` when the config itself is invalid.

A config with errors cannot be built, so its flows' templates are not compiled with it; this
compiles each `flows.*.template` string on its own (syntax only: time zones and currencies are
the config's to check), so `validate` reports every problem in one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ml_connector.config import template_lines
from ml_connector.core.templates import compile_template
from ml_connector.errors import TemplateError


def raw_template_problems(path: Path, shown: str) -> list[str]:
    """'file:line: flows.NAME.template: line N of the template: ...' for each template that does not compile."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    flows = data.get("flows") if isinstance(data, dict) else None
    if not isinstance(flows, dict):
        return []
    lines = template_lines(path)
    problems: list[str] = []
    for name, spec in flows.items():
        source = spec.get("template") if isinstance(spec, dict) else None
        if not isinstance(source, str):
            continue
        key = f"flows.{name}.template"
        try:
            compile_template(key, source)
        except TemplateError as exc:
            where = f"{exc.template}, line {exc.line}" if exc.line else exc.template
            message = str(exc).removeprefix(f"template {where}: ")
            at = f"line {exc.line} of the template: " if exc.line else ""
            line = f":{lines[name]}" if name in lines else ""
            problems.append(f"{shown}{line}: {key}: {at}{message}")
    return problems
