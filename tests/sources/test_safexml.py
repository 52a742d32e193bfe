"""XML from ERPs is parsed with defusedxml: bombs and external entities are refused, clearly."""

from __future__ import annotations

import httpx
import pytest

from ml_connector import safexml
from ml_connector.errors import SourcePayloadError
from ml_connector.sources.oracle_ebs_auth import parse_login
from ml_connector.sources.peoplesoft_wire import ib_error
from ml_connector.sources.sap_odata_metadata import parse_metadata
from ml_connector.sources.syspro_wire import comfnd_rows, parse_xml

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<response><data><accessTokenName>&lol4;</accessTokenName></data></response>"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<response><data><accessTokenName>&secret;</accessTokenName></data></response>"""


@pytest.mark.parametrize("document", [BOMB, EXTERNAL], ids=["billion-laughs", "external-entity"])
def test_entities_are_refused_before_expansion(document: str) -> None:
    with pytest.raises(safexml.XmlRefused, match="declares entities or references external ones"):
        safexml.parse(document)
    with pytest.raises(safexml.XmlRefused):
        safexml.parse(document.encode())


def test_plain_xml_parses_and_malformed_xml_says_so() -> None:
    assert safexml.parse("<a><b>1</b></a>").findtext("b") == "1"
    with pytest.raises(safexml.XmlError, match="not well-formed") as caught:
        safexml.parse("<a><b></a>")
    assert not isinstance(caught.value, safexml.XmlRefused)


def test_ebs_login_answer_with_entities_is_a_payload_error_naming_the_refusal() -> None:
    response = httpx.Response(200, text=BOMB)
    with pytest.raises(SourcePayloadError, match=r"ebs: login response: XML refused"):
        parse_login(response, "ebs")


@pytest.mark.parametrize("document", [BOMB, EXTERNAL], ids=["billion-laughs", "external-entity"])
def test_syspro_answers_with_entities_are_refused(document: str) -> None:
    with pytest.raises(ValueError, match="XML refused"):
        parse_xml(document)
    with pytest.raises(ValueError, match="COMFND answer is XML refused"):
        comfnd_rows(document)


def test_sap_metadata_with_entities_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\$metadata: XML refused"):
        parse_metadata(EXTERNAL)


def test_peoplesoft_ib_response_with_entities_is_reported_unreadable() -> None:
    body = EXTERNAL.replace("response>", "IBResponse>").replace("<response", "<IBResponse")
    found = ib_error(httpx.Response(200, content=body.encode()))
    assert found is not None and "XML refused" in found[1]


def test_no_module_parses_with_the_standard_library() -> None:
    """Parsing goes through safexml or defusedxml everywhere in the package; no silenced S314."""
    from pathlib import Path

    import ml_connector

    root = Path(ml_connector.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "S314" in text or "ElementTree.fromstring(" in text or "ElementTree.parse(" in text:
            offenders.append(str(path.relative_to(root)))
        stdlib_imports = [line for line in text.splitlines() if line.startswith("from xml.etree")]
        if any("fromstring" in line or "XMLParser" in line for line in stdlib_imports):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
