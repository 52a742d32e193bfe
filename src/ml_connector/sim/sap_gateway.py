"""A faithful SAP Gateway (OData v2) in front of a simulated SAP ECC, for tests and the demo.

Serve ``SapGatewaySim().create_app()`` in-process (``httpx.ASGITransport``) or with uvicorn.
Written from the reference notes (erp-apis.md §3.1, §5), keeping the parts that hurt:

* Services under ``/sap/opu/odata/<namespace>/<SERVICE>[;v=0001|;mo]/``; ``sap-client`` picks the
  client (a client that does not exist is a 401, like a wrong password or a locked user).
* Basic logon creates a security session: cookies ``SAP_SESSIONID_<SID>_<client>`` and
  ``sap-usercontext``. Sessions expire (`session_timeout`, or `expire_sessions()`); a request
  with a dead session cookie and no Basic header gets 401.
* CSRF for writes: ``x-csrf-token: Fetch`` on a GET returns the session's token; a write with a
  missing or stale token gets 403 "CSRF token validation failed" (``x-csrf-token: Required``).
* ``$metadata`` with SAP annotations; ``$filter``, ``$orderby``, ``$top``, ``$skip``,
  ``$select``, ``$inlinecount`` as the service developer implemented them: services listed in
  `ignore_filter` silently ignore ``$filter``; entity sets in `server_paging` answer 501 to
  ``$skip`` and page themselves with ``__next`` and an opaque ``$skiptoken``.
* Late change documents: a V1 update task commits a PO change stamped in the past.
* Errors in SAP's JSON form (``error.code``, ``message.value``, ``innererror.transactionid``,
  ``errordetails``) or its XML form when JSON was not asked for; 5xx and truncated bodies on
  demand.

The simulator imports nothing from the adapter.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ml_connector.sim.armed import ArmedFaults, OffsetClock
from ml_connector.sim.control import action_route, ok
from ml_connector.sim.sap_gateway_data import SERVICES, ChangeDocument, SapTables, SetSchema, Value, metadata_xml
from ml_connector.sim.sap_gateway_query import QueryError, compile_filter, encode_row, sort_rows

ODATA_PREFIX = "/sap/opu/odata/"
KNOWN_OPTIONS = frozenset({"$filter", "$orderby", "$top", "$skip", "$select", "$inlinecount", "$format",
                           "$skiptoken", "$expand", "sap-client", "sap-language", "search"})
_KEY = re.compile(r"^(?P<set>[A-Za-z_][A-Za-z0-9_]*)\((?P<keys>.*)\)$")
_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)='((?:[^']|'')*)'")


class SapGatewaySim:
    """The simulated SAP system: users, sessions, CSRF tokens, tables and the fault plan."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None, timezone: str = "Europe/Berlin",
                 sid: str = "ECD", client: str = "100", users: Mapping[str, str] | None = None,
                 locked: Iterable[str] = (), session_timeout: float = 1800, release: str = "731",
                 namespace: str = "sap", server_paging: Iterable[str] = (), server_page_size: int = 100,
                 ignore_filter: Iterable[str] = (), count_as_string: bool = True,
                 public_info: bool = True, session_loss: int = 401) -> None:
        self._clock = OffsetClock(clock, "SapGatewaySim")
        self.tz = ZoneInfo(timezone)
        self.sid = sid
        self.client = client
        self.users = dict(users or {"MLC_ODATA": "mlc-pass"})
        self.locked = set(locked)
        self.session_timeout = timedelta(seconds=session_timeout)
        self.release = release
        self.namespace = namespace
        self.server_paging = set(server_paging)
        self.server_page_size = server_page_size
        self.ignore_filter = set(ignore_filter)
        self.count_as_string = count_as_string
        self.public_info = public_info
        #: what a request with a dead session cookie and no Basic gets: 401 (logon), or ICF's 400
        self.session_loss = session_loss
        self.tables = SapTables()
        self.faults = ArmedFaults()
        self.sessions: dict[str, tuple[str, datetime]] = {}
        self.csrf: dict[str, str] = {}
        self.logins = 0
        #: the next N writes fail CSRF validation whatever token they carry (tokens that expired)
        self.csrf_failures = 0
        self.requests: list[str] = []
        self._po_number = 4500000000
        self._invoice_number = 5105600000

    # -- clock and data ----------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock.now()

    def wall(self, at: datetime | None = None) -> datetime:
        """SAP system wall time (naive, whole seconds) of an instant (default: now)."""
        return (at or self.now()).astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def add_group(self, ekgrp: str, name: str, phone: str, email: str = "") -> None:
        self.tables.groups[ekgrp] = {"Ekgrp": ekgrp, "Eknam": name, "Telfn": phone, "SmtpAddr": email}

    def add_supplier(self, lifnr: str, name: str, *, phone: str = "", email: str = "", country: str = "DE",
                     contacts: Iterable[tuple[str, str, str]] = ()) -> str:
        """A supplier (LFA1, number ALPHA-padded to 10) and its contacts (name, phone, e-mail)."""
        padded = lifnr.zfill(10) if lifnr.isdigit() else lifnr
        self.tables.suppliers[padded] = {"Lifnr": padded, "Name1": name, "Land1": country, "Telf1": phone,
                                         "SmtpAddr": email}
        for n, (contact, contact_phone, contact_email) in enumerate(contacts, start=1):
            parnr = str(n).zfill(10)
            self.tables.contacts[(padded, parnr)] = {"Lifnr": padded, "Parnr": parnr, "Name1": contact,
                                                     "Pafkt": "01", "Telf1": contact_phone,
                                                     "SmtpAddr": contact_email}
        return padded

    def create_po(self, *, lifnr: str, ekgrp: str = "001", netwr: Decimal | str = "1000.00", waers: str = "EUR",
                  bukrs: str = "1000", at: datetime | None = None, committed: bool = True,
                  release_strategy: bool = True, delivery: date | None = None) -> str:
        """ME21N: a PO (EKKO) and its creation change document stamped `at` (default now)."""
        self._po_number += 1
        ebeln = str(self._po_number)
        wall = self.wall(at)
        self.tables.pos[ebeln] = {
            "Ebeln": ebeln, "Bukrs": bukrs, "Bstyp": "F", "Bsart": "NB", "Lifnr": lifnr.zfill(10),
            "Ekorg": "1000", "Ekgrp": ekgrp, "Waers": waers, "Bedat": wall.date(), "Aedat": wall.date(),
            "Ernam": "BUYER01", "Frgke": "B" if release_strategy else "", "Frgzu": "",
            "Netwr": Decimal(str(netwr)), "Eindt": delivery or (wall.date() + timedelta(days=14)),
        }
        self.tables.changes.append(ChangeDocument(ebeln, wall, {}, committed))
        return ebeln

    def release_po(self, ebeln: str, *, code: str = "X", at: datetime | None = None, committed: bool = True) -> None:
        """ME29N: a release code is set (FRGZU gains it) and the PO is released (FRGKE 'R')."""
        if ebeln not in self.tables.pos:
            raise KeyError(ebeln)
        status = str(self._current_po(ebeln).get("Frgzu") or "") + code
        self.tables.changes.append(ChangeDocument(ebeln, self.wall(at), {"Frgzu": status, "Frgke": "R"}, committed))

    def change_po(self, ebeln: str, fields: Mapping[str, Value], *, at: datetime | None = None,
                  committed: bool = True) -> None:
        if ebeln not in self.tables.pos:
            raise KeyError(ebeln)
        self.tables.changes.append(ChangeDocument(ebeln, self.wall(at), dict(fields), committed))

    def commit_updates(self) -> int:
        """The V1 update task finishes: pending change documents are committed (stamps unchanged)."""
        pending = [c for c in self.tables.changes if not c.committed]
        for change in pending:
            change.committed = True
        return len(pending)

    def _current_po(self, ebeln: str) -> dict[str, Value]:
        row = dict(self.tables.pos[ebeln])
        for change in sorted((c for c in self.tables.changes if c.ebeln == ebeln), key=lambda c: c.at):
            row.update(change.fields)
        return row

    def post_invoice(self, *, lifnr: str, xblnr: str, amount: Decimal | str, bukrs: str = "1000",
                     waers: str = "EUR", at: datetime | None = None, status: str = "5",
                     invoice_date: date | None = None) -> tuple[str, str]:
        """MIRO: a supplier invoice (RBKP) entered at `at` (CPUDT/CPUTM, wall time); (BELNR, GJAHR)."""
        self._invoice_number += 1
        wall = self.wall(at)
        belnr, gjahr = str(self._invoice_number), str(wall.year)
        self.tables.invoices[(belnr, gjahr)] = {
            "Belnr": belnr, "Gjahr": gjahr, "Bukrs": bukrs, "Lifnr": lifnr.zfill(10) if lifnr.isdigit() else lifnr,
            "Xblnr": xblnr, "Bldat": invoice_date or wall.date(), "Budat": wall.date(), "Cpudt": wall.date(),
            "Cputm": wall.time(), "Waers": waers, "Rmwwr": Decimal(str(amount)), "Rbstat": status, "Stblg": "",
            "Zuonr": "",
        }
        return belnr, gjahr

    def set_invoice_status(self, belnr: str, gjahr: str, status: str) -> None:
        """A parked invoice is posted (RBSTAT '5'): CPUDT/CPUTM do not move."""
        self.tables.invoices[(belnr, gjahr)]["Rbstat"] = status

    def reverse_invoice(self, belnr: str, gjahr: str, *, at: datetime | None = None) -> tuple[str, str]:
        """MR8M: a reversal document with the same reference; both carry each other in STBLG."""
        original = self.tables.invoices[(belnr, gjahr)]
        reversal = self.post_invoice(lifnr=str(original["Lifnr"]), xblnr=str(original["Xblnr"]),
                                     amount=Decimal(str(original["Rmwwr"])), bukrs=str(original["Bukrs"]), at=at)
        original["Stblg"] = reversal[0]
        self.tables.invoices[reversal]["Stblg"] = belnr
        return reversal

    def expire_sessions(self) -> None:
        self.sessions.clear()
        self.csrf.clear()

    def malform_next(self, count: int = 1) -> None:
        self.faults.malform_next(count)

    def fail_next(self, count: int, status: int = 503) -> None:
        self.faults.fail_next(count, status)

    # -- wire --------------------------------------------------------------------------------------

    def create_app(self) -> Starlette:
        actions: dict[str, Callable[[SapGatewaySim, Mapping[str, Any]], object]] = {
            "expire_sessions": lambda sim, args: ok(sim.expire_sessions),
            "fail_next": lambda sim, args: ok(lambda: sim.fail_next(int(args.get("count", 1)),
                                                                  int(args.get("status", 503)))),
            "malform_next": lambda sim, args: ok(lambda: sim.malform_next(int(args.get("count", 1)))),
            "commit_updates": lambda sim, args: {"committed": sim.commit_updates()},
        }
        return Starlette(routes=[
            action_route(self, actions),
            Route("/sap/public/info", self._info, methods=["GET"]),
            Route("/sap/opu/odata/{rest:path}", self._odata, methods=["GET", "HEAD", "POST", "PUT", "MERGE",
                                                                      "PATCH", "DELETE"]),
        ])

    async def _info(self, request: Request) -> Response:
        if not self.public_info:
            return Response("<html><body>Forbidden</body></html>", 403, media_type="text/html")
        fields = {"RFCPROTO": "011", "RFCCHARTYP": "4103", "RFCSYSID": self.sid, "RFCSAPRL": self.release,
                  "RFCKERNRL": "753", "RFCTZONE": "3600", "RFCDBSYS": "ORACLE"}
        body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
        return Response(f'<?xml version="1.0" encoding="utf-8"?><RFCSI>{body}</RFCSI>', 200,
                        media_type="text/xml")

    def _wants_json(self, request: Request) -> bool:
        return (request.query_params.get("$format") == "json"
                or "json" in request.headers.get("accept", ""))

    def _error(self, request: Request, status: int, code: str, text: str) -> Response:
        transaction = secrets.token_hex(16).upper()
        stamp = self.wall().strftime("%Y%m%d%H%M%S") + ".1234560"
        if self._wants_json(request):
            body = {"error": {"code": code, "message": {"lang": "en", "value": text}, "innererror": {
                "application": {"component_id": "MM-PUR", "service_namespace": "/SAP/",
                                "service_id": "ZMM_PO_SRV", "service_version": "0001"},
                "transactionid": transaction, "timestamp": stamp,
                "Error_Resolution": {"SAP_Transaction": "Run transaction /IWFND/ERROR_LOG on SAP Gateway hub "
                                                        "system and search for entries with the timestamp above",
                                     "SAP_Note": "See SAP Note 1797736 for error analysis"},
                "errordetails": [{"code": code, "message": text, "propertyref": "", "severity": "error",
                                  "target": ""}]}}}
            return Response(json.dumps(body), status, media_type="application/json")
        xml = ('<?xml version="1.0" encoding="utf-8"?>'
               '<error xmlns="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata">'
               f'<code>{escape(code)}</code><message xml:lang="en">{escape(text)}</message>'
               f'<innererror><transactionid>{transaction}</transactionid><timestamp>{stamp}</timestamp>'
               f'<errordetails><errordetail><code>{escape(code)}</code><message>{escape(text)}</message>'
               '<propertyref/><severity>error</severity><target/></errordetail></errordetails>'
               '</innererror></error>')
        return Response(xml, status, media_type="application/xml")

    def _unauthorized(self) -> Response:
        return Response("<html><head><title>Logon Error Message</title></head><body>Anmeldung fehlgeschlagen"
                        "</body></html>", 401, media_type="text/html",
                        headers={"WWW-Authenticate": f'Basic realm="SAP NetWeaver Application Server '
                                                     f'[{self.sid}/{self.client}]"'})

    def _logon(self, request: Request) -> tuple[str | None, str | None]:
        """(session id, user) from the session cookie or Basic; (None, None) when refused."""
        client = request.query_params.get("sap-client", self.client)
        if client != self.client:
            return None, None
        now = self.now()
        cookie = request.cookies.get(f"SAP_SESSIONID_{self.sid}_{client}")
        if cookie and cookie in self.sessions:
            user, last = self.sessions[cookie]
            if now - last <= self.session_timeout:
                self.sessions[cookie] = (user, now)
                return cookie, user
            del self.sessions[cookie]
            self.csrf.pop(cookie, None)
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return ("lost" if cookie else None), None
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, None
        if self.users.get(user.upper()) != password or user.upper() in self.locked:
            return None, None
        self.logins += 1
        session = secrets.token_urlsafe(24)
        self.sessions[session] = (user.upper(), now)
        return session, user.upper()

    async def _odata(self, request: Request) -> Response:
        rest = str(request.path_params["rest"])
        self.requests.append(f"{request.method} /{rest}?{request.url.query}")
        failure = self.faults.take_status()
        if failure is not None:
            return Response("<html><body>500 SAP Internal Server Error<br>ICM</body></html>", failure,
                            media_type="text/html")
        session, user = self._logon(request)
        if session == "lost" and self.session_loss == 400:
            return Response("<html><head><title>Session not found</title></head><body><h1>Session not found"
                            "</h1><p>Session Timed Out</p></body></html>", 400, media_type="text/html")
        if session is None or user is None:
            return self._unauthorized()
        response = await self._serve(request, rest, session)
        if request.cookies.get(f"SAP_SESSIONID_{self.sid}_{self.client}") != session:
            # written as ICF does (a raw `=` in sap-usercontext's value, which cookie libraries would quote)
            response.headers.append("set-cookie", f"SAP_SESSIONID_{self.sid}_{self.client}={session}; path=/; HttpOnly")
            response.headers.append("set-cookie", f"sap-usercontext=sap-client={self.client}; path=/")
        if self.faults.take_malformed():
            body = bytes(response.body)
            response = Response(body[: max(1, len(body) // 2)], response.status_code,
                                media_type=response.media_type)
        return response

    async def _serve(self, request: Request, rest: str, session: str) -> Response:
        parts = rest.split("/")
        if len(parts) < 2 or parts[0] != self.namespace:
            return self._error(request, 404, "/IWFND/MED/170", f"No service found for namespace '{parts[0]}'")
        service = parts[1].split(";", 1)[0]
        sets = SERVICES.get(service)
        if sets is None:
            return self._error(request, 404, "/IWFND/MED/170",
                               f"No service found for namespace '/SAP/', name '{service}', version '0001'")
        resource = "/".join(parts[2:])
        headers: dict[str, str] = {"dataserviceversion": "2.0", "sap-server": "true"}
        if request.method in ("GET", "HEAD") and request.headers.get("x-csrf-token", "").lower() == "fetch":
            headers["x-csrf-token"] = self.csrf.setdefault(session, secrets.token_urlsafe(18))
        if request.method not in ("GET", "HEAD"):
            stale = self.csrf_failures > 0
            self.csrf_failures = max(0, self.csrf_failures - 1)
            if stale or request.headers.get("x-csrf-token") != self.csrf.get(session) or session not in self.csrf:
                return Response("CSRF token validation failed", 403, media_type="text/plain",
                                headers={"x-csrf-token": "Required"})
            return await self._write(request, service, sets, resource)
        if resource == "":
            body = {"d": {"EntitySets": [s.name for s in sets]}}
            return Response(json.dumps(body), 200, media_type="application/json", headers=headers)
        if resource == "$metadata":
            return Response(metadata_xml(service, sets), 200, media_type="application/xml", headers=headers)
        unknown = [k for k in request.query_params if k not in KNOWN_OPTIONS]
        if unknown:
            return self._error(request, 400, "/IWBEP/CM_MGW_RT/004",
                               f"System query option '{unknown[0]}' is not supported")
        keyed = _KEY.match(resource)
        name = keyed.group("set") if keyed else resource
        schema = next((s for s in sets if s.name == name), None)
        if schema is None:
            return self._error(request, 404, "/IWBEP/CM_MGW_RT/021", f"Resource not found for the segment '{name}'.")
        root = f"{request.url.scheme}://{request.url.netloc}{ODATA_PREFIX}{'/'.join(parts[:2])}/"
        if keyed:
            return self._entity(request, schema, keyed.group("keys"), root, headers)
        return self._collection(request, service, schema, root, headers)

    def _entity(self, request: Request, schema: SetSchema, keys: str, root: str, headers: dict[str, str]) -> Response:
        pairs = dict((k, v.replace("''", "'")) for k, v in _PAIR.findall(keys))
        if not pairs and keys.startswith("'") and len(schema.keys) == 1:
            pairs = {schema.keys[0]: keys[1:-1].replace("''", "'")}
        if set(pairs) != set(schema.keys):
            return self._error(request, 400, "/IWBEP/CM_MGW_RT/022", f"Invalid key predicate '{keys}'")
        row = next((r for r in self.tables.rows(schema.name) if all(str(r.get(k)) == v for k, v in pairs.items())),
                   None)
        if row is None:
            return self._error(request, 404, "/IWBEP/CM_MGW_RT/021",
                               f"Resource not found for the segment '{schema.name}'.")
        return Response(json.dumps({"d": encode_row(row, schema, root, None)}), 200, media_type="application/json",
                        headers=headers)

    def _collection(self, request: Request, service: str, schema: SetSchema, root: str,
                    headers: dict[str, str]) -> Response:
        q = request.query_params
        server = schema.name in self.server_paging
        if server and "$skip" in q:
            return self._error(request, 501, "/IWBEP/CM_MGW_RT/016",
                               f"Method '{schema.name.upper()}_GET_ENTITYSET' does not support $skip")
        try:
            rows = self.tables.rows(schema.name)
            if q.get("$filter") and service not in self.ignore_filter:
                predicate = compile_filter(q["$filter"], schema)
                rows = [r for r in rows if predicate(r)]
            rows = sort_rows(rows, q.get("$orderby"), schema)
            total = len(rows)
            offset = int(q.get("$skip") or 0)
            if "$skiptoken" in q:
                offset = self._offset(q["$skiptoken"])
            if q.get("$top"):
                rows = rows[offset:offset + int(q["$top"])]
            else:
                rows = rows[offset:]
        except (QueryError, ValueError) as exc:
            return self._error(request, 400, "/IWBEP/CM_MGW_RT/004", str(exc))
        d: dict[str, Any] = {}
        if q.get("$inlinecount") == "allpages":
            d["__count"] = str(total) if self.count_as_string else total
        nxt = None
        if server and len(rows) > self.server_page_size:
            rows = rows[: self.server_page_size]
            token = self._token(offset + self.server_page_size)
            kept = [(k, v) for k, v in q.multi_items() if k != "$skiptoken"]
            nxt = f"{root}{schema.name}?{urlencode(kept + [('$skiptoken', token)])}"
        select = [p for p in (q.get("$select") or "").split(",") if p] or None
        d["results"] = [encode_row(r, schema, root, select) for r in rows]
        if nxt:
            d["__next"] = nxt
        return Response(json.dumps({"d": d}), 200, media_type="application/json", headers=headers)

    def _token(self, offset: int) -> str:
        raw = f"{offset}:{secrets.token_hex(4)}".encode()
        return "'" + base64.urlsafe_b64encode(raw).decode().rstrip("=") + "'"

    @staticmethod
    def _offset(token: str) -> int:
        text = token.strip("'")
        try:
            return int(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().split(":", 1)[0])
        except (ValueError, UnicodeDecodeError):
            raise QueryError(f"Invalid skiptoken {token[:20]}") from None

    async def _write(self, request: Request, service: str, sets: tuple[SetSchema, ...], resource: str) -> Response:
        schema = next((s for s in sets if s.name == resource), None)
        if schema is None or not schema.creatable or request.method != "POST":
            return self._error(request, 405, "/IWBEP/CM_MGW_RT/025", f"Method not allowed for '{resource}'")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._error(request, 400, "/IWBEP/CM_MGW_RT/024", "The request body is not valid JSON")
        key = str(body.get(schema.keys[0]) or "")
        if not key:
            return self._error(request, 400, "/IWBEP/CM_MGW_RT/024", f"Property '{schema.keys[0]}' is initial")
        self.tables.audit[key] = {p.name: body.get(p.name) for p in schema.props}
        return Response(json.dumps({"d": body}), 201, media_type="application/json")

