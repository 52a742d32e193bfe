"""The JSON an XML-to-JSON bridge makes of an EBS answer (``json_style="bridged"``).

Many shops reach ISG through its SOAP/XML side, or through a gateway that converts the XML
answer to JSON. Such a bridge knows nothing of the XSD types, so:

* every scalar is a string (``10001`` -> ``"10001"``, ``1234.5`` -> ``"1234.5"``,
  ``true`` -> ``"true"``);
* ``null`` is the element with ``xsi:nil``: ``{"@xsi:nil": "true"}``;
* an empty PL/SQL table (or any empty element) is such a nil object, not ``null``, ``[]`` or
  ``{}``;
* a list of one element is the bare element (XML cannot tell one repeated element from one).

Attribute keys (``@xmlns``...) are kept as they are.
"""

from __future__ import annotations

NIL: dict[str, str] = {"@xsi:nil": "true"}


def bridged(value: object) -> object:
    """``value`` as the bridge renders it."""
    if value is None:
        return dict(NIL)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        if not value:
            return dict(NIL)
        return {key: (item if str(key).startswith("@") else bridged(item)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if not value:
            return dict(NIL)
        if len(value) == 1:
            return bridged(value[0])
        return [bridged(item) for item in value]
    return str(value)
