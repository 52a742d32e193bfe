"""The e.net WCF REST endpoint, ``/SYSPROWCFService/Rest/...``: logon, logoff, getversion, Query/Query.

Every call is a GET with query parameters (passwords and XML included). Paths and parameter
names match case-insensitively (WCF UriTemplate matching); values are taken byte for byte, so a
UserId must keep its two trailing spaces. Paths not modelled here (Browse, Fetch, Transaction,
Setup) answer 404 like an unknown WCF endpoint; other methods than GET answer 405.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, ParseError

from defusedxml.common import DefusedXmlException
from defusedxml.ElementTree import fromstring
from starlette.requests import Request
from starlette.responses import Response

from ml_connector.sim.syspro_comfnd import parse_comfnd, render_comfnd, run_comfnd
from ml_connector.sim.syspro_porqry import po_key_from, render_porqry
from ml_connector.sim.syspro_wire import (
    BAD_XML,
    EMPTY_XMLIN,
    UNKNOWN_BO,
    EnetError,
    ValidationFault,
    enet_body,
    error_text,
    httpsys_page,
    validation_xml,
)

if TYPE_CHECKING:
    from ml_connector.sim.syspro import SysproSim

Params = Mapping[str, str]


def _comfnd(sim: SysproSim, root: Element) -> str:
    query = parse_comfnd(root)
    columns, rows = run_comfnd(sim.data, query)
    return render_comfnd(query, columns, rows, sim.bo_version)


def _porqry(sim: SysproSim, root: Element) -> str:
    return render_porqry(sim.data, po_key_from(root), sim.bo_version)


BUSINESS_OBJECTS: Mapping[str, Callable[[SysproSim, Element], str]] = MappingProxyType({
    "COMFND": _comfnd,
    "PORQRY": _porqry,
})


def _run_query(sim: SysproSim, params: Params) -> str:
    name = params.get("businessobject", "").strip().upper()
    handler = BUSINESS_OBJECTS.get(name)
    if handler is None:
        raise EnetError(UNKNOWN_BO.format(name))
    xml_in = params.get("xmlin", "")
    if not xml_in.strip():
        raise EnetError(EMPTY_XMLIN)
    try:
        root = fromstring(xml_in)
    except (ParseError, DefusedXmlException) as exc:
        raise EnetError(BAD_XML.format(exc)) from exc
    try:
        return handler(sim, root)
    except ValidationFault as fault:
        key = [(child.tag, child.text or "") for child in root.findall("Key/*")]
        return validation_xml(root.tag, sim.bo_version, fault, key)


async def _query(sim: SysproSim, params: Params) -> str:
    session = sim.sessions.begin(params.get("userid", ""), sim.now())
    try:
        await sim.pause()
        return _run_query(sim, params)
    finally:
        sim.sessions.end(session, sim.now())


async def _logon(sim: SysproSim, params: Params) -> str:
    await sim.pause()
    session = sim.sessions.logon(
        operator=params.get("operator", ""), password=params.get("operatorpassword", ""),
        company=params.get("companyid", ""), company_password=params.get("companypassword", ""),
        now=sim.now(),
    )
    return session.user_id


async def _logoff(sim: SysproSim, params: Params) -> str:
    await sim.pause()
    sim.sessions.logoff(params.get("userid", ""), sim.now())
    return "0"


async def _version(sim: SysproSim, params: Params) -> str:
    await sim.pause()
    return sim.version


OPERATIONS: Mapping[str, Callable[[SysproSim, Params], Awaitable[str]]] = MappingProxyType({
    "logon": _logon,
    "logoff": _logoff,
    "getversion": _version,
    "query/query": _query,
})


async def enet_endpoint(sim: SysproSim, request: Request) -> Response:
    refused = sim.gate(request)
    if refused is not None:
        return refused
    if request.method != "GET":
        return httpsys_page(405)
    handler = OPERATIONS.get(str(request.path_params["rest"]).strip("/").lower())
    if handler is None:
        return httpsys_page(404)
    params = {k.lower(): v for k, v in request.query_params.multi_items()}
    try:
        text = await handler(sim, params)
    except EnetError as exc:
        text = error_text(exc.text)
    return enet_body(text, truncate=sim.take_malformed())
