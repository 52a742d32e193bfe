"""The REST API's OpenAPI 3.1 document, served at /api/openapi.json.

Paths are written out here; every body schema comes from web.api_models (pydantic's JSON
Schema 2020-12 is OpenAPI 3.1's dialect), so the document describes exactly what is sent.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from ml_connector import __version__
from ml_connector.core.models import Status
from ml_connector.web import api_models as m

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
#: Ids are 64-bit signed integers in the store.
MAX_ID = 2**63 - 1
_MODELS = (m.Problem, m.NotificationPage, m.NotificationDetail, m.Journey, m.ReplayFilter, m.ReplayResult,
           m.Flow, m.FlowList, m.AuditPage, m.RecipientHashRequest, m.RecipientHash)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(model=name)}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_COMMON = {"401": _problem("No valid credentials"), "403": _problem("Not allowed (role or CSRF token)")}
_TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "pattern": "^[0-9]{1,4}[mhd]$"}],
         "description": "ISO 8601 date/time (UTC unless it says), or 30m, 24h, 7d ago."}


def _q(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **extra}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
       "description": "Notification id."}
_FLOW = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Flow name."}
_LIMIT = _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size.")
_CURSOR = _q("cursor", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "The previous page's next_cursor.")
_NOTIFICATION_FILTERS = [
    _q("flow", {"type": "string"}, "Only this flow."),
    _q("status", {"type": "array", "items": {"type": "string", "enum": [s.value for s in Status]}},
       "Only these statuses (repeatable).", style="form", explode=True),
    _q("channel", {"type": "string"}, "Only this channel (sms, ...)."),
    _q("since", _TIME, "Created at or after."),
    _q("until", _TIME, "Created before."),
    _q("recipient_hash", {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
       "Keyed hash of an E.164 number (POST /api/v1/recipient-hash makes one)."),
    _CURSOR, _LIMIT,
]


def _paths() -> dict[str, Any]:
    not_found = _problem("No such notification or flow")
    invalid = _problem("Invalid parameters or body: `errors` names each field")
    json_body = {"required": True, "content": {"application/json": {"schema": _ref("ReplayFilter")}}}
    return {
        "/api/v1/notifications": {"get": {
            "operationId": "listNotifications", "summary": "Notifications, newest first",
            "parameters": _NOTIFICATION_FILTERS,
            "responses": {"200": _ok("NotificationPage"), "422": invalid, **_COMMON},
        }},
        "/api/v1/notifications/{id}": {"get": {
            "operationId": "getNotification", "summary": "One notification with its body and attempts",
            "parameters": [_ID],
            "responses": {"200": _ok("NotificationDetail"), "404": not_found, "422": invalid, **_COMMON},
        }},
        "/api/v1/notifications/{id}/journey": {"get": {
            "operationId": "getJourney", "summary": "Everything that happened to one notification",
            "parameters": [_ID],
            "responses": {"200": _ok("Journey"), "404": not_found, "422": invalid, **_COMMON},
        }},
        "/api/v1/notifications/{id}/replay": {"post": {
            "operationId": "replayNotification", "summary": "Send a failed, dead or undelivered notification again",
            "parameters": [_ID],
            "responses": {"200": _ok("ReplayResult"), "404": not_found, "409": _problem("Not replayable"),
                          "422": invalid, **_COMMON},
        }},
        "/api/v1/replay": {"post": {
            "operationId": "replayByFilter",
            "summary": "Replay the notifications a filter matches (dry_run: only count them)",
            "requestBody": json_body,
            "responses": {"200": _ok("ReplayResult"), "413": _problem("Body too large"),
                          "415": _problem("Not JSON"), "422": invalid, **_COMMON},
        }},
        "/api/v1/recipient-hash": {"post": {
            "operationId": "recipientHash", "summary": "The keyed hash to filter notifications by a phone number",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("RecipientHashRequest")}}},
            "responses": {"200": _ok("RecipientHash"), "413": _problem("Body too large"),
                          "415": _problem("Not JSON"), "422": invalid, **_COMMON},
        }},
        "/api/v1/flows": {"get": {
            "operationId": "listFlows", "summary": "Every configured flow and its polling",
            "responses": {"200": _ok("FlowList"), **_COMMON},
        }},
        "/api/v1/flows/{name}": {"get": {
            "operationId": "getFlow", "summary": "One flow", "parameters": [_FLOW],
            "responses": {"200": _ok("Flow"), "404": not_found, **_COMMON},
        }},
        "/api/v1/flows/{name}/pause": {"post": {
            "operationId": "pauseFlow", "summary": "Stop polling a flow (its watermark is kept)",
            "parameters": [_FLOW],
            "responses": {"200": _ok("Flow"), "404": not_found, "501": _problem("The store cannot pause flows"),
                          **_COMMON},
        }},
        "/api/v1/flows/{name}/resume": {"post": {
            "operationId": "resumeFlow", "summary": "Poll a paused flow again, from its watermark",
            "parameters": [_FLOW],
            "responses": {"200": _ok("Flow"), "404": not_found, "501": _problem("The store cannot pause flows"),
                          **_COMMON},
        }},
        "/api/v1/audit": {"get": {
            "operationId": "exportAudit", "summary": "Audit rows in id order (json pages, or a jsonl/csv download)",
            "parameters": [
                _q("since", _TIME, "Rows at or after."), _q("until", _TIME, "Rows before."),
                _q("format", {"type": "string", "enum": ["json", "jsonl", "csv"], "default": "json"}, "Output."),
                _q("cursor", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "The previous page's next_cursor."),
                _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000}, "Page size."),
            ],
            "responses": {
                "200": {"description": "OK", "content": {
                    "application/json": {"schema": _ref("AuditPage")},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}},
                }},
                "422": invalid, **_COMMON,
            },
        }},
    }


@cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema([(model, "serialization") for model in _MODELS], ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ml-connector", "version": __version__,
                 "description": "Notifications, their journeys, replay, flows and the audit trail."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token from `ml-connector tokens add`."}},
        },
    }
