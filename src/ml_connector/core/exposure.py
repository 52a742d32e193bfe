"""Data minimisation: the fields a source lets leave it (`exposed_fields`), checked in templates. Pure.

A source may declare an allow-list of field names (globs such as `PHONE_*` allowed). A flow's
template may then use only those fields (of the record, and of `member` for fan-out), besides
`record` (entity, key, change time) and `flow`; `validate` names the template, line and field of
every other use. The source keeps only allowed fields (plus the keys and control fields its
entities declare for triggers) in the records it hands on, so nothing else is stored or sent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Names a template may always use: they carry no ERP data beyond the record's key.
BUILTINS = frozenset({"record", "flow", "member"})
_PARSER = ImmutableSandboxedEnvironment()


def allowed(name: str, patterns: Collection[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _used(parsed: nodes.Template) -> Iterable[tuple[int, str]]:
    """(line, field) for each record field and `member.<field>` the template reads."""
    assigned = {n.name for n in parsed.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in parsed.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "member":
            yield node.lineno, f"member.{node.attr}"
    for item in parsed.find_all(nodes.Getitem):
        if (isinstance(item.node, nodes.Name) and item.node.name == "member"
                and isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str)):
            yield item.lineno, f"member.{item.arg.value}"
    for name in parsed.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in BUILTINS and name.name not in assigned:
            yield name.lineno, name.name


def unexposed(source: str, patterns: Collection[str]) -> list[tuple[int, str]]:
    """(line, field) of every field the template uses outside the allow-list, in order, once each."""
    found: dict[str, int] = {}
    for line, field in _used(_PARSER.parse(source)):
        bare = field.removeprefix("member.")
        if not allowed(bare, patterns) and field not in found:
            found[field] = line
    return sorted(((line, field) for field, line in found.items()))


def minimise(data: Mapping[str, Any], patterns: Collection[str], keep: Collection[str] = ()) -> dict[str, Any]:
    """Only the allowed fields of a row, plus `keep` (keys, change time, control fields)."""
    return {k: v for k, v in data.items() if k in keep or allowed(k, patterns)}
