"""How the simulated SYSPRO puts things on the wire: e.net bodies, BO XML, error shapes, HTTP.sys pages.

e.net answers every call with HTTP 200, ``Content-Type: application/octet-stream`` and
``Server: Microsoft-HTTPAPI/2.0``, the body being the business object's string in Windows-1252.
Failures are either a text starting ``ERROR:`` or, for business-object validation, XML whose
element names are lower-cased (as recorded from SYSPRO 7). Characters outside Windows-1252 become
``?`` as they do when SYSPRO writes the string.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.sax.saxutils import escape

from starlette.responses import Response

ENET_SERVER = "Microsoft-HTTPAPI/2.0"
XML_DECL = '<?xml version="1.0" encoding="Windows-1252"?>'


class EnetError(Exception):
    """A failure e.net reports as an ``ERROR: <text>`` body with HTTP 200."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class ValidationFault(Exception):
    """A business-object validation failure, reported as lower-cased XML with HTTP 200.

    ``path`` is the input elements leading to the bad one (e.g. ``("Key", "PurchaseOrder")``); the
    error XML names the last of them.
    """

    def __init__(self, path: tuple[str, ...], value: str, number: int, description: str) -> None:
        super().__init__(description)
        self.path, self.value, self.number, self.description = path, value, number, description


# Error texts; SYSPRO's exact wording is known only for the bad password.
BAD_PASSWORD = "Invalid operator password"  # noqa: S105 - a message, not a password
BAD_OPERATOR = "Invalid operator code"
BAD_COMPANY = "Company '{}' is not a valid company"
BAD_COMPANY_PASSWORD = "Invalid company password"  # noqa: S105 - a message
NO_LICENCE = "No e.net licence is available for a new logon. Log off an unused session and retry."
INVALID_USER_ID = "Invalid UserId. You may need to log on again."
SESSION_BUSY = "UserId is busy processing another request. Calls on one UserId must not overlap."
UNKNOWN_BO = "Business object '{}' could not be found"
EMPTY_XMLIN = "XmlIn parameter is empty"
BAD_XML = "XmlIn is not well formed: {}"
UNKNOWN_TABLE = "Invalid object name '{}'"
UNKNOWN_COLUMN = "Invalid column name '{}'"
BAD_BRACKETS = "Incorrect syntax near ')' in the Where clause"


def enet_body(text: str, *, truncate: bool = False) -> Response:
    """A 200 e.net response; ``truncate`` cuts the body short (a dropped connection's remains)."""
    raw = text.encode("cp1252", errors="replace")
    if truncate:
        raw = raw[: max(1, len(raw) // 2)]
    return Response(raw, status_code=200, media_type="application/octet-stream",
                    headers={"Server": ENET_SERVER})


def error_text(text: str) -> str:
    return f"ERROR: {text}"


def root_attributes(version: str) -> str:
    """The attributes every BO output root carries (operator language, formats, BO version)."""
    return (f"Language='05' Language2='EN' CssStyle='' DecFormat='1' DateFormat='01' Role='01' "
            f"Version='{version}' OperatorPrimaryRole='   '")


def element(name: str, value: str | None) -> str:
    """``<name>value</name>``, or ``<name/>`` when empty, as the BOs write them."""
    return f"<{name}>{escape(value)}</{name}>" if value else f"<{name}/>"


def document(root: str, version: str, lines: Iterable[str]) -> str:
    """A whole BO output string: declaration, root with attributes, one element per line."""
    body = "\n".join(lines)
    return f"{XML_DECL}\n<{root} {root_attributes(version)}>\n{body}\n</{root}>\n "


def validation_xml(
    root: str, version: str, fault: ValidationFault, key: Iterable[tuple[str, str]] = ()
) -> str:
    """The lower-cased validation error document (shape of the recorded INVSWS errors).

    The input root and key elements come back lower-cased; the failing field appears as its
    lower-cased name holding ``Value``, ``ErrorNumber`` and ``ErrorDescription``.
    """
    lines: list[str] = []
    key_items = list(key)
    if key_items:
        lines += ["<key>", *(element(k.lower(), v) for k, v in key_items), "</key>"]
    field = fault.path[-1].lower() if fault.path else "xmlin"
    lines += [f"<{field}>", element("Value", fault.value), f"<ErrorNumber>{fault.number}</ErrorNumber>",
              element("ErrorDescription", fault.description), f"</{field}>"]
    return document(root.lower(), version, lines)


def httpsys_page(status: int) -> Response:
    """HTTP.sys's own error pages (the service never saw the request)."""
    title, detail = HTTPSYS_PAGES[status]
    html = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
        f"<HTML><HEAD><TITLE>{title}</TITLE>\r\n"
        '<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
        f"<BODY><h2>{title}</h2>\r\n<hr><p>{detail}</p>\r\n</BODY></HTML>\r\n"
    )
    return Response(html, status_code=status, media_type="text/html; charset=us-ascii",
                    headers={"Server": ENET_SERVER})


HTTPSYS_PAGES: dict[int, tuple[str, str]] = {
    404: ("Not Found", "HTTP Error 404. The requested resource is not found."),
    405: ("Method Not Allowed", "HTTP Error 405. The request method is not supported."),
    414: ("Request URL Too Long", "HTTP Error 414. The request URL is too long."),
    502: ("Bad Gateway", "HTTP Error 502. The gateway received an invalid response."),
    503: ("Service Unavailable", "HTTP Error 503. The service is unavailable."),
}
