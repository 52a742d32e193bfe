"""A faithful SAP RFC agent (protocol v1, docs/sap-agent-protocol.md) in front of a simulated SAP ECC.

Serve ``SapAgentSim().create_app()`` in-process (``httpx.ASGITransport``) or with uvicorn.
Written from the reference notes (erp-apis.md §3.2, §3.3, §5), keeping the parts that hurt:

* A bearer token is required; a wrong one is refused before SAP is reached. `logon_refused`
  makes SAP refuse the agent's own logon (RFC_LOGON_FAILURE: wrong password, locked user or a
  client that does not exist all look the same).
* RFC_READ_TABLE with its 512-character work area (DATA_BUFFER_EXCEEDED), OPTIONS in 72-character
  lines, ROWSKIPS/ROWCOUNT and rows in no particular order (see sap_agent_functions).
* Change documents: creating or releasing a PO writes CDHDR/CDPOS (object class EINKBELEG,
  UDATE/UTIME in SAP wall time) with the EKKO change; a V1 update task can commit them late,
  stamped with the time of the dialog step (`committed=False`, then `commit_updates()`).
* SAP's resource check: more than `max_calls` calls at once answer RESOURCE_FAILURE. The most
  calls ever in flight is kept in `max_in_flight`.
* Sessions keep one user context (a logical unit of work) until deleted: a Z module's writes
  are stored only by BAPI_TRANSACTION_COMMIT in the same session.
* Faults: the next calls fail with a chosen error type; a truncated body.

The simulator imports nothing from the adapter or the reference agent.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ml_connector.sim.armed import ArmedFaults, OffsetClock
from ml_connector.sim.control import action_route, ok
from ml_connector.sim.sap_agent_data import Database, Row, Value
from ml_connector.sim.sap_agent_functions import FUNCTIONS, AbapException, Context

_STATUS = {"BAD_REQUEST": 400, "AGENT_UNAUTHORIZED": 401, "FUNCTION_NOT_ALLOWED": 403, "SESSION_NOT_FOUND": 404,
           "ABAP_APPLICATION_ERROR": 422, "RFC_LOGON_FAILURE": 502, "ABAP_RUNTIME_FAILURE": 502,
           "RFC_COMMUNICATION_FAILURE": 503, "SYSTEM_FAILURE": 503, "RESOURCE_FAILURE": 503}
_MESSAGES = {"RFC_LOGON_FAILURE": "Name or password is incorrect (repeat logon)",
             "RFC_COMMUNICATION_FAILURE": "partner 'sapecd01:3300' not reached",
             "SYSTEM_FAILURE": "connection closed by the partner (work process restarted)",
             "RESOURCE_FAILURE": "no free dialog work process: RFC quota of user reached (rdisp/rfc_max_own_used_wp)",
             "ABAP_RUNTIME_FAILURE": "Runtime error CONVT_NO_NUMBER (see ST22)"}


def _dats(value: date) -> str:
    return value.strftime("%Y%m%d")


class SapAgentSim:
    """The simulated SAP system behind an RFC agent: token, tables, change documents, faults."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None, timezone: str = "Europe/Berlin",
                 token: str = "agent-token",  # noqa: S107 - the simulator's demo token
                 sid: str = "ECD", client: str = "100", user: str = "MLC_RFC",
                 release: str = "731", max_calls: int = 10, latency: float = 0.0) -> None:
        self._clock = OffsetClock(clock, "SapAgentSim")
        self.tz = ZoneInfo(timezone)
        self.token = token
        self.sid = sid
        self.client = client
        self.user = user
        self.release = release
        self.max_calls = max_calls
        self.latency = latency
        self.db = Database()
        self.not_authorized: set[str] = set()
        #: purchasing groups whose POs our user may not display (BAPI_PO_GETDETAIL1 answers RETURN E)
        self.display_blocked: set[str] = set()
        self.logon_refused = False
        self.faults = ArmedFaults()
        self.failures: list[str] = []
        self.sessions: dict[str, Context] = {}
        self.calls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.refused_busy = 0
        self._po_number = 4500000000
        self._invoice_number = 5105600000
        self._change_number = 0
        self._pending: list[tuple[list[Row], Callable[[], None]]] = []

    # -- clock and data ----------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock.now()

    def wall(self, at: datetime | None = None) -> datetime:
        """SAP system wall time (naive, whole seconds) of an instant (default: now)."""
        return (at or self.now()).astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def add_group(self, ekgrp: str, name: str, phone: str, email: str = "") -> None:
        self.db.insert("T024", {"EKGRP": ekgrp, "EKNAM": name, "EKTEL": phone[:12], "TEL_NUMBER": phone,
                                "SMTP_ADDR": email}, client=self.client)

    def add_supplier(self, lifnr: str, name: str, *, phone: str = "", email: str = "", country: str = "DE",
                     city: str = "München") -> str:
        """A supplier (LFA1, number ALPHA-padded to 10) with its address's default e-mail (ADR6)."""
        padded = lifnr.zfill(10) if lifnr.isdigit() else lifnr
        adrnr = str(len(self.db.rows["LFA1"]) + 1).zfill(10)
        self.db.insert("LFA1", {"LIFNR": padded, "NAME1": name, "LAND1": country, "ORT01": city, "TELF1": phone,
                                "ADRNR": adrnr, "KTOKK": "KRED", "SPRAS": "D", "ERDAT": _dats(self.wall().date()),
                                "MCOD1": name.upper()[:25]}, client=self.client)
        if email:
            self.db.insert("ADR6", {"ADDRNUMBER": adrnr, "DATE_FROM": "00010101", "CONSNUMBER": "001",
                                    "FLGDEFAULT": "X", "SMTP_ADDR": email, "SMTP_SRCH": email.upper()[:20]},
                           client=self.client)
        return padded

    def _change_document(self, ebeln: str, wall: datetime, tcode: str, indicator: str,
                         fields: Iterable[tuple[str, str, str, str]]) -> list[Row]:
        """CDHDR plus one CDPOS per (table, field, old, new), not yet committed."""
        self._change_number += 1
        changenr = str(self._change_number).zfill(10)
        rows = [self.db.insert("CDHDR", {"OBJECTCLAS": "EINKBELEG", "OBJECTID": ebeln, "CHANGENR": changenr,
                                         "USERNAME": "BUYER01", "UDATE": _dats(wall.date()),
                                         "UTIME": wall.strftime("%H%M%S"), "TCODE": tcode,
                                         "CHANGE_IND": indicator}, committed=False, client=self.client)]
        for table, name, old, new in fields:
            rows.append(self.db.insert("CDPOS", {"OBJECTCLAS": "EINKBELEG", "OBJECTID": ebeln, "CHANGENR": changenr,
                                                 "TABNAME": table, "TABKEY": self.client + ebeln, "FNAME": name,
                                                 "CHNGIND": indicator, "VALUE_OLD": old, "VALUE_NEW": new},
                                       committed=False, client=self.client))
        return rows

    def _update(self, rows: list[Row], apply: Callable[[], None], committed: bool) -> None:
        """One V1 update: its rows and table changes become visible together."""
        self._pending.append((rows, apply))
        if committed:
            self.commit_updates()

    def create_po(self, *, lifnr: str, ekgrp: str = "001", netwr: Decimal | str = "1000.00", waers: str = "EUR",
                  bukrs: str = "1000", at: datetime | None = None, committed: bool = True,
                  release_strategy: bool = True, delivery: date | None = None, items: int = 1) -> str:
        """ME21N: EKKO, EKPO items (the net value split over them) and the creation change document."""
        self._po_number += 1
        ebeln = str(self._po_number)
        wall = self.wall(at)
        rows = [self.db.insert("EKKO", {
            "EBELN": ebeln, "BUKRS": bukrs, "BSTYP": "F", "BSART": "NB", "AEDAT": _dats(wall.date()),
            "ERNAM": "BUYER01", "LIFNR": lifnr.zfill(10) if lifnr.isdigit() else lifnr, "SPRAS": "D",
            "EKORG": "1000", "EKGRP": ekgrp, "WAERS": waers, "BEDAT": _dats(wall.date()),
            "FRGKE": "B" if release_strategy else "", "FRGZU": "", "STATU": "9"}, committed=False, client=self.client)]
        total = Decimal(str(netwr))
        share = (total / items).quantize(Decimal("0.01"))
        for n in range(items):
            value = share if n < items - 1 else total - share * (items - 1)
            rows.append(self.db.insert("EKPO", {
                "EBELN": ebeln, "EBELP": str((n + 1) * 10).zfill(5), "TXZ01": f"Item {n + 1}",
                "MATNR": f"MAT-{n + 1:04d}", "WERKS": "1000", "MATKL": "001", "MENGE": Decimal("1.000"),
                "MEINS": "ST", "NETPR": value, "NETWR": value,
                "EINDT": _dats(delivery or (wall.date() + timedelta(days=14)))}, committed=False, client=self.client))
        rows += self._change_document(ebeln, wall, "ME21N", "I", [("EKKO", "KEY", "", "")])
        self._update(rows, lambda: None, committed)
        return ebeln

    def _ekko(self, ebeln: str) -> dict[str, Value]:
        for row in self.db.rows["EKKO"]:
            if row.values["EBELN"] == ebeln:
                return row.values
        raise KeyError(ebeln)

    def release_po(self, ebeln: str, *, code: str = "X", at: datetime | None = None, committed: bool = True) -> None:
        """ME29N: FRGZU gains the release code and FRGKE becomes 'R', with their change document."""
        ekko = self._ekko(ebeln)
        old_status, old_indicator = str(ekko["FRGZU"]), str(ekko["FRGKE"])
        status = old_status + code
        rows = self._change_document(ebeln, self.wall(at), "ME29N", "U",
                                     [("EKKO", "FRGZU", old_status, status), ("EKKO", "FRGKE", old_indicator, "R")])
        self._update(rows, lambda: ekko.update(FRGZU=status, FRGKE="R"), committed)

    def change_po(self, ebeln: str, fields: Mapping[str, str], *, at: datetime | None = None,
                  committed: bool = True) -> None:
        """ME22N: EKKO fields change, with their change document."""
        ekko = self._ekko(ebeln)
        rows = self._change_document(ebeln, self.wall(at), "ME22N", "U",
                                     [("EKKO", k, str(ekko[k]), str(v)) for k, v in fields.items()])
        self._update(rows, lambda: ekko.update(fields), committed)

    def commit_updates(self) -> int:
        """The V1 update tasks finish: their rows and changes become visible (stamps unchanged)."""
        done = 0
        for rows, apply in self._pending:
            for row in rows:
                row.committed = True
            apply()
            done += 1
        self._pending.clear()
        return done

    def post_invoice(self, *, lifnr: str, xblnr: str, amount: Decimal | str, bukrs: str = "1000",
                     waers: str = "EUR", at: datetime | None = None, status: str = "5",
                     committed: bool = True) -> tuple[str, str]:
        """MIRO: RBKP entered at `at` (CPUDT/CPUTM, wall time), written by the update task (late when
        not `committed` until `commit_updates()`); (BELNR, GJAHR)."""
        self._invoice_number += 1
        wall = self.wall(at)
        belnr, gjahr = str(self._invoice_number), str(wall.year)
        row = self.db.insert("RBKP", {"BELNR": belnr, "GJAHR": gjahr, "BLART": "RE", "BLDAT": _dats(wall.date()),
                                "BUDAT": _dats(wall.date()), "USNAM": "AP01", "TCODE": "MIRO",
                                "CPUDT": _dats(wall.date()), "CPUTM": wall.strftime("%H%M%S"), "XBLNR": xblnr,
                                "BUKRS": bukrs, "LIFNR": lifnr.zfill(10) if lifnr.isdigit() else lifnr,
                                "WAERS": waers, "RMWWR": Decimal(str(amount)), "RBSTAT": status},
                             committed=False, client=self.client)
        self._update([row], lambda: None, committed)
        return belnr, gjahr

    def set_invoice_status(self, belnr: str, gjahr: str, status: str) -> None:
        """A parked invoice is posted (RBSTAT '5'): CPUDT/CPUTM do not move."""
        for row in self.db.rows["RBKP"]:
            if row.values["BELNR"] == belnr and row.values["GJAHR"] == gjahr:
                row.values["RBSTAT"] = status
                return
        raise KeyError((belnr, gjahr))

    def deliveries(self) -> list[dict[str, Value]]:
        """ZMLC_DELIVERY as committed (what the write-back stored)."""
        return self.db.visible("ZMLC_DELIVERY", self.client)

    def fail_next(self, count: int, error_type: str = "SYSTEM_FAILURE") -> None:
        self.failures.extend([error_type] * count)

    def malform_next(self, count: int = 1) -> None:
        self.faults.malform_next(count)

    # -- wire --------------------------------------------------------------------------------------

    def create_app(self) -> Starlette:
        actions: dict[str, Callable[[SapAgentSim, Mapping[str, Any]], object]] = {
            "fail_next": lambda sim, args: ok(lambda: sim.fail_next(int(args.get("count", 1)),
                                                                  str(args.get("type", "SYSTEM_FAILURE")))),
            "malform_next": lambda sim, args: ok(lambda: sim.malform_next(int(args.get("count", 1)))),
            "commit_updates": lambda sim, args: {"committed": sim.commit_updates()},
        }
        return Starlette(routes=[
            action_route(self, actions),
            Route("/rfc/v1/info", self._info, methods=["GET"]),
            Route("/rfc/v1/call", self._call, methods=["POST"]),
            Route("/rfc/v1/sessions", self._open, methods=["POST"]),
            Route("/rfc/v1/sessions/{session}/call", self._call, methods=["POST"]),
            Route("/rfc/v1/sessions/{session}", self._close, methods=["DELETE"]),
        ])

    def _json(self, body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status, media_type="application/json",
                        headers={"X-MLC-RFC-Protocol": "1"})

    def _error(self, error_type: str, message: str = "", **extra: str) -> Response:
        body = {"type": error_type, "message": message or _MESSAGES.get(error_type, "")}
        body.update({k: v for k, v in extra.items() if v})
        return self._json({"error": body}, _STATUS[error_type])

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    async def _info(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error("AGENT_UNAUTHORIZED", "bearer token missing or wrong")
        if self.logon_refused:
            return self._error("RFC_LOGON_FAILURE")
        info = FUNCTIONS["RFC_SYSTEM_INFO"](self, Context(), {}, {})[0]["RFCSI_EXPORT"]
        return self._json({"protocol": "1", "agent": "sap-agent-simulator",
                           "system": {"sid": info["RFCSYSID"], "release": info["RFCSAPRL"], "client": self.client,
                                      "user": self.user, "host": info["RFCHOST"], "codepage": info["RFCCHARTYP"],
                                      "kernel": info["RFCKERNRL"], "timezone_offset": info["RFCTZONE"].strip()},
                           "pool": {"size": self.max_calls, "in_use": self.in_flight}})

    async def _open(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error("AGENT_UNAUTHORIZED", "bearer token missing or wrong")
        session = secrets.token_urlsafe(18)
        self.sessions[session] = Context()
        return self._json({"session": session, "idle_timeout": 300}, 201)

    async def _close(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error("AGENT_UNAUTHORIZED", "bearer token missing or wrong")
        if self.sessions.pop(str(request.path_params["session"]), None) is None:
            return self._error("SESSION_NOT_FOUND", "no such session")
        return Response(status_code=204, headers={"X-MLC-RFC-Protocol": "1"})

    async def _call(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error("AGENT_UNAUTHORIZED", "bearer token missing or wrong")
        session = request.path_params.get("session")
        context = Context()
        if session is not None:
            found = self.sessions.get(str(session))
            if found is None:
                return self._error("SESSION_NOT_FOUND", "no such session")
            context = found
        try:
            body = json.loads(await request.body())
            function = str(body["function"]).upper()
            imports = body.get("imports") or {}
            tables = body.get("tables") or {}
            if not isinstance(imports, dict) or not isinstance(tables, dict):
                raise ValueError("imports and tables are objects")
        except (ValueError, KeyError, TypeError) as exc:
            return self._error("BAD_REQUEST", f"not a protocol v1 call: {exc}")
        if self.in_flight >= self.max_calls:
            self.refused_busy += 1
            return self._error("RESOURCE_FAILURE")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
            return self._run(function, context, imports, tables)
        finally:
            self.in_flight -= 1

    def _run(self, function: str, context: Context, imports: dict[str, Any], tables: dict[str, Any]) -> Response:
        if self.logon_refused:
            return self._error("RFC_LOGON_FAILURE")
        if self.failures:
            return self._error(self.failures.pop(0))
        handler = FUNCTIONS.get(function)
        self.calls.append(function)
        if handler is None:
            return self._error("ABAP_APPLICATION_ERROR", f"Function module {function} not found",
                               key="FU_NOT_FOUND", message_class="FL", message_type="E", message_number="046",
                               message_v1=function)
        try:
            exports, out_tables = handler(self, context, imports, tables)
        except AbapException as exc:
            extra = {f"message_v{n + 1}": v for n, v in enumerate(exc.v)}
            return self._error("ABAP_APPLICATION_ERROR", exc.message, key=exc.key, message_class=exc.msg_class,
                               message_type="E" if exc.msg_class else "", message_number=exc.number, **extra)
        returned = exports.get("RETURN", out_tables.get("RETURN", []))
        rows = [returned] if isinstance(returned, dict) else list(returned)
        rows = [r for r in rows if any(str(v).strip() for k, v in r.items() if k != "ROW")]
        answer = json.dumps({"exports": exports, "tables": out_tables, "return": rows}, default=str)
        if self.faults.take_malformed():
            answer = answer[: max(1, len(answer) // 2)]
        return Response(answer, 200, media_type="application/json", headers={"X-MLC-RFC-Protocol": "1"})

