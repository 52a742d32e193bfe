"""pyrfc behind the agent: the guarded import, connections, exceptions -> protocol error types, values.

pyrfc is SAP's Python binding of the NetWeaver RFC SDK. The SDK is SAP's download (SAP ONE
Support Launchpad, "SAP NW RFC SDK 7.50"), not on any package registry, so `load_pyrfc` says
exactly what is missing: pyrfc itself, or the SDK's libraries it loads.

pyrfc exceptions -> protocol v1 error types (docs/sap-agent-protocol.md):

| pyrfc exception          | key / message                                  | error type                |
| ------------------------ | ---------------------------------------------- | ------------------------- |
| LogonError               |                                                | RFC_LOGON_FAILURE         |
| CommunicationError       | resource words (quota, no free work process)   | RESOURCE_FAILURE          |
| CommunicationError       | anything else                                  | RFC_COMMUNICATION_FAILURE |
| ABAPApplicationError     | the function's exception (`key`)               | ABAP_APPLICATION_ERROR    |
| ABAPRuntimeError         | RFC_ABAP_MESSAGE (MESSAGE type A/X), SYSTEM_.. | SYSTEM_FAILURE            |
| ABAPRuntimeError         | resource words                                 | RESOURCE_FAILURE          |
| ABAPRuntimeError         | anything else (a short dump)                   | ABAP_RUNTIME_FAILURE      |
| ExternalRuntimeError     | RFC_INVALID_PARAMETER, conversion errors       | BAD_REQUEST               |
| ExternalRuntimeError     | RFC_TIMEOUT, RFC_CLOSED, RFC_CANCELED          | RFC_COMMUNICATION_FAILURE |
| any other RFCError       |                                                | SYSTEM_FAILURE            |

A connection that failed with a logon, communication or external runtime error is closed, not
handed out again.
"""

from __future__ import annotations

import base64
import importlib
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from ml_connector.sources.sap_rfc_protocol import RfcErrorBody

_RESOURCE_WORDS = ("RESOURCE", "QUOTA", "NO FREE", "MAX NO OF", "WP_")
_BAD_REQUEST_KEYS = ("RFC_INVALID_PARAMETER", "RFC_CONVERSION_FAILURE", "RFC_INVALID_HANDLE",
                     "RFC_TABLE_MOVE_BOF", "RFC_TABLE_MOVE_EOF")
_BROKEN = ("LogonError", "CommunicationError", "ExternalRuntimeError")


class SdkMissing(RuntimeError):
    """pyrfc or the NW RFC SDK cannot be loaded; the message says which and what to do."""


def load_pyrfc(importer: Callable[[str], Any] = importlib.import_module) -> Any:
    """The pyrfc module, or SdkMissing saying what is missing."""
    try:
        return importer("pyrfc")
    except ModuleNotFoundError as exc:
        if exc.name not in (None, "pyrfc"):
            raise SdkMissing(f"pyrfc cannot load its module {exc.name}: reinstall pyrfc for this Python") from None
        raise SdkMissing(
            "the SAP agent needs pyrfc, which is not installed. Install SAP's NW RFC SDK 7.50 first (from "
            "SAP ONE Support Launchpad; set SAPNWRFC_HOME to its directory and add $SAPNWRFC_HOME/lib to "
            "LD_LIBRARY_PATH), then `pip install pyrfc` in this environment") from None
    except ImportError as exc:
        raise SdkMissing(
            "pyrfc is installed but cannot load SAP's NW RFC SDK libraries (libsapnwrfc, libsapucum): "
            f"{exc}. Install the SDK, set SAPNWRFC_HOME and add $SAPNWRFC_HOME/lib to LD_LIBRARY_PATH "
            "(or /etc/ld.so.conf.d and ldconfig)") from None


def _text(exc: BaseException, name: str) -> str:
    value = getattr(exc, name, "")
    return "" if value is None else str(value).strip()


def error_of(exc: BaseException) -> RfcErrorBody:
    """A pyrfc exception as the protocol's error body (the table in the module docstring)."""
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    key = _text(exc, "key")
    message = _text(exc, "message") or str(exc)
    loud = f"{key} {message}".upper()
    resource = any(word in loud for word in _RESOURCE_WORDS)
    if "LogonError" in kinds:
        error_type = "RFC_LOGON_FAILURE"
    elif "CommunicationError" in kinds:
        error_type = "RESOURCE_FAILURE" if resource else "RFC_COMMUNICATION_FAILURE"
    elif "ABAPApplicationError" in kinds:
        error_type = "ABAP_APPLICATION_ERROR"
    elif "ABAPRuntimeError" in kinds:
        error_type = ("RESOURCE_FAILURE" if resource else
                      "SYSTEM_FAILURE" if key in ("RFC_ABAP_MESSAGE", "SYSTEM_FAILURE") or "SYSTEM_FAILURE" in loud
                      else "ABAP_RUNTIME_FAILURE")
    elif "ExternalRuntimeError" in kinds:
        error_type = ("BAD_REQUEST" if key in _BAD_REQUEST_KEYS else
                      "RESOURCE_FAILURE" if resource else "RFC_COMMUNICATION_FAILURE")
    else:
        error_type = "SYSTEM_FAILURE"
    v = tuple(_text(exc, f"msg_v{n}") for n in range(1, 5))
    return RfcErrorBody(type=error_type, message=message[:500], key=key, message_class=_text(exc, "msg_class"),
                        message_type=_text(exc, "msg_type"), message_number=_text(exc, "msg_number"),
                        message_v=(v[0], v[1], v[2], v[3]))


def breaks_connection(exc: BaseException) -> bool:
    return any(cls.__name__ in _BROKEN for cls in type(exc).__mro__)


def encode(value: Any) -> Any:
    """A pyrfc value as protocol v1 JSON: DATS YYYYMMDD, TIMS HHMMSS, BCD/float as decimal strings,
    CHAR right-trimmed, RAW as base64, structures and tables recursively."""
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d%H%M%S")
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    if isinstance(value, time):
        return value.strftime("%H%M%S")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str):
        return value.rstrip()
    return value


def split_result(result: Mapping[str, Any], tables_sent: Mapping[str, Any]) -> tuple[dict[str, Any],
                                                                                   dict[str, Any]]:
    """pyrfc answers one dict: lists are TABLES parameters, the rest EXPORTING/CHANGING ones."""
    exports: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for name, value in result.items():
        if isinstance(value, list) or name in tables_sent:
            tables[name] = encode(value)
        else:
            exports[name] = encode(value)
    return exports, tables
