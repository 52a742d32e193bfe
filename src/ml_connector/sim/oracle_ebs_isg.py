"""The ISG REST side of the EBS simulator: login/logout, auth, application context, dispatch.

Order of checks for ``/webservices/rest/<alias>/<method>/``: web-tier fault, authentication
(401), alias and method (404, HTML), HTTP verb (405), grant (500 ISG fault), content type (415),
payload (400 ISG fault), application context (HTTP 200 with ``X_RETURN_STATUS`` "E" when
invalid), then the service itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ml_connector.sim.oracle_ebs_config import RESPONSIBILITIES, AppContext, EbsUser
from ml_connector.sim.oracle_ebs_services import SERVICES, ServiceError, run_service

if TYPE_CHECKING:
    from ml_connector.sim.oracle_ebs import EbsSim

_REALM = 'Basic realm="Oracle E-Business Suite"'

# Where each context field is read from, per deployment mode (wire name -> field).
_CONTEXT_KEYS: Mapping[str, Mapping[str, str]] = {
    "body": {
        "Responsibility": "responsibility",
        "RespApplication": "resp_application",
        "SecurityGroup": "security_group",
        "NLSLanguage": "nls_language",
        "Org_Id": "org_id",
    },
    "query": {
        "ctx_responsibility": "responsibility",
        "ctx_respapplication": "resp_application",
        "ctx_securitygroup": "security_group",
        "ctx_nlslanguage": "nls_language",
        "ctx_orgid": "org_id",
    },
}
_CONTEXT_KEYS = {**_CONTEXT_KEYS, "header": _CONTEXT_KEYS["query"]}

_INSTALLED_LANGUAGES = frozenset({"AMERICAN"})

_WEB_FAULT_TITLES = {502: "502 Proxy Error", 503: "503 Service Unavailable"}


class ContextRejected(Exception):
    """FND_GLOBAL.APPS_INITIALIZE refused the context; the service answers "E"."""


def resolve_context(user: EbsUser, raw: Mapping[str, str]) -> AppContext:
    """Turn raw context values into an AppContext, the way EBS does; no responsibility = no MOAC."""
    resp_key = raw.get("responsibility")
    if not resp_key:
        return AppContext(user, None, frozenset())
    resp = RESPONSIBILITIES.get(resp_key)
    if resp is None or resp_key not in user.responsibilities:
        raise ContextRejected(f"Responsibility {resp_key} is not valid for user {user.name}.")
    app = raw.get("resp_application")
    if app != resp.application:
        raise ContextRejected(
            f"Application short name {app or '(none)'} is not valid for responsibility {resp_key}."
        )
    group = raw.get("security_group") or "STANDARD"
    if group != "STANDARD":
        raise ContextRejected(f"Security group {group} is not valid for responsibility {resp_key}.")
    language = raw.get("nls_language") or "AMERICAN"
    if language not in _INSTALLED_LANGUAGES:
        raise ContextRejected(f"NLS language {language} is not installed.")
    org_text = raw.get("org_id")
    if not org_text:
        return AppContext(user, resp_key, resp.orgs)
    try:
        org = int(org_text)
    except ValueError:
        raise ContextRejected(f"ORA-06502: PL/SQL: numeric or value error (Org_Id {org_text})") from None
    return AppContext(user, resp_key, resp.orgs & {org})


def html_page(status: int, title: str, text: str) -> Response:
    """A web-tier (Oracle HTTP Server) error page."""
    body = (
        '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n'
        f"<html><head>\n<title>{title}</title>\n</head><body>\n<h1>{title.split(' ', 1)[1]}</h1>\n"
        f"<p>{text}</p>\n<hr>\n<address>Oracle-HTTP-Server Server</address>\n</body></html>\n"
    )
    return Response(body, status_code=status, media_type="text/html; charset=iso-8859-1")


def web_fault_response(status: int) -> Response:
    return html_page(status, _WEB_FAULT_TITLES[status],
                     "The server is temporarily unable to service your request.")


def isg_fault(
    sim: EbsSim, status: int, code: str, message: str, resolution: str,
    service: str = "", operation: str = "", headers: Mapping[str, str] | None = None,
) -> Response:
    body = {"ISGServiceFault": {
        "Code": code,
        "Message": message,
        "Resolution": resolution,
        "ServiceDetails": {"ServiceName": service, "OperationName": operation,
                           "InstanceId": sim.next_instance_id()},
    }}
    return Response(json.dumps(body), status_code=status, media_type="application/json",
                    headers=dict(headers or {}))


def _unauthorized(sim: EbsSim, code: str, message: str, service: str = "", operation: str = "") -> Response:
    return isg_fault(sim, 401, code, message, "Log in again with valid credentials.", service, operation,
                     {"WWW-Authenticate": _REALM})


def _basic_user(sim: EbsSim, request: Request) -> EbsUser | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        name, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return sim.check_password(name, password) if sep else None


@dataclass(frozen=True)
class _Caller:
    user: EbsUser
    token: str | None


def _authenticate(sim: EbsSim, request: Request, service: str, operation: str) -> _Caller | Response:
    """A token cookie wins over Basic; a dead token is a 401 whatever else is sent."""
    token = request.cookies.get(sim.cookie_name)
    if token is not None:
        session = sim.session(token)
        if session is None:
            return _unauthorized(sim, "ISG_INVALID_SESSION",
                                 "The session is invalid or has expired.", service, operation)
        return _Caller(session.user, token)
    user = _basic_user(sim, request)
    if user is None:
        return _unauthorized(sim, "ISG_AUTHENTICATION_FAILED",
                             "User authentication failed.", service, operation)
    return _Caller(user, None)


def _wants_xml(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/xml" in accept and "application/json" not in accept


def _data_response(sim: EbsSim, request: Request, data: Mapping[str, str]) -> Response:
    if _wants_xml(request):
        inner = "".join(f"<{k}>{v}</{k}>" for k, v in data.items())
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<response><data>{inner}</data></response>'
        return Response(body, media_type="application/xml")
    return sim.json_response({"response": {"data": dict(data)}})


def _login(sim: EbsSim, request: Request) -> Response:
    user = _basic_user(sim, request)
    if user is None:
        return _unauthorized(sim, "ISG_AUTHENTICATION_FAILED", "User authentication failed.",
                             "login", "login")
    session = sim.open_session(user)
    return _data_response(sim, request, {
        "accessTokenName": sim.cookie_name,
        "accessToken": session.token,
        "ebsVersion": sim.ebs_version,
        "userName": user.name,
    })


def _logout(sim: EbsSim, request: Request) -> Response:
    token = request.cookies.get(sim.cookie_name)
    if token is None or sim.session(token) is None:
        return _unauthorized(sim, "ISG_INVALID_SESSION", "The session is invalid or has expired.",
                             "logout", "logout")
    sim.close_session(token)
    return _data_response(sim, request, {"message": "Logout successful"})


def _raw_context(sim: EbsSim, request: Request, header_block: object) -> dict[str, str]:
    keys = _CONTEXT_KEYS[sim.context_mode]
    source: Mapping[str, object]
    if sim.context_mode == "query":
        source = request.query_params
    elif sim.context_mode == "header":
        source = request.headers
    else:
        source = header_block if isinstance(header_block, dict) else {}
    out: dict[str, str] = {}
    for wire, name in keys.items():
        value = source.get(wire)
        if value is not None and str(value) != "":
            out[name] = str(value)
    return out


def _effective_context(sim: EbsSim, caller: _Caller, provided: dict[str, str]) -> dict[str, str]:
    """Token sessions remember context; values passed now override the remembered ones."""
    if caller.token is None:
        return provided
    session = sim.session(caller.token)
    if session is None:
        return provided
    session.context.update(provided)
    return dict(session.context)


def _parse_wrapper(raw: bytes) -> tuple[object, Mapping[str, object]] | None:
    """(RESTHeader, InputParameters) from ``{"<ANY>_Input": {...}}``; the wrapper name is not checked."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or len(body) != 1:
        return None
    inner = next(iter(body.values()))
    if not isinstance(inner, dict):
        return None
    params = inner.get("InputParameters") or {}
    if not isinstance(params, dict):
        return None
    return inner.get("RESTHeader"), params


