"""XML from ERPs, parsed with defusedxml: entity declarations and external references are refused.

ERP answers are data from another system and can pass through proxies and middleware we do not
control, so a document that declares entities (the "billion laughs" bomb) or points at external
ones (a file or URL read on our side) is refused before anything is expanded or fetched, with
an error that says why. Building XML (requests to SYSPRO) still uses the standard library.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from defusedxml import ElementTree as _Defused
from defusedxml.common import DefusedXmlException

__all__ = ["Element", "XmlError", "XmlRefused", "parse"]


class XmlError(ValueError):
    """The text is not XML we will read: malformed, or refused as unsafe (XmlRefused)."""


class XmlRefused(XmlError):
    """The document declares entities or references external ones: never expanded, never fetched."""


def parse(content: str | bytes) -> Element:
    """The document's root element; XmlError says what is wrong with it."""
    try:
        root: Element = _Defused.fromstring(content)
    except DefusedXmlException as exc:
        raise XmlRefused(
            f"XML refused: it declares entities or references external ones ({type(exc).__name__}), "
            "which ml-connector never expands or fetches"
        ) from None
    except ParseError as exc:
        raise XmlError(f"not well-formed XML ({exc})") from None
    return root
