"""What the EBS source sends to the shop's delivery-audit service, as configuration.

The audit service is the shop's own PL/SQL package, like the "changed since" one, so its
parameter names, which of our fields fill them, how its DATE parameters are written and which
final statuses it wants are all configuration. The defaults are the common shape
(`xx_mlc_audit/record_delivery` with P_SOURCE_TABLE, P_SOURCE_ID, P_MESSAGE_SID, P_STATUS,
P_ERROR_CODE, P_SENT_AT, P_FINAL_AT).

A value we do not have (no message SID for a notification that failed before reaching Twilio,
no error code for a delivered one) is left out of the call, which PL/SQL reads as NULL; a
parameter with a `default` gets that text instead, for services that require a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml_connector.core.lifecycle import FINAL
from ml_connector.core.models import Delivery, Status
from ml_connector.sources.ebs_clock import utc_to_local
from ml_connector.sources.writeback_statuses import FinalStatuses

#: Our fields a write-back parameter can carry.
WriteBackField = Literal[
    "source_table", "record_key", "entity", "flow", "notification_id", "message_sid", "status",
    "error_code", "error_message", "sent_at", "final_at",
]

DEFAULT_PARAMS: Mapping[str, str] = {
    "P_SOURCE_TABLE": "source_table",
    "P_SOURCE_ID": "record_key",
    "P_MESSAGE_SID": "message_sid",
    "P_STATUS": "status",
    "P_ERROR_CODE": "error_code",
    "P_SENT_AT": "sent_at",
    "P_FINAL_AT": "final_at",
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EbsWriteBackParam(_Model):
    """One IN parameter of the audit method: which of our fields fills it."""

    field: WriteBackField
    #: Sent when we have no value; without it the parameter is left out (NULL).
    default: str | None = None


def _short_form_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema (config_schema) also allows the short form, a bare field name."""
    full = schema.get("additionalProperties")
    short = {"type": "string", "enum": list(get_args(WriteBackField))}
    schema["additionalProperties"] = {"anyOf": [short, full]} if full else short


def _default_params() -> dict[str, EbsWriteBackParam]:
    return {name: EbsWriteBackParam.model_validate({"field": field}) for name, field in DEFAULT_PARAMS.items()}


class EbsWriteBack(_Model):
    """Where and how final delivery statuses are recorded in EBS."""

    enabled: bool = True
    service: str = "xx_mlc_audit"
    method: str = "record_delivery"
    #: Parameter name -> our field (`P_MESSAGE_SID: message_sid`, or `{field: ..., default: ...}`).
    #: Given, it replaces the default set: list every parameter the method takes.
    params: dict[str, EbsWriteBackParam] = Field(default_factory=_default_params, min_length=1,
                                                 json_schema_extra=_short_form_schema)
    #: How sent_at/final_at are written, in the server's zone (strftime; the ISG DATE form by default).
    date_format: str = "%Y-%m-%dT%H:%M:%S"
    #: The final statuses written back; all of them by default.
    statuses: FinalStatuses = FINAL
    #: Our status -> the code the service expects; unlisted statuses go as upper-case names.
    status_codes: dict[Status, str] = {}
    #: Tries before a write-back the service refuses as invalid (an "E" answer) is given up.
    rejected_tries: int = Field(default=3, ge=1, le=100)

    @field_validator("params", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: {"field": spec} if isinstance(spec, str) else spec for name, spec in value.items()}
        return value

    @field_validator("date_format")
    @classmethod
    def _usable_format(cls, value: str) -> str:
        if "%" not in value:
            raise ValueError("must be a strftime format such as %Y-%m-%dT%H:%M:%S")
        return value

    def wants(self, delivery: Delivery) -> bool:
        return self.enabled and delivery.status in self.statuses


def _local(instant: datetime, zone: ZoneInfo, fmt: str) -> str:
    return utc_to_local(instant.astimezone(UTC), zone).strftime(fmt)


def write_back_params(wb: EbsWriteBack, delivery: Delivery, source_table: str, zone: ZoneInfo) -> dict[str, Any]:
    """The audit method's InputParameters for one delivery; values we lack are left out."""
    ours: dict[str, Any] = {
        "source_table": source_table,
        "record_key": delivery.record_key,
        "entity": delivery.entity,
        "flow": delivery.flow,
        "notification_id": delivery.notification_id,
        "message_sid": delivery.provider_id,
        "status": wb.status_codes.get(delivery.status, str(delivery.status).upper()),
        "error_code": delivery.error_code,
        "error_message": delivery.error_message,
        "sent_at": _local(delivery.created_at, zone, wb.date_format),
        "final_at": _local(delivery.finished_at, zone, wb.date_format),
    }
    params: dict[str, Any] = {}
    for name, spec in wb.params.items():
        value = ours[spec.field]
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.default is None:
                continue
            value = spec.default
        params[name] = value
    return params
