"""A faithful PeopleSoft HCM imitation: Integration Broker REST (Query Access Services, the
Employee Directory API), a small OAuth2 identity provider, and a control API.

Serve ``PsSim().create_app()`` in-process (``httpx.ASGITransport``) or with uvicorn. It keeps the
behaviours that make PeopleSoft hard to poll (erp-apis.md §2 and §5):

* ``GET /PSIGW/RESTListeningConnector/<NODE>/ExecuteQuery.v1/<OWNER>/<QUERY>/JSON/NONFILE`` with
  ``isconnectedquery=N``, ``maxrows`` (0 = no limit), ``json_resp=true`` and prompts as
  ``prompt_uniquepromptname=A,B&prompt_fieldvalue=a,b``. ``maxrows`` truncates **silently**:
  ``numrows`` is the number of rows returned, nothing says more exist.
* Column keys ``A.FIELD`` (query headings "unique field name") or ``FIELD`` (``column_style``).
* Datetimes are database-server wall time (``server_tz``) to the second, rendered
  ``YYYY-MM-DD-HH.MI.SS.FFFFFF`` by default; dates ``YYYY-MM-DD``; blank character columns are a
  single space; a NULL date or datetime is ``""``.
* Integration Broker errors are the ``IBResponse`` XML document with **HTTP 200** (inactive
  service operation, permission missing, unknown node); with the IB domain down the gateway
  answers **HTTP 500** (an HTML page) before any handler runs.
* Basic auth against the user profiles (a wrong password counts towards a lock after
  ``lock_after`` failures; a locked profile is refused even with the right password), or a
  bearer token issued by the simulated IdP (``/oauth2/v1/token``), expiring by the clock.
* Late commits (rows stamped now, visible later), effective-dated ``PS_JOB`` rows, and
  ``PS_PERSONAL_PHONE`` with no timestamp at all.

Choices where no source says what PeopleSoft does [I] (documented so adapters can be checked):

* Auth failure: HTTP 401 with an ``IBResponse`` body (MessageID 10110 bad credentials, 10111 locked
  profile, 10112 invalid or expired bearer token with ``WWW-Authenticate: Bearer error="invalid_token"``).
* Service operation inactive: HTTP 200 ``IBResponse`` MessageID 10502 naming the operation; user
  without the operation in a permission list: HTTP 200 MessageID 10503 naming user and operation.
* QAS faults: HTTP 200 with ``{"status": "fail", "data": {"faultcode": ..., "faultstring": ...}}``
  (unknown query or no query access ``QAS_QUERY_NOT_FOUND``, prompt errors ``QAS_PROMPT``, a
  format other than JSON ``QAS_FORMAT``, ``isconnectedquery=Y`` ``QAS_CONNECTED``).
* Employee Directory: ``GET .../employeedirectory/viewemployee/<name or EMPLID>`` answers
  ``{"employees": [{"emplid", "emplnamedisplay", "emplemail", "emplcellphone", "empljobtitle",
  "empldepartment"}]}``, an empty list when nobody matches.
* PeopleTools release: ``PSSTATUS.TOOLSREL`` through the public query ``XX_MLC_TOOLS``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import random
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ml_connector.sim.armed import ArmedFaults, OffsetClock
from ml_connector.sim.peoplesoft_data import (
    BLANK,
    DEPARTMENTS,
    JOBS,
    JobRow,
    OnboardingStep,
    PayRun,
    PhoneRow,
    ShiftRow,
    Tables,
    add_person,
    seed_tables,
)
from ml_connector.sim.peoplesoft_idp import TOKEN_PATH, FakeIdp, IdpClient
from ml_connector.sim.peoplesoft_queries import QUERIES, QueryDef

QAS_OPERATION = "QAS_EXECUTEQRY_REST_GET"
DIRECTORY_OPERATION = "HR_EMPLDIR_VIEWEMP_GET"
DEFAULT_DATETIME_FORMAT = "%Y-%m-%d-%H.%M.%S.%f"

ColumnStyle = Literal["prefixed", "plain"]


@dataclass
class PsUser:
    oprid: str
    password: str
    operations: frozenset[str] | None = None  # None: every service operation
    queries: frozenset[str] | None = None     # None: every public query (query security tree)
    locked: bool = False
    failures: int = 0


def default_users() -> tuple[PsUser, ...]:
    return (PsUser("MLC_REST", "mlc-pass"),
            PsUser("NOPERM", "welcome1", operations=frozenset()),
            PsUser("LOCKED", "welcome1", locked=True))


DEFAULT_CLIENTS = (IdpClient("mlc-connector", "idp-secret", frozenset({"psft.hcm.read"}), "MLC_REST"),)


@dataclass(frozen=True)
class ControlResult:
    key: str
    txn: str | None = None


class _Faults(ArmedFaults):
    """Truncated bodies, plus the Integration Broker's own failures."""

    def __init__(self) -> None:
        super().__init__()
        self.ib_errors = 0
        self.domain_down = False
        self.inactive: set[str] = set()