async def isg_endpoint(sim: EbsSim, request: Request) -> Response:
    """Everything under ``/webservices/rest/``."""
    fault = sim.take_web_fault()
    if fault is not None:
        return web_fault_response(fault)
    parts = [p for p in str(request.path_params["rest"]).split("/") if p]
    if parts in (["login"], ["logout"]) and request.method == "GET":
        return _login(sim, request) if parts == ["login"] else _logout(sim, request)
    alias, operation = (parts + ["", ""])[:2]
    caller = _authenticate(sim, request, alias, operation)
    if isinstance(caller, Response):
        return caller
    logical = _find_method(sim, parts)
    if logical is None:
        return html_page(404, "404 Not Found",
                         f"The requested URL {request.url.path} was not found on this server.")
    if request.method != "POST":
        return Response(status_code=405, headers={"Allow": "POST"})
    if logical not in caller.user.grants:
        return isg_fault(
            sim, 500, "ISG_USER_NOT_AUTHORIZED",
            f"User {caller.user.name} is not authorized to execute the service operation {operation}.",
            "Grant the user access to the service operation, or log in as a user who has it.",
            alias, operation,
        )
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return Response("Unsupported Media Type", status_code=415, media_type="text/plain")
    parsed = _parse_wrapper(await request.body())
    if parsed is None:
        return isg_fault(sim, 400, "ISG_INVALID_REQUEST", "The request payload could not be parsed.",
                         'Send {"<METHOD>_Input": {"RESTHeader": {...}, "InputParameters": {...}}}.',
                         alias, operation)
    header_block, params = parsed
    raw_ctx = _effective_context(sim, caller, _raw_context(sim, request, header_block))
    try:
        ctx = resolve_context(caller.user, raw_ctx)
        payload = run_service(sim, logical, ctx, params)
        status = "S"
        message: str | None = None
    except (ContextRejected, ServiceError) as exc:
        payload = SERVICES[logical].empty_output()
        status, message = "E", str(exc)
    namespace = f"http://xmlns.oracle.com/apps/fnd/rest/{alias}/{operation.lower()}/"
    out = {"@xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance", "@xmlns": namespace, **payload,
           "X_RETURN_STATUS": status, "X_MSG_DATA": message}
    return sim.json_response({"OutputParameters": out})


def _find_method(sim: EbsSim, parts: list[str]) -> str | None:
    """The logical service for ``<alias>/<method>``: alias exact, method case-insensitive."""
    if len(parts) != 2:
        return None
    alias, method = parts
    for logical, wire in sim.names.methods.items():
        if sim.names.alias_of(logical) == alias and wire.lower() == method.lower():
            return logical
    return None
