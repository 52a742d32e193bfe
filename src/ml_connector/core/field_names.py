"""Template variables no record of the entity has, with the closest field name. Pure.

When the fields of an entity are known from the config (a SQL entity's `columns`), a template
using another name (`{{ po_numbr }}`) would fail at the first event; `validate` reports it
before, with the nearest known name (difflib) as the likely fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection

from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ml_connector.core.exposure import BUILTINS

#: Names a template reads that are not record fields: Jinja's own globals and loop variable.
JINJA_NAMES = frozenset({"loop", "range", "dict", "lipsum", "cycler", "joiner", "namespace", "self", "varargs",
                         "kwargs", "caller"})
_PARSER = ImmutableSandboxedEnvironment()


def _loaded(parsed: nodes.Template) -> list[tuple[int, str]]:
    assigned = {n.name for n in parsed.find_all(nodes.Name) if n.ctx in ("store", "param")}
    return [(n.lineno, n.name) for n in parsed.find_all(nodes.Name)
            if n.ctx == "load" and n.name not in assigned and n.name not in BUILTINS and n.name not in JINJA_NAMES]


def unknown_fields(source: str, known: Collection[str]) -> list[tuple[int, str, str | None]]:
    """(line, name, closest known name or None) for each variable that is no known field, once each."""
    names = list(dict.fromkeys(known))
    found: dict[str, int] = {}
    for line, name in _loaded(_PARSER.parse(source)):
        if name not in names and name not in found:
            found[name] = line
    out: list[tuple[int, str, str | None]] = []
    lowered = {n.lower(): n for n in names}
    for name, line in sorted(found.items(), key=lambda item: (item[1], item[0])):
        close = lowered.get(name.lower()) or next(iter(difflib.get_close_matches(name, names, n=1, cutoff=0.6)), None)
        out.append((line, name, close))
    return out