def ib_response(message_id: int, message: str, *, status_code: int = 20, message_set: int = 158) -> str:
    """The Integration Broker error document (erp-apis.md §2.3)."""
    return ('<?xml version="1.0"?>\n<IBResponse type="error"><DefaultTitle>Integration Broker Response'
            f'</DefaultTitle><StatusCode>{status_code}</StatusCode><MessageSet>{message_set}</MessageSet>'
            f'<MessageID>{message_id}</MessageID><DefaultMessage>{escape(message)}</DefaultMessage>'
            '<MessageParameters/></IBResponse>')


def _xml(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="text/xml", headers=dict(headers or {}))


def _fault(code: str, text: str) -> Response:
    return JSONResponse({"status": "fail", "data": {"faultcode": code, "faultstring": text}})


class PsSim:
    """The simulated PeopleSoft HCM instance: tables, clock, users, IdP, faults, control methods."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None, server_tz: str = "America/Chicago",
                 node: str = "PSFT_HR", column_style: ColumnStyle = "prefixed",
                 datetime_format: str = DEFAULT_DATETIME_FORMAT, seed: int = 7, employees: int = 12,
                 users: tuple[PsUser, ...] | None = None, clients: tuple[IdpClient, ...] = DEFAULT_CLIENTS,
                 token_ttl: int = 3600, lock_after: int = 3) -> None:
        self._clock = OffsetClock(clock, "PsSim")
        self.tz = ZoneInfo(server_tz)
        self.node = node
        self.column_style: ColumnStyle = column_style
        self.datetime_format = datetime_format
        self.users = {u.oprid: u for u in (users or default_users())}
        self.lock_after = lock_after
        self.idp = FakeIdp(clients, self.now_utc, token_ttl=token_ttl)
        self.rng = random.Random(seed)
        self.tables: Tables = seed_tables(self.rng, self.now_local(), employees=employees)
        self._faults = _Faults()
        self._pending: dict[str, Callable[[], None]] = {}
        self._txn = itertools.count(1)
        self._emplids = itertools.count(len(self.tables.people) + 1)
        self.requests = 0

    # -- clock -----------------------------------------------------------------------------------

    def now_utc(self) -> datetime:
        return self._clock.now()

    def now_local(self) -> datetime:
        """The database server's wall time to the second (LASTUPDDTTM precision)."""
        return self.now_utc().astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def today(self) -> date:
        return self.now_local().date()

    def set_clock_offset(self, seconds: float) -> None:
        self._clock.offset = timedelta(seconds=seconds)

    # -- faults ----------------------------------------------------------------------------------

    def domain_down(self, down: bool = True) -> None:
        """The IB application server domain is down: the gateway answers HTTP 500 to everything."""
        self._faults.domain_down = down

    def deactivate(self, operation: str) -> None:
        self._faults.inactive.add(operation)

    def activate(self, operation: str) -> None:
        self._faults.inactive.discard(operation)

    def fail_next_ib(self, count: int = 1) -> None:
        """The next `count` calls get an IBResponse error with HTTP 200 (a handler's OnError)."""
        self._faults.ib_errors += count

    def malform_next(self, count: int = 1) -> None:
        self._faults.malform_next(count)

    def expire_tokens(self) -> int:
        return self.idp.expire_tokens()

    # -- rendering -------------------------------------------------------------------------------

    def render(self, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return value.strftime(self.datetime_format)
        if isinstance(value, date):
            return value.isoformat()
        return value

    def heading(self, column: str) -> str:
        return f"A.{column}" if self.column_style == "prefixed" else column

    def parse_prompt(self, kind: str, text: str) -> Any:
        if kind == "datetime":
            return datetime.strptime(text, self.datetime_format).replace(microsecond=0)
        if kind == "date":
            return date.fromisoformat(text)
        return text

    # -- mutations (control) ---------------------------------------------------------------------

    def _write(self, apply: Callable[[], None], commit: bool) -> str | None:
        if commit:
            apply()
            return None
        txn = f"T{next(self._txn)}"
        self._pending[txn] = apply
        return txn

    def commit(self, txn: str) -> None:
        self._pending.pop(txn)()

    def add_employee(self, *, paygroup: str = "BW1", phone: str | None = None) -> ControlResult:
        emplid = f"KU{next(self._emplids):04d}"
        person = add_person(self.tables, self.rng, emplid, self.now_local(), paygroup=paygroup)
        if phone is not None:
            for row in self.tables.phones:
                if row.emplid == person.emplid and row.phone_type == "CELL":
                    row.phone = phone
        return ControlResult(emplid)

    def add_employees(self, count: int, *, paygroup: str = "BW1") -> list[str]:
        return [self.add_employee(paygroup=paygroup).key for _ in range(count)]

    def job_action(self, emplid: str | None, action: str, *, effdt: date | None = None, deptid: str | None = None,
                   commit: bool = True) -> ControlResult:
        """Insert a PS_JOB row (HIR for a new person, XFR, TER, ...) stamped now, effective `effdt`."""
        now = self.now_local()
        if emplid is None:
            emplid = f"KU{next(self._emplids):04d}"
            add_person(self.tables, self.rng, emplid, now)
            self.tables.jobs = [j for j in self.tables.jobs if j.emplid != emplid]
        effective = effdt or now.date()
        base = self.tables.current_job(emplid, effective)
        same_day = [j.effseq for j in self.tables.jobs if j.emplid == emplid and j.effdt == effective]
        row = JobRow(emplid, 0, effective, max(same_day) + 1 if same_day else 0, action,
                     {"HIR": "NEW", "XFR": "PRO", "TER": "RES"}.get(action, BLANK),
                     "I" if action == "TER" else "A", "T" if action == "TER" else "A",
                     deptid or (base.deptid if base else "10100"), base.jobcode if base else "RN001",
                     base.paygroup if base else "BW1", base.company if base else "HCM", now,
                     committed=commit, salary=base.salary if base else "52000")
        self.tables.jobs.append(row)
        txn = None if commit else f"T{next(self._txn)}"
        if txn:
            self._pending[txn] = lambda: setattr(row, "committed", True)
        return ControlResult(f"{emplid}/0/{effective.isoformat()}/{row.effseq}", txn)

    def post_payrun(self, paygroup: str = "BW1", *, commit: bool = True) -> ControlResult:
        """Confirm the open pay run of a pay group (PAY_CONFIRM_RUN -> Y), or a new one when none is open."""
        now = self.now_local()
        run = next((r for r in self.tables.payruns if r.paygroup == paygroup and r.pay_confirm_run == "N"), None)
        if run is None:
            last = max((r.pay_end_dt for r in self.tables.payruns if r.paygroup == paygroup),
                       default=now.date() - timedelta(days=14))
            run = PayRun("HCM", paygroup, last + timedelta(days=14), last + timedelta(days=19),
                         f"R{next(self._txn):05d}", "N", now)
            self.tables.payruns.append(run)
        chosen = run

        def apply() -> None:
            chosen.pay_confirm_run, chosen.lastupddttm = "Y", now

        return ControlResult(f"{run.company}/{run.paygroup}/{run.pay_end_dt.isoformat()}", self._write(apply, commit))

    def change_shift(self, emplid: str, hours: float, *, commit: bool = True) -> ControlResult:
        """Move an employee's next shift (or a new one tomorrow 07:00) by `hours`."""
        now = self.now_local()
        shift = next((s for s in self.tables.shifts if s.emplid == emplid), None)
        if shift is None:
            start = datetime.combine(now.date() + timedelta(days=1), datetime.min.time()) + timedelta(hours=7)
            shift = ShiftRow(emplid, f"S{next(self._txn):05d}", start, None, now)
            self.tables.shifts.append(shift)
        chosen = shift

        def apply() -> None:
            chosen.old_start_dttm = chosen.start_dttm
            chosen.start_dttm = chosen.start_dttm + timedelta(hours=hours)
            chosen.lastupddttm = now

        return ControlResult(chosen.shift_id, self._write(apply, commit))

    def set_phone(self, emplid: str, phone_type: str, phone: str, *, country_code: str = "1",
                  extension: str = BLANK, preferred: bool | None = None) -> None:
        """Insert or update a PS_PERSONAL_PHONE row (no timestamp moves anywhere)."""
        rows = self.tables.phones
        if preferred:
            for row in rows:
                if row.emplid == emplid:
                    row.pref_phone_flag = "N"
        for row in rows:
            if row.emplid == emplid and row.phone_type == phone_type:
                row.phone, row.country_code, row.extension = phone, country_code, extension
                if preferred is not None:
                    row.pref_phone_flag = "Y" if preferred else "N"
                return
        rows.append(PhoneRow(emplid, phone_type, country_code, phone, extension, "Y" if preferred else "N"))

    def delete_phone(self, emplid: str, phone_type: str) -> None:
        self.tables.phones = [r for r in self.tables.phones if not (r.emplid == emplid and r.phone_type == phone_type)]

    def add_step(self, emplid: str, descr: str, due: date) -> ControlResult:
        step = OnboardingStep(emplid, f"ONB{next(self._txn):05d}", descr, due, "O", self.now_local())
        self.tables.steps.append(step)
        return ControlResult(step.step_id)

    # -- the gateway -----------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> PsUser | Response:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            issued = self.idp.validate(credentials.strip())
            user = self.users.get(issued.client.subject) if issued else None
            if user is None:
                return _xml(ib_response(10112, "The OAuth2 access token is invalid or has expired."), 401,
                            {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return user
        if scheme.lower() == "basic":
            try:
                oprid, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                oprid, password = "", ""
            user = self.users.get(oprid)
            if user is not None and user.locked:
                return _xml(ib_response(10111, f"User ID {oprid} is locked. Contact your security administrator."),
                            401, {"WWW-Authenticate": 'Basic realm="PeopleSoft"'})
            if user is not None and secrets.compare_digest(user.password.encode(), password.encode()):
                user.failures = 0
                return user
            if user is not None:
                user.failures += 1
                user.locked = user.failures >= self.lock_after
        return _xml(ib_response(10110, "Invalid user ID or password for the service operation."), 401,
                    {"WWW-Authenticate": 'Basic realm="PeopleSoft"'})

    def _gate(self, request: Request, operation: str) -> PsUser | Response:
        self.requests += 1
        if self._faults.domain_down:
            return HTMLResponse("<html><body><h1>Integration Gateway</h1><p>Unable to connect to the "
                                "application server domain: the Integration Broker is not available.</p>"
                                "</body></html>", status_code=500)
        if request.path_params["node"] != self.node:
            return _xml(ib_response(10201, f"Node {request.path_params['node']} is not the default local node "
                                           "of this database."))
        user = self._authenticate(request)
        if isinstance(user, Response):
            return user
        if operation in self._faults.inactive:
            return _xml(ib_response(10502, f"Service Operation {operation} is inactive. Activate it in "
                                           "PeopleTools > Integration Broker > Service Operations."))
        if user.operations is not None and operation not in user.operations:
            return _xml(ib_response(10503, f"User {user.oprid} is not authorized to invoke Service Operation "
                                           f"{operation}. Add it to a permission list of the user's roles."))
        if self._faults.ib_errors:
            self._faults.ib_errors -= 1
            return _xml(ib_response(10010, "Integration Broker handler error: timeout waiting for the "
                                           "application server.", status_code=10))
        return user

    def _json(self, payload: object) -> Response:
        response = JSONResponse(payload)
        if self._faults.take_malformed():
            body = bytes(response.body)
            return Response(body[: max(1, len(body) // 2)], media_type="application/json")
        return response

    async def execute_query(self, request: Request) -> Response:
        user = self._gate(request, QAS_OPERATION)
        if isinstance(user, Response):
            return user
        params = request.query_params
        owner, name = request.path_params["owner"], request.path_params["query"]
        if request.path_params["fmt"] != "JSON" or request.path_params["mode"] != "NONFILE":
            return _fault("QAS_FORMAT", "This simulator serves only the JSON/NONFILE output format.")
        if params.get("isconnectedquery", "N").upper() != "N":
            return _fault("QAS_CONNECTED", f"Connected query {name} does not exist.")
        query = QUERIES.get(name)
        if owner != "PUBLIC" or query is None or (user.queries is not None and name not in user.queries):
            return _fault("QAS_QUERY_NOT_FOUND", f"Query {name} does not exist or user {user.oprid} has no "
                                                 "access to it through the query security tree.")
        prompts = self._prompts(query, params.get("prompt_uniquepromptname"), params.get("prompt_fieldvalue"))
        if isinstance(prompts, Response):
            return prompts
        try:
            maxrows = int(params.get("maxrows", "0"))
        except ValueError:
            return _fault("QAS_PROMPT", "maxrows must be a number")
        rows = query.run(self.tables, prompts, self.today())
        if maxrows > 0:
            rows = rows[:maxrows]  # silently
        out = [{"attr:rownumber": n, **{self.heading(k): self.render(v) for k, v in row.items()}}
               for n, row in enumerate(rows, start=1)]
        return self._json({"status": "success", "data": {"query": {"numrows": len(out), "queryname": name,
                                                                     "rows": out}}})

    def _prompts(self, query: QueryDef, names: str | None, values: str | None) -> dict[str, Any] | Response:
        given_names = [n for n in (names or "").split(",") if n]
        given_values = (values or "").split(",") if values is not None else []
        if len(given_names) != len(given_values) and given_names:
            return _fault("QAS_PROMPT", "The number of prompt values does not match the number of prompt names.")
        given = dict(zip(given_names, given_values, strict=False))
        prompts: dict[str, Any] = {}
        for prompt, kind in query.prompts.items():
            if prompt not in given:
                return _fault("QAS_PROMPT", f"Prompt {prompt} of query {query.name} requires a value.")
            try:
                prompts[prompt] = self.parse_prompt(kind, given[prompt])
            except ValueError:
                return _fault("QAS_PROMPT", f"Invalid value for prompt {prompt} ({kind}).")
        return prompts

    async def view_employee(self, request: Request) -> Response:
        user = self._gate(request, DIRECTORY_OPERATION)
        if isinstance(user, Response):
            return user
        wanted = request.path_params["name"].strip().lower()
        found = []
        for person in self.tables.people.values():
            if wanted not in (person.emplid.lower(), person.name_display.lower()):
                continue
            job = self.tables.current_job(person.emplid, self.today())
            cell = next((p for p in self.tables.phones if p.emplid == person.emplid and p.phone_type == "CELL"), None)
            found.append({"emplid": person.emplid, "emplnamedisplay": person.name_display, "emplemail": person.email,
                          "emplcellphone": cell.phone if cell else BLANK,
                          "empljobtitle": self._job_title(job), "empldepartment": self._dept(job)})
        return self._json({"employees": found})

    @staticmethod
    def _job_title(job: JobRow | None) -> str:
        return dict(JOBS).get(job.jobcode, BLANK) if job else BLANK

    @staticmethod
    def _dept(job: JobRow | None) -> str:
        return dict(DEPARTMENTS).get(job.deptid, BLANK) if job else BLANK

    def create_app(self) -> Starlette:
        from ml_connector.sim.peoplesoft_control import control_routes

        base = "/PSIGW/RESTListeningConnector/{node}"
        return Starlette(routes=[
            Route(base + "/ExecuteQuery.v1/{owner}/{query}/{fmt}/{mode}", self.execute_query, methods=["GET"]),
            Route(base + "/employeedirectory/viewemployee/{name}", self.view_employee, methods=["GET"]),
            Route(TOKEN_PATH, self.idp.token, methods=["POST"]),
            *control_routes(self),
        ])
