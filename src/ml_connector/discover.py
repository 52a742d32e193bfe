"""`ml-connector discover SOURCE`: what a source exposes that a flow could use, with types.

An administrator writes entity, key and field names from what their system really has: for SAP
the entity sets, keys and typed properties of each configured Gateway service's $metadata. A
source type offers this through an optional `describe()`; types without it say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ml_connector.sources import registry
from ml_connector.sources.base import Closeable


class UnknownSource(KeyError):
    """No source of that name in the config."""


async def describe_source(config: Any, name: str, context: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The source's own description, or None when its type has no `describe()` yet."""
    if name not in config.sources:
        raise UnknownSource(name)
    section = config.sources[name]
    source = registry.factory(section.type)(section, {**(context or {}), "name": name})
    try:
        describe = getattr(source, "describe", None)
        if describe is None:
            return None
        found: dict[str, Any] = await describe()
        return found
    finally:
        if isinstance(source, Closeable):
            await source.aclose()


def rows(found: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(service, entity set, property, type, notes) for a table; keys first in each set."""
    table: list[tuple[str, str, str, str, str]] = []
    for service, sets in found.items():
        for entity_set, spec in sets.items():
            keys = list(spec.get("keys", []))
            props: Mapping[str, Any] = spec.get("properties", {})
            ordered = [*keys, *(p for p in props if p not in keys)]
            for prop in ordered:
                info = props.get(prop, {})
                notes = []
                if prop in keys:
                    notes.append("key")
                if info.get("display_format") == "Date":
                    notes.append("date only (DATS)")
                if info.get("filterable") is False:
                    notes.append("not filterable")
                if info.get("sortable") is False:
                    notes.append("not sortable")
                if info.get("label"):
                    notes.append(str(info["label"]))
                table.append((service, entity_set, prop, str(info.get("type", "")), ", ".join(notes)))
    return table
