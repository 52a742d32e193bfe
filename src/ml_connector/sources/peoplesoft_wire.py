"""PeopleSoft wire formats: QAS URLs and prompts, answers, IBResponse errors, the clock and blanks.

* Prompts travel as two comma-separated lists (`prompt_uniquepromptname=A,B` and
  `prompt_fieldvalue=a,b`), so a value cannot contain a comma: such a value is refused before
  anything is sent.
* Column keys are `A.FIELD` or `FIELD` depending on the query's headings; rows are turned into
  plain `FIELD` keys.
* Datetimes are database-server wall time, whole seconds, in a configurable format written the
  PeopleSoft way (`YYYY-MM-DD-HH.MI.SS.FFFFFF`); dates are `YYYY-MM-DD`; a blank character column
  is a single space and means empty.
* Integration Broker errors come as the `IBResponse` XML document, with HTTP 200 or 401, and
  are classified by what an administrator must do; QAS faults come as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx

from ml_connector import safexml
from ml_connector.errors import SourceAuthError, SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.sources.ebs_clock import local_to_utc, utc_to_local

ColumnKeys = Literal["auto", "prefixed", "plain"]

_TOKENS = re.compile(r"YYYY|MM|DD|HH24|HH|MI|SS|FFFFFF|FF")
_STRFTIME = {"YYYY": "%Y", "MM": "%m", "DD": "%d", "HH24": "%H", "HH": "%H", "MI": "%M", "SS": "%S",
             "FFFFFF": "%f", "FF": "%f"}
_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*\.")


def strftime_pattern(ps_format: str) -> str:
    """`YYYY-MM-DD-HH.MI.SS.FFFFFF` -> `%Y-%m-%d-%H.%M.%S.%f`."""
    pattern = _TOKENS.sub(lambda m: _STRFTIME[m.group(0)], ps_format.replace("%", "%%"))
    if "%Y" not in pattern or "%S" not in pattern:
        raise ValueError(f"datetime format {ps_format!r} needs at least YYYY and SS")
    return pattern


def blank(value: Any) -> Any:
    """A blank character column (one space) is empty; other values unchanged."""
    if isinstance(value, str) and not value.strip():
        return ""
    return value


def parse_datetime(value: Any, pattern: str, zone: Any) -> datetime | None:
    """A QAS datetime (server wall time) as aware UTC; None when empty."""
    text = blank(value)
    if text in ("", None):
        return None
    text = str(text).strip()
    try:
        naive = datetime.strptime(text, pattern)
    except ValueError:
        try:
            naive = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"unrecognised datetime {text!r} (expected the format {pattern!r})") from None
        if naive.tzinfo is not None:
            return naive.astimezone(UTC)
    return local_to_utc(naive.replace(microsecond=0), zone)


def parse_date(value: Any) -> date | None:
    text = blank(value)
    if text in ("", None):
        return None
    return date.fromisoformat(str(text).strip()[:10])


def format_datetime(instant: datetime, pattern: str, zone: Any) -> str:
    """An aware instant as the server wall-time text a datetime prompt expects."""
    return utc_to_local(instant, zone).strftime(pattern)


def prompt_query(prompts: Mapping[str, str], source: str) -> dict[str, str]:
    """The two prompt parameters; a value holding a comma cannot be sent and is refused."""
    for name, value in prompts.items():
        if "," in value or "," in name:
            raise SourceError(f"prompt {name}: the value contains a comma, which Query Access Services cannot "
                              "pass (prompt_fieldvalue is a comma-separated list); change the value or the "
                              "query's prompt", source=source)
    if not prompts:
        return {}
    return {"prompt_uniquepromptname": ",".join(prompts), "prompt_fieldvalue": ",".join(prompts.values())}


def query_path(node: str, owner: str, query: str) -> str:
    return (f"/PSIGW/RESTListeningConnector/{quote(node, safe='')}/ExecuteQuery.v1/{quote(owner, safe='')}/"
            f"{quote(query, safe='')}/JSON/NONFILE")


def plain_row(row: Mapping[str, Any], keys: ColumnKeys, what: str, source: str) -> dict[str, Any]:
    """A QAS row with `FIELD` keys (the `A.` record alias dropped), blanks made empty."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.startswith("attr:"):
            continue
        prefixed = bool(_PREFIX.match(key))
        if keys == "prefixed" and not prefixed or keys == "plain" and prefixed:
            want = "A.FIELD" if keys == "prefixed" else "FIELD"
            raise SourcePayloadError(f"{what}: column {key!r} is not in the {want} form that column_keys: {keys} "
                                     "expects (use column_keys: auto to accept both)", source=source)
        out[key.split(".", 1)[1] if prefixed else key] = blank(value)
    return out


# -- errors ---------------------------------------------------------------------------------------


