"""The SAP RFC agent protocol, version 1 (docs/sap-agent-protocol.md), as data. Pure.

Both ends use it: the connector's agent client decides from `ERRORS` whether an error type is
retried and which exception it becomes; the reference agent answers with the status listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

VERSION = "1"
PREFIX = "/rfc/v1"
VERSION_HEADER = "X-MLC-RFC-Protocol"

Kind = Literal["auth", "retry", "refused", "payload"]


@dataclass(frozen=True, slots=True)
class ErrorType:
    """One error type: the HTTP status the agent answers with, and what the connector does."""

    status: int
    kind: Kind
    meaning: str


#: error type -> status and handling (the table in docs/sap-agent-protocol.md)
ERRORS: dict[str, ErrorType] = {
    "BAD_REQUEST": ErrorType(400, "refused", "the request is not protocol v1"),
    "AGENT_UNAUTHORIZED": ErrorType(401, "auth", "the agent refused our token or certificate"),
    "FUNCTION_NOT_ALLOWED": ErrorType(403, "refused", "the agent's allowed_functions does not list it"),
    "SESSION_NOT_FOUND": ErrorType(404, "refused", "the agent session ended or expired"),
    "ABAP_APPLICATION_ERROR": ErrorType(422, "refused", "the function raised an exception"),
    "RFC_LOGON_FAILURE": ErrorType(502, "auth", "SAP refused the agent's logon (password, locked user or "
                                               "client)"),
    "ABAP_RUNTIME_FAILURE": ErrorType(502, "refused", "a short dump in the function (see ST22)"),
    "RFC_COMMUNICATION_FAILURE": ErrorType(503, "retry", "the agent cannot reach SAP"),
    "SYSTEM_FAILURE": ErrorType(503, "retry", "SAP aborted the call"),
    "RESOURCE_FAILURE": ErrorType(503, "retry", "no work process free or the RFC quota is reached"),
}

#: BAPIRET2 types that mean the call failed
FAILING_RETURN_TYPES = frozenset({"E", "A"})


@dataclass(frozen=True, slots=True)
class RfcErrorBody:
    """What an error answer says: `{"error": {...}}`."""

    type: str
    message: str = ""
    key: str = ""
    message_class: str = ""
    message_type: str = ""
    message_number: str = ""
    message_v: tuple[str, str, str, str] = ("", "", "", "")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type}
        for name in ("message", "key", "message_class", "message_type", "message_number"):
            if getattr(self, name):
                body[name] = getattr(self, name)
        for n, value in enumerate(self.message_v, start=1):
            if value:
                body[f"message_v{n}"] = value
        return {"error": body}

    @classmethod
    def from_json(cls, body: Any) -> RfcErrorBody | None:
        error = body.get("error") if isinstance(body, Mapping) else None
        if not isinstance(error, Mapping) or not isinstance(error.get("type"), str):
            return None
        text = {k: str(error.get(k) or "") for k in ("message", "key", "message_class", "message_type",
                                                       "message_number")}
        v = tuple(str(error.get(f"message_v{n}") or "") for n in range(1, 5))
        return cls(type=str(error["type"]), message_v=(v[0], v[1], v[2], v[3]), **text)

    def describe(self) -> str:
        parts = [self.type + (f" {self.key}" if self.key else "")]
        if self.message:
            parts.append(self.message)
        if self.message_class or self.message_number:
            parts.append(f"message {self.message_class} {self.message_number}".rstrip())
        return ": ".join(parts[:2]) + ("" if len(parts) < 3 else f" ({parts[2]})")


def status_of(error_type: str) -> int:
    found = ERRORS.get(error_type)
    return found.status if found else 502


def return_rows(value: Any) -> list[dict[str, Any]]:
    """A BAPI's RETURN parameter (a BAPIRET2 structure or table) as a list of rows."""
    if isinstance(value, Mapping):  # a blank BAPIRET2 (TYPE and MESSAGE empty, NUMBER '000') says nothing
        return [dict(value)] if str(value.get("TYPE", "")).strip() or str(value.get("MESSAGE", "")).strip() else []
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [dict(row) for row in value if isinstance(row, Mapping)]
    return []


def failing(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The BAPIRET2 rows of type E or A."""
    return [row for row in rows if str(row.get("TYPE", "")).strip() in FAILING_RETURN_TYPES]


def describe_return(row: Mapping[str, Any]) -> str:
    """``E 06/019: Purchase order 4500009999 does not exist`` from one BAPIRET2 row."""
    kind = str(row.get("TYPE", "")).strip()
    where = f"{str(row.get('ID', '')).strip()}/{str(row.get('NUMBER', '')).strip()}"
    text = str(row.get("MESSAGE", "")).strip() or "no message text"
    return f"{kind} {where}: {text}"
