"""Reading EBS JSON whatever produced it: ISG's own Jackson output or an XML-to-JSON bridge.

A bridge in front of ISG (its SOAP/XML side, or a gateway converting the XML answer) renders
``null`` as ``{"@xsi:nil": "true"}``, an empty PL/SQL table as that same nil object, every scalar
as a string and a one-element list as the bare element. The source folds nil objects into None
as soon as it parses an answer, and reads lists and flags with the helpers below, so both styles
mean the same. Numbers stay as the service sent them: the trigger compares numeric strings as
numbers, and the adapter never guesses which text is a number (a phone or an "007" is not).
"""

from __future__ import annotations

from typing import Any

_NIL_KEYS = frozenset({"@xsi:nil", "@nil", "xsi:nil", "@i:nil"})
_TRUE = frozenset({"true", "1", "y", "yes"})


def is_nil(value: object) -> bool:
    """A nil element: its nil attribute is true and it holds nothing but attributes."""
    if not isinstance(value, dict) or not value:
        return False
    flags = [value[k] for k in value if k in _NIL_KEYS]
    if not flags or not all(str(k).startswith("@") or k in _NIL_KEYS for k in value):
        return False
    return all(flag is True or str(flag).strip().lower() in _TRUE for flag in flags)


def unbridged(value: Any) -> Any:
    """`value` with every nil object (at any depth) replaced by None."""
    if isinstance(value, dict):
        if is_nil(value):
            return None
        return {key: unbridged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unbridged(item) for item in value]
    return value


def as_list(value: Any) -> list[Any]:
    """A JSON array however it came: absent/null/"" -> [], a bare element -> [element]."""
    if value is None or value == "" or value == {}:
        return []
    if isinstance(value, list):
        return value
    return [value]


def as_flag(value: Any) -> bool:
    """A JSON boolean, or its bridged text ("true"/"false")."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in _TRUE