def ib_error(response: httpx.Response) -> tuple[str, str] | None:
    """(MessageID, DefaultMessage) of an IBResponse error document, or None for any other body."""
    head = response.content[:400].lstrip()
    if not head.startswith(b"<") or b"IBResponse" not in head:
        return None
    try:
        root = safexml.parse(response.content)
    except safexml.XmlRefused as exc:
        return ("?", f"unreadable IBResponse document: {exc}")
    except safexml.XmlError:
        return ("?", "unreadable IBResponse document")
    if root.tag != "IBResponse":
        return None
    return (root.findtext("MessageID") or "?").strip(), (root.findtext("DefaultMessage") or "").strip()


#: DefaultMessage pattern -> (error, what an administrator must do). First match wins.
_IB_MESSAGES: tuple[tuple[re.Pattern[str], type[SourceError], str], ...] = (
    (re.compile(r"(?i)locked"), SourceAuthError, "the user profile is locked: unlock it in PeopleTools > "
     "Security > User Profiles (too many failed sign-ins lock it)"),
    (re.compile(r"(?i)inactive"), SourceError, "an administrator must activate the service operation {op} "
     "(PeopleTools > Integration Broker > Integration Setup > Service Operations)"),
    (re.compile(r"(?i)not authori[sz]ed"), SourceAuthError, "grant the service operation {op} to user {user} "
     "through a permission list (Web Services tab) of one of the user's roles"),
    (re.compile(r"(?i)access token|bearer|oauth"), SourceAuthError, "PeopleSoft refused the bearer token "
     "although the identity provider issued it: check the OAuth2 service application (Resource Only) and the "
     "user the token maps to"),
    (re.compile(r"(?i)user id or password|password"), SourceAuthError, "check the OPRID and password"),
    (re.compile(r"(?i)node"), SourceError, "check `node`: it must be the default local node of the database"),
)


def raise_for_ib(response: httpx.Response, what: str, op: str, user: str, source: str) -> None:
    """Turn an IBResponse (HTTP 200 or 401) or a bare 401 into a typed error naming what to change."""
    found = ib_error(response)
    if found is None:
        if response.status_code == 401:
            raise SourceAuthError(f"{what}: PeopleSoft refused the credentials (HTTP 401)", source=source)
        return
    message_id, message = found
    for pattern, kind, hint in _IB_MESSAGES:
        if pattern.search(message):
            raise kind(f"{what}: {message} [IBResponse {message_id}]; {hint.format(op=op, user=user)}",
                       source=source)
    if response.status_code == 401:
        raise SourceAuthError(f"{what}: {message} [IBResponse {message_id}] (HTTP 401)", source=source)
    raise SourceUnavailable(f"{what}: Integration Broker error: {message} [IBResponse {message_id}]", source=source)


#: QAS fault codes -> (error, hint).
_QAS_FAULTS: Mapping[str, tuple[type[SourceError], str]] = {
    "QAS_QUERY_NOT_FOUND": (SourceError, "check the query name and owner, and that user {user} reaches the query "
                            "through the query security tree"),
    "QAS_PROMPT": (SourceError, "check the entity's prompt names against the query's prompts"),
    "QAS_FORMAT": (SourceError, "the JSON output format is required"),
    "QAS_CONNECTED": (SourceError, "this is not a connected query: isconnectedquery=N"),
}


def parse_qas(response: httpx.Response, what: str, user: str, source: str) -> tuple[int, list[Mapping[str, Any]]]:
    """(numrows, rows) of a QAS JSON answer; a QAS fault or an unreadable body is a typed error."""
    try:
        body = json.loads(response.content)
    except ValueError:
        raise SourcePayloadError(f"{what}: answer is not valid JSON ({len(response.content)} bytes)",
                                 source=source) from None
    if not isinstance(body, dict):
        raise SourcePayloadError(f"{what}: answer is not a JSON object", source=source)
    data = body.get("data")
    if str(body.get("status", "")).lower() != "success":
        fault = data if isinstance(data, dict) else {}
        code = str(fault.get("faultcode") or fault.get("code") or body.get("status") or "fault")
        text = str(fault.get("faultstring") or fault.get("message") or body.get("message") or "no message")[:300]
        kind, hint = _QAS_FAULTS.get(code, (SourceError, "see the Integration Broker logs"))
        raise kind(f"{what}: Query Access Services fault {code}: {text}; {hint.format(user=user)}", source=source)
    query = data.get("query") if isinstance(data, dict) else None
    rows = query.get("rows") if isinstance(query, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SourcePayloadError(f"{what}: answer has no data.query.rows list", source=source)
    numrows = query.get("numrows", len(rows)) if isinstance(query, dict) else len(rows)
    try:
        count = int(numrows)
    except (TypeError, ValueError):
        raise SourcePayloadError(f"{what}: numrows {numrows!r} is not a number", source=source) from None
    return count, rows
