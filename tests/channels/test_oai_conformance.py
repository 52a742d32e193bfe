"""Every request the Twilio client can build agrees with Twilio's OpenAPI document.

Checks path + method + operationId, that each parameter is declared for the operation, its
type/enum/pattern/length/format, required fields, repeated keys only for arrays, and the
`x-twilio.conditional` groups (at least one member of each). Runs from the committed subset;
when the full document is present (this workspace), the subset must equal a fresh extraction.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ml_connector.channels.twilio_api import (
    Operation,
    PreparedRequest,
    create_message_request,
    fetch_account_request,
    fetch_message_request,
    list_messages_request,
)
from ml_connector.channels.twilio_calls import create_call_request, fetch_call_request, list_calls_request
from ml_connector.core.voice_body import VoiceContent, twiml_for

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("make_oai_subset", HERE / "make_oai_subset.py")
assert _spec is not None and _spec.loader is not None
make_oai_subset = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_oai_subset)

SPEC: dict[str, Any] = json.loads((HERE / "twilio_oai_subset.json").read_text(encoding="utf-8"))

AC = "AC" + "0123456789abcdef" * 2
MG = "MG" + "00112233445566778899aabbccddeeff"
TO = "+15551230001"
MEDIA = ("https://cdn.example.com/a.png", "https://cdn.example.com/b.pdf?x=1&y=2")

# --- a small OpenAPI 3.0 parameter validator ------------------------------------------------------

#: What a "phone-number" field may hold (twilio.md §2, From): E.164, short code, alphanumeric
#: sender ID, or a channel address such as whatsapp:+1...
PHONE_NUMBER = re.compile(r"^(\+[1-9]\d{1,14}|\d{3,8}|(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}|[a-z]+:\S+)$")


def _is_uri(value: str) -> bool:
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc)


def _is_date_time(value: str) -> bool:
    if "T" not in value:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_phone_number(value: str) -> bool:
    return PHONE_NUMBER.match(value) is not None


FORMATS: dict[str, Callable[[str], bool]] = {
    "uri": _is_uri,
    "date-time": _is_date_time,
    "phone-number": _is_phone_number,
}
TYPES: dict[str, Callable[[str], bool]] = {
    "string": lambda v: True,
    "integer": lambda v: re.fullmatch(r"-?\d+", v) is not None,
    "number": lambda v: re.fullmatch(r"-?\d+(\.\d+)?", v) is not None,
    "boolean": lambda v: v in ("true", "false"),
}


def resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def value_problems(name: str, value: str, schema: Mapping[str, Any]) -> list[str]:
    schema = resolve(schema)
    kind = schema.get("type", "string")
    problems = []
    if kind not in TYPES or not TYPES[kind](value):
        problems.append(f"{name}: {value!r} is not a {kind}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{name}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{name}: {value!r} does not match {schema['pattern']}")
    if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        problems.append(f"{name}: length {len(value)} out of bounds")
    if kind in ("integer", "number") and not problems:
        number = float(value)
        if number < schema.get("minimum", number) or number > schema.get("maximum", number):
            problems.append(f"{name}: {value} out of range")
    check = FORMATS.get(schema.get("format", ""))
    if check is not None and not check(value):
        problems.append(f"{name}: {value!r} is not format {schema['format']}")
    return problems


def find_operation(request: PreparedRequest) -> tuple[dict[str, Any], dict[str, str]]:
    matches = []
    for template, item in SPEC["paths"].items():
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        found = re.match(regex, request.path)
        if found and request.method.lower() in item:
            matches.append((item[request.method.lower()], found.groupdict()))
    assert len(matches) == 1, f"{request.method} {request.path}: {len(matches)} spec operations match"
    return matches[0]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def request_problems(request: PreparedRequest) -> list[str]:
    """Everything about `request` that disagrees with the spec (empty when conformant)."""
    op, path_values = find_operation(request)
    problems = []
    if op["operationId"] != request.operation.value:
        problems.append(f"operationId {op['operationId']} != {request.operation.value}")
    declared = {(p["in"], p["name"]): p for p in op.get("parameters", [])}
    for name, value in path_values.items():
        problems += value_problems(name, value, declared[("path", name)]["schema"])
    counts = Counter(name for name, _ in request.params)
    if request.method == "GET":
        schemas = {name: p["schema"] for (where, name), p in declared.items() if where == "query"}
        required = {name for (where, name), p in declared.items() if where == "query" and p.get("required")}
        conditional: list[list[str]] = []
    else:
        body = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
        schemas, required = body["properties"], set(body.get("required", []))
        conditional = op.get("x-twilio", {}).get("conditional", [])
    for name, value in request.params:
        if name not in schemas:
            problems.append(f"{name}: not a parameter of {op['operationId']}")
            continue
        schema = resolve(schemas[name])
        if schema.get("type") == "array":
            problems += value_problems(name, value, schema["items"])
        else:
            problems += value_problems(name, value, schema)
            if counts[name] > 1:
                problems.append(f"{name}: repeated but not an array")
    problems += [f"{name}: required but missing" for name in sorted(required - set(counts))]
    present = {_snake(name) for name in counts}
    for group in conditional:
        if not present & set(group):
            problems.append(f"none of {group} present")
    return problems


# --- every request the client can build ----------------------------------------------------------

SENDERS: list[dict[str, Any]] = [
    {"from_": "+15557650002"},
    {"from_": "54321"},
    {"from_": "ACME Corp"},
    {"from_": "whatsapp:+15557650002"},
    {"messaging_service_sid": MG},
    {"from_": "+15557650002", "messaging_service_sid": MG},
]
CONTENTS: list[dict[str, Any]] = [
    {"body": "PO 4711 approved"},
    {"media_urls": MEDIA[:1]},
    {"media_urls": MEDIA},
    {"body": "PO 4711 approved", "media_urls": MEDIA},
    {"content_sid": "HX" + "0123456789abcdef" * 2},
    {"content_sid": "HX" + "0123456789abcdef" * 2, "content_variables": '{"1":"4711","2":"Acme & Co"}'},
]
EXTRAS: list[dict[str, Any]] = [
    {},
    {"status_callback": "https://hooks.example.com/twilio/status?n=7#rc=3", "validity_period": 600},
    {"validity_period": 1},
    {"validity_period": 36000},
]
CREATES = [
    create_message_request(AC, to=TO, **sender, **content, **extra)
    for sender, content, extra in itertools.product(SENDERS, CONTENTS, EXTRAS)
]
DAY = date(2026, 1, 14)
LIST_FILTERS: list[dict[str, Any]] = [
    {},
    {"to": TO},
    {"from_": "+15557650002"},
    {"date_sent": DAY},
    {"date_sent_after": DAY},
    {"date_sent_before": DAY},
    {"page_size": 1},
    {"page_size": 1000},
    {"to": TO, "from_": "ACME Corp", "date_sent_after": DAY, "date_sent_before": DAY, "page_size": 20},
]
CONTENT = VoiceContent(say="PO 4711 & 4712 approved <urgent>", voice="Polly.Joanna", language="en-US", repeat=2,
                       pause=1, prompt="Press 1 to confirm.", digit="1")
CALL_CREATES = [
    create_call_request(AC, to=TO, from_="+15557650002", twiml=twiml_for(content, ack), **extra)
    for content, ack in ((CONTENT, "https://hooks.example.com/twilio/voice/ack?n=7&d=1"),
                         (replace(CONTENT, prompt=None, digit=None, repeat=1), None))
    for extra in ({}, {"status_callback": "https://hooks.example.com/twilio/voice/status"},
                  {"status_callback": "https://hooks.example.com/s", "events": ("completed",), "timeout": 600})
]
CREATES += CALL_CREATES
READS = [
    fetch_call_request(AC, "CA" + "c" * 32),
    list_calls_request(AC),
    list_calls_request(AC, to=TO, from_="+15557650002", started_on_or_after=DAY, page_size=1000),
    fetch_message_request(AC, "SM" + "a" * 32),
    fetch_message_request(AC, "MM" + "B" * 32),
    fetch_account_request(AC),
    *(list_messages_request(AC, **filters) for filters in LIST_FILTERS),
]


@pytest.mark.parametrize(
    "request_", CREATES + READS, ids=lambda r: f"{r.operation}:{r.target()[-60:]}|{len(r.params)}"
)
def test_request_conforms(request_: PreparedRequest) -> None:
    assert request_problems(request_) == []


def test_every_operation_is_exercised() -> None:
    assert {r.operation for r in CREATES + READS} == set(Operation)
    assert {op["operationId"] for item in SPEC["paths"].values() for op in item.values()} == {
        o.value for o in Operation
    }


# --- the checker itself can fail ----------------------------------------------------------------

MESSAGES = f"/2010-04-01/Accounts/{AC}/Messages.json"


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (PreparedRequest(Operation.CREATE_MESSAGE, "POST", MESSAGES, (("To", TO), ("Body", "x"))), "none of"),
        (
            PreparedRequest(Operation.CREATE_MESSAGE, "POST", MESSAGES, (("From", "+1555"), ("Body", "x"))),
            "To: required",
        ),
        (
            PreparedRequest(
                Operation.CREATE_MESSAGE, "POST", MESSAGES, (("To", TO), ("From", "+1555"), ("Text", "x"))
            ),
            "Text: not a parameter",
        ),
        (
            PreparedRequest(
                Operation.CREATE_MESSAGE,
                "POST",
                MESSAGES,
                (("To", TO), ("MessagingServiceSid", "MG1"), ("Body", "x")),
            ),
            "does not match",
        ),
        (
            PreparedRequest(
                Operation.CREATE_MESSAGE,
                "POST",
                MESSAGES,
                (("To", TO), ("From", "+1555"), ("Body", "a"), ("Body", "b")),
            ),
            "repeated but not an array",
        ),
        (
            PreparedRequest(
                Operation.CREATE_MESSAGE,
                "POST",
                MESSAGES,
                (("To", TO), ("From", "+1555"), ("MediaUrl", "a.png")),
            ),
            "format uri",
        ),
        (
            PreparedRequest(
                Operation.CREATE_MESSAGE,
                "POST",
                MESSAGES,
                (("To", TO), ("From", "+1555"), ("Body", "x"), ("ValidityPeriod", "ten")),
            ),
            "not a integer",
        ),
        (PreparedRequest(Operation.LIST_MESSAGE, "GET", MESSAGES, (("PageSize", "0"),)), "out of range"),
        (
            PreparedRequest(Operation.LIST_MESSAGE, "GET", MESSAGES, (("DateSent>", "2026-01-14"),)),
            "format date-time",
        ),
        (PreparedRequest(Operation.LIST_MESSAGE, "GET", MESSAGES, (("Status", "sent"),)), "not a parameter"),
        (PreparedRequest(Operation.FETCH_MESSAGE, "GET", MESSAGES, ()), "operationId ListMessage"),
        (
            PreparedRequest(Operation.FETCH_ACCOUNT, "GET", "/2010-04-01/Accounts/ACshort.json", ()),
            "Sid: 'ACshort'",
        ),
    ],
)
def test_checker_catches(request_: PreparedRequest, problem: str) -> None:
    assert any(problem in p for p in request_problems(request_)), request_problems(request_)


def test_unknown_path_is_caught() -> None:
    with pytest.raises(AssertionError, match="0 spec operations"):
        request_problems(
            PreparedRequest(Operation.CREATE_MESSAGE, "POST", f"/2010-04-01/Accounts/{AC}/Sms.json")
        )


# --- response fields the SMS channel reads exist in the spec --------------------------------------


def test_response_fields_we_read_exist() -> None:
    message = SPEC["components"]["schemas"]["api.v2010.account.message"]["properties"]
    read = {"sid", "status", "num_segments", "error_code", "error_message", "to", "from", "body", "direction"}
    read |= {"messaging_service_sid", "date_created", "date_sent"}
    assert read <= set(message)
    assert message["date_created"]["format"] == "date-time-rfc-2822"
    assert message["num_segments"]["type"] == "string"
    statuses = resolve(message["status"])["enum"]
    assert {"queued", "accepted", "scheduled", "delivered", "undelivered", "failed"} <= set(statuses)
    assert "outbound-api" in resolve(message["direction"])["enum"]
    listing = SPEC["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["get"]["responses"]["200"]
    assert {"messages", "next_page_uri", "uri"} <= set(
        listing["content"]["application/json"]["schema"]["properties"]
    )


# --- the committed subset is what the full document says ----------------------------------------


def test_subset_matches_full_spec() -> None:
    full = make_oai_subset.FULL
    if not full.is_file():
        pytest.skip(f"full Twilio spec not present at {full}; the committed subset is used as is")
    extracted = make_oai_subset.extract(json.loads(full.read_text(encoding="utf-8")))
    assert make_oai_subset.render(extracted) == (HERE / "twilio_oai_subset.json").read_text(encoding="utf-8")
