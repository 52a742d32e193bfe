"""Every Mail Send request the email channel can build agrees with SendGrid's OpenAPI document.

The request body is validated as JSON Schema 2020-12 (the document is OpenAPI 3.1) with
formats checked, from the committed subset; when the full document is present, the subset
must equal a fresh extraction.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ml_connector.channels.email import NOTIFICATION_ARG
from ml_connector.channels.sendgrid_api import MAIL_SEND_PATH, MailRequest, mail_send_request
from ml_connector.core.email_body import compile_email

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("sendgrid_oai", HERE / "sendgrid_oai.py")
assert _spec is not None and _spec.loader is not None
sendgrid_oai = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sendgrid_oai)

SUBSET: dict[str, Any] = json.loads((HERE / "sendgrid_oai_subset.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(
    {**SUBSET, "$ref": "#/requestBody"}, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def problems(request: MailRequest) -> list[str]:
    found = [f"{request.method} {request.path}: not {SUBSET['method']} {SUBSET['path']}"] if (
        request.method.lower(), request.path) != (SUBSET["method"], SUBSET["path"]) else []
    document = json.loads(request.body())
    found += [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]
    return found


TEMPLATE = compile_email("flows.vendor.template", subject="PO {{ PO }} <approved>", text="PO {{ PO }} approved",
                         html="<p>PO <b>{{ PO }}</b> for {{ VENDOR }}</p>")
CONTENT = TEMPLATE.content({"PO": "4711", "VENDOR": "Smith & <Sons>"})
SENDERS: list[dict[str, Any]] = [
    {"from_email": "alerts@erp.example.com"},
    {"from_email": "alerts@erp.example.com", "from_name": "ERP alerts", "reply_to": "buyers@example.com"},
]
BODIES: list[dict[str, Any]] = [
    {"subject": CONTENT.subject, "text": CONTENT.text, "html": CONTENT.html},
    {"subject": CONTENT.subject, "text": CONTENT.text},
]
EXTRAS: list[dict[str, Any]] = [
    {},
    {"categories": ["ml-connector"], "custom_args": {NOTIFICATION_ARG: "17"}},
    {"categories": [f"c{i}" for i in range(10)], "custom_args": {NOTIFICATION_ARG: "9" * 18, "flow": "vendor"}},
]
REQUESTS = [
    mail_send_request(to="dana.whitfield@example.com", **sender, **body, **extra)
    for sender, body, extra in itertools.product(SENDERS, BODIES, EXTRAS)
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{len(r.body())}B")
def test_every_mail_send_request_conforms(request_: MailRequest) -> None:
    assert problems(request_) == []


def test_the_html_part_is_escaped_and_text_comes_first() -> None:
    payload: Mapping[str, Any] = REQUESTS[0].payload
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert payload["content"][1]["value"] == "<p>PO <b>4711</b> for Smith &amp; &lt;Sons&gt;</p>"
    assert payload["subject"] == "PO 4711 <approved>"  # a header, not HTML


@pytest.mark.parametrize(
    "document",
    [
        {"personalizations": [{"to": [{"email": "not-an-address"}]}], "from": {"email": "a@example.com"}},
        {"personalizations": [{"to": [{"email": "a@example.com"}]}]},  # no from
        {"personalizations": [], "from": {"email": "a@example.com"}, "custom_args": {"n": "1"}},
        {"personalizations": [{"to": [{"email": "a@example.com"}]}], "from": {"email": "a@example.com"},
         "custom_args": {"n": "1"}},  # the document declares top-level custom_args a string
    ],
)
def test_the_validator_can_fail(document: dict[str, Any]) -> None:
    request = MailRequest("POST", MAIL_SEND_PATH, document)
    assert problems(request)


def test_the_subset_is_current() -> None:
    full = sendgrid_oai.FULL
    if not full.is_file():
        pytest.skip(f"full SendGrid OpenAPI document not present at {full}")
    fresh = sendgrid_oai.extract(json.loads(full.read_text(encoding="utf-8")))
    assert json.loads(json.dumps(fresh, sort_keys=True)) == SUBSET


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"subject": " "}, "subject"),
        ({"text": ""}, "text part"),
        ({"to": "nobody"}, "email address"),
        ({"categories": [f"c{i}" for i in range(11)]}, "categories"),
    ],
)
def test_the_builder_refuses_what_sendgrid_would(overrides: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"to": "a@example.com", "from_email": "b@example.com", "subject": "s", "text": "t",
                            **overrides}
    with pytest.raises(ValueError, match=message):
        mail_send_request(**args)
