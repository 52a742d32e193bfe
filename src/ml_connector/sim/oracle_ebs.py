"""A faithful Oracle E-Business Suite R12.2 imitation: ISG REST, ORDS AutoREST, and a control API.

Serve ``EbsSim().create_app()`` in-process (``httpx.ASGITransport``) or with uvicorn. It keeps the
behaviours that make EBS hard to poll, because an adapter that passes against an easier server
fails against a real one:

* ICX session tokens that expire by age; an expired or unknown token gets HTTP 401.
* Application context honoured from ONE place only (``context_mode``: the ``RESTHeader`` body
  block, ``ctx_*`` query parameters, or ``ctx_*`` headers); the other places are ignored. Missing
  context means no MOAC context: multi-org rows come back empty, not as an error.
* ``_ITEM`` collections that are an object for one row and a list for several.
* Optionally (``json_style="bridged"``) the JSON of an XML-to-JSON bridge in front of ISG/ORDS:
  every scalar a string, null and empty tables as ``{"@xsi:nil": "true"}`` (oracle_ebs_bridge).
* Invoice validation that moves only the distributions (the service reports the greater date);
  a supplier's new bank account that moves only IBY's rows, not the supplier site.
* Future-dated hires, late commits, row locks, web-tier 502/503, truncated payloads.
* ORDS rendering server-local DATEs with a ``Z`` and comparing ``$date`` filters the same way.

Seeded users (``DEFAULT_USERS``): ``SYSADMIN``/``sysadmin`` (every responsibility and grant),
``ISGUSER``/``welcome1`` (PAYABLES_MANAGER/SQLAP: org 204; PURCHASING_SUPER_USER/PO: orgs 204
and 458; US_HRMS_MANAGER/PER; every custom method; ORDS privilege), ``NOGRANT``/``welcome1``
(PAYABLES_MANAGER only, no method grants, no ORDS privilege). ORDS objects live under
``/ords/xxmlc/`` (``ap_invoices``, ``po_headers``, ``people``).

Control: the public methods below (``validate_invoice``, ``add_invoice``, ``approve_po``, ``hire``,
``change_phone``, ``change_supplier_site``, ``change_bank_account``, ``commit``, ``lock``/``unlock``,
``fail_next``, ``malform_next``,
``expire_sessions``, ``set_clock_offset``, ``audit_rows``), and the same over HTTP at
``POST /_sim/<name>`` (see ``oracle_ebs_control``). A mutation called with ``commit=False`` fixes
its LAST_UPDATE_DATE now and stays invisible until ``commit(txn)``: a late commit.

Choices where no source says what EBS does (documented so adapters can be checked against them):

* Auth failure (bad Basic, or unknown/expired/logged-out token): HTTP 401,
  ``WWW-Authenticate: Basic realm="Oracle E-Business Suite"``, JSON body
  ``{"ISGServiceFault": {"Code": "ISG_AUTHENTICATION_FAILED" | "ISG_INVALID_SESSION", ...}}``.
  A ``Cookie`` carrying the token name takes precedence over Basic: a dead token is a 401 even
  when Basic credentials are also sent.
* Method not granted to the user: HTTP 500 with ``ISGServiceFault`` code ``ISG_USER_NOT_AUTHORIZED``.
* Unknown alias or method: HTTP 404 with an HTML body from the web tier.
* Non-JSON request body: HTTP 400 ``ISGServiceFault`` ``ISG_INVALID_REQUEST``; a content type other
  than ``application/json``: HTTP 415.
* Zero rows: the table parameter is an empty object (``"X_INVOICES": {}``).
* ``P_SINCE`` missing: zero rows (the package compares ``>= NULL``); a ``P_SINCE`` not in
  ``YYYY-MM-DDTHH:MM:SS`` form (e.g. with an offset): ``X_RETURN_STATUS`` "E", ORA-01861.
  The comparison is inclusive (``>=``). ``P_MAX_ROWS`` missing: 100; capped at 1000.
* A locked row within the requested page: ``X_RETURN_STATUS`` "E" naming the record, no rows.
* People (PER_ALL_PEOPLE_F) are not multi-org striped, so they come back without MOAC context;
  every date-track row whose LAST_UPDATE_DATE qualifies is returned. A phone change updates
  PER_PHONES only, so it does not surface in ``get_changed_people``. ``P_PERSON_ID``, when sent,
  narrows ``get_changed_people`` to one person. With ``nested_phones=True`` its rows carry the
  person's current phones nested (``"PHONES": {"PHONES_ITEM": ...}``, one phone as a bare object,
  none as ``{}``), as shops whose package returns the person and phones in one row do.
* ``get_changed_supplier_sites`` (``X_SITES``): one row per supplier site (AP_SUPPLIER_SITES_ALL,
  MOAC-striped by ORG_ID) with its supplier and its current bank account (IBY), the account
  number masked (``MASKED_BANK_ACCOUNT_NUM``); its LAST_UPDATE_DATE is the greatest of the site,
  supplier and bank account rows, so a new account (which leaves the site untouched) surfaces.
* ``record_delivery`` inserts one audit row per call (no de-duplication, as a plain INSERT).
  P_SOURCE_TABLE, P_SOURCE_ID and P_STATUS are required, and so is every optional column named in
  ``audit_required`` (by default ``message_sid``: the shop's audit table has MESSAGE_SID NOT
  NULL); a missing one is ``X_RETURN_STATUS`` "E" "<P_NAME> is required.".
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ml_connector.sim.armed import ArmedFaults, OffsetClock
from ml_connector.sim.oracle_ebs_bridge import bridged
from ml_connector.sim.oracle_ebs_config import (
    ALL_METHODS,
    DEFAULT_USERS,
    RESPONSIBILITIES,
    EbsUser,
    Responsibility,
    ServiceNames,
)
from ml_connector.sim.oracle_ebs_control import control_routes
from ml_connector.sim.oracle_ebs_data import (
    BUSINESS_GROUP_ID,
    END_OF_TIME,
    AuditRow,
    BankAccount,
    Distribution,
    EbsTables,
    Hold,
    Invoice,
    PersonRow,
    Phone,
    seed_tables,
)
from ml_connector.sim.oracle_ebs_isg import isg_endpoint
from ml_connector.sim.oracle_ebs_ords import ords_endpoint

__all__ = [
    "ALL_METHODS",
    "DEFAULT_USERS",
    "RESPONSIBILITIES",
    "ControlResult",
    "EbsSim",
    "EbsUser",
    "Responsibility",
    "ServiceNames",
    "Session",
]

ContextMode = Literal["body", "query", "header"]
DateFormat = Literal["iso_offset", "naive"]
JsonStyle = Literal["native", "bridged"]
LockTable = Literal["po", "invoice"]


@dataclass(frozen=True)
class ControlResult:
    """What a control action did: the row it touched, and the transaction id if left uncommitted."""

    key: int
    txn: str | None = None


@dataclass
class Session:
    """An ICX session behind an ISG access token; remembers the last application context."""

    token: str
    user: EbsUser
    created_at: datetime
    context: dict[str, str] = field(default_factory=dict)


class EbsSim:
    """The simulated EBS instance: state, clock, sessions, fault plan and control methods."""

    def __init__(
        self,
        *,
        session_ttl: float = 1800,
        clock: Callable[[], datetime] | None = None,
        server_tz: str = "America/New_York",
        seed: int = 11,
        context_mode: ContextMode = "body",
        date_format: DateFormat = "iso_offset",
        names: ServiceNames | None = None,
        users: tuple[EbsUser, ...] = DEFAULT_USERS,
        cookie_name: str = "VIS",
        ebs_version: str = "12.2.10",
        ords_schema: str = "xxmlc",
        json_style: JsonStyle = "native",
        audit_required: frozenset[str] = frozenset({"message_sid"}),
        nested_phones: bool = False,
    ) -> None:
        if context_mode not in ("body", "query", "header"):
            raise ValueError(f"context_mode must be body, query or header, not {context_mode!r}")
        if date_format not in ("iso_offset", "naive"):
            raise ValueError(f"date_format must be iso_offset or naive, not {date_format!r}")
        if json_style not in ("native", "bridged"):
            raise ValueError(f"json_style must be native or bridged, not {json_style!r}")
        self.session_ttl = session_ttl
        self.json_style: JsonStyle = json_style
        self.audit_required = frozenset(audit_required)
        self.nested_phones = nested_phones
        self._clock = OffsetClock(clock, "EbsSim")
        self.tz = ZoneInfo(server_tz)
        self.context_mode: ContextMode = context_mode
        self.date_format: DateFormat = date_format
        self.names = names or ServiceNames()
        self.users: Mapping[str, EbsUser] = MappingProxyType({u.name.upper(): u for u in users})
        self.cookie_name = cookie_name
        self.ebs_version = ebs_version
        self.ords_schema = ords_schema
        self.rng = random.Random(seed)
        self.tables: EbsTables = seed_tables(self.rng, self.now_local())
        self._sessions: dict[str, Session] = {}
        self._pending: dict[str, Callable[[], None]] = {}
        self._txn_ids = itertools.count(1)
        self._instance_ids = itertools.count(self.rng.randrange(100000, 900000))
        self._locks: dict[tuple[LockTable, int], str] = {}
        self._faults = ArmedFaults()

    # -- clock -----------------------------------------------------------------------------------

    def now_utc(self) -> datetime:
        """The injected clock plus the control offset; naive clocks are rejected."""
        return self._clock.now()

    def now_local(self) -> datetime:
        """SYSDATE: server-local wall time, no zone, whole seconds (an Oracle DATE)."""
        return self.now_utc().astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def today(self) -> date:
        return self.now_local().date()

    def set_clock_offset(self, seconds: float) -> None:
        """Shift the server's clock (sessions age and SYSDATE moves with it)."""
        self._clock.offset = timedelta(seconds=seconds)

    def format_isg_date(self, value: datetime | None) -> str | None:
        """Render a DATE as ISG does, per ``date_format`` (the real format is undocumented)."""
        if value is None:
            return None
        if self.date_format == "naive":
            return value.strftime("%Y-%m-%d %H:%M:%S")
        offset = value.replace(tzinfo=self.tz).utcoffset() or timedelta()
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        hh, mm = divmod(abs(minutes), 60)
        return f"{value.strftime('%Y-%m-%dT%H:%M:%S')}.000{sign}{hh:02d}:{mm:02d}"

    def next_instance_id(self) -> str:
        return str(next(self._instance_ids))

    # -- sessions --------------------------------------------------------------------------------

    def check_password(self, user_name: str, password: str) -> EbsUser | None:
        user = self.users.get(user_name.upper())
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            return None
        return user

    def open_session(self, user: EbsUser) -> Session:
        token = secrets.token_urlsafe(24)
        session = Session(token, user, self.now_utc())
        self._sessions[token] = session
        return session

    def session(self, token: str) -> Session | None:
        """The live session for ``token``; an aged one is dropped (ICX session timeout)."""
        session = self._sessions.get(token)
        if session is None:
            return None
        if (self.now_utc() - session.created_at).total_seconds() >= self.session_ttl:
            del self._sessions[token]
            return None
        return session

    def close_session(self, token: str) -> bool:
        return self._sessions.pop(token, None) is not None

    def session_count(self) -> int:
        return len(self._sessions)

    def expire_sessions(self) -> int:
        """Kill every session now (an ICX purge or an oacore restart); returns how many."""
        count = len(self._sessions)
        self._sessions.clear()
        return count

    # -- fault plan ------------------------------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """The web tier answers the next ``count`` ISG/ORDS calls with ``status`` (502 or 503)."""
        if status not in (502, 503):
            raise ValueError("status must be 502 or 503")
        self._faults.fail_next(count, status)

    def take_web_fault(self) -> int | None:
        return self._faults.take_status()

    def malform_next(self, count: int = 1) -> None:
        """Truncate the JSON body of the next ``count`` successful ISG/ORDS responses."""
        self._faults.malform_next(count)

    def take_malformed(self) -> bool:
        return self._faults.take_malformed()

    def lock(self, table: LockTable, key: int, user: str = "JSMITH") -> None:
        """A user holds the row open in a form (PO in approval, invoice on hold)."""
        if table not in ("po", "invoice"):
            raise ValueError("table must be po or invoice")
        self._check_exists(table, key)
        self._locks[(table, key)] = user

    def unlock(self, table: LockTable, key: int) -> None:
        self._locks.pop((table, key), None)

    def locked_by(self, table: LockTable, key: int) -> str | None:
        return self._locks.get((table, key))

    def _check_exists(self, table: LockTable, key: int) -> None:
        rows: Mapping[int, object] = self.tables.pos if table == "po" else self.tables.invoices
        if key not in rows:
            raise KeyError(f"no {table} {key}")

    # -- transactions ----------------------------------------------------------------------------

    def _run(self, change: Callable[[], None], commit: bool) -> str | None:
        """Apply ``change`` now, or keep it pending: its LAST_UPDATE_DATE is already fixed."""
        if commit:
            change()
            return None
        txn = f"txn-{next(self._txn_ids)}"
        self._pending[txn] = change
        return txn

    def commit(self, txn: str) -> None:
        """Make a pending change visible (a concurrent program's late COMMIT)."""
        self._pending.pop(txn)()

    def pending(self) -> list[str]:
        return list(self._pending)

    # -- control actions -------------------------------------------------------------------------

    def validate_invoice(
        self, invoice_id: int, *, hold: str | None = None, release_holds: bool = False, commit: bool = True
    ) -> ControlResult:
        """Run Invoice Validation: distributions become 'A' (or 'T' when a hold stays or is placed).

        The header's LAST_UPDATE_DATE does not move: that is the point.
        """
        if invoice_id not in self.tables.invoices:
            raise KeyError(f"no invoice {invoice_id}")
        stamp = self.now_local()
        hold_id = self.tables.next_id("hold", 3001) if hold else None

        def change() -> None:
            t = self.tables
            if release_holds:
                for h in t.holds:
                    if h.invoice_id == invoice_id and h.release_lookup_code is None:
                        h.release_lookup_code, h.last_update_date = "VARIANCE CORRECTED", stamp
            if hold and hold_id is not None:
                t.holds.append(Hold(hold_id, invoice_id, hold, None, stamp))
            on_hold = t.hold_count(t.invoices[invoice_id]) > 0
            for d in t.distributions:
                if d.invoice_id == invoice_id:
                    d.match_status_flag, d.last_update_date = ("T" if on_hold else "A"), stamp

        return ControlResult(invoice_id, self._run(change, commit))

    def add_invoice(
        self, *, org_id: int = 204, amount: float = 1000.0, vendor_id: int = 5003, commit: bool = True
    ) -> ControlResult:
        """Import an invoice (Payables Open Interface): never validated, one distribution."""
        stamp = self.now_local()
        inv_id = self.tables.next_id("invoice", 10101)
        dist_id = self.tables.next_id("dist", 700001)

        def change() -> None:
            self.tables.invoices[inv_id] = Invoice(
                inv_id, f"INV-{inv_id - 9000}", vendor_id, vendor_id + 2000, org_id, amount, "USD",
                stamp.replace(hour=0, minute=0, second=0), "STANDARD", "N", "REQUIRED", None, None,
                1318, stamp, stamp,
            )
            self.tables.distributions.append(Distribution(dist_id, inv_id, 1, amount, None, stamp))

        return ControlResult(inv_id, self._run(change, commit))

    def approve_po(self, po_header_id: int, *, commit: bool = True) -> ControlResult:
        """The approval workflow finishes: the header becomes APPROVED and its date moves."""
        if po_header_id not in self.tables.pos:
            raise KeyError(f"no PO {po_header_id}")
        stamp = self.now_local()

        def change() -> None:
            po = self.tables.pos[po_header_id]
            po.authorization_status, po.approved_flag = "APPROVED", "Y"
            po.approved_date = po.last_update_date = stamp

        return ControlResult(po_header_id, self._run(change, commit))

    def hire(
        self,
        first_name: str,
        last_name: str,
        *,
        start: date | None = None,
        mobile: str | None = None,
        commit: bool = True,
    ) -> ControlResult:
        """Hire someone; ``start`` in the future makes a row that turns current with no update."""
        stamp = self.now_local()
        start_at = datetime.combine(start or stamp.date(), time())
        person_id = self.tables.next_id("person", 201)
        phone_id = self.tables.next_id("phone", 9001) if mobile is not None else None

        def change() -> None:
            self.tables.people.append(PersonRow(
                person_id, start_at, END_OF_TIME, f"E{person_id}", f"{last_name}, {first_name}",
                first_name, last_name, None, "Y", BUSINESS_GROUP_ID, stamp, stamp,
            ))
            if phone_id is not None:
                self.tables.phones.append(Phone(phone_id, person_id, "M", mobile, start_at, None, stamp))

        return ControlResult(person_id, self._run(change, commit))

    def change_phone(
        self, person_id: int, phone_type: str, number: str | None, *, commit: bool = True
    ) -> ControlResult:
        """Update (or add) a person's current phone of a type; ``None`` end-dates it yesterday."""
        if not any(p.person_id == person_id for p in self.tables.people):
            raise KeyError(f"no person {person_id}")
        stamp = self.now_local()
        midnight = datetime.combine(stamp.date(), time())
        current = next(
            (ph for ph in self.tables.phones
             if ph.parent_id == person_id and ph.phone_type == phone_type and ph.date_to is None),
            None,
        )
        phone_id = current.phone_id if current else self.tables.next_id("phone", 9001)

        def change() -> None:
            if current is None:
                if number is not None:
                    self.tables.phones.append(Phone(phone_id, person_id, phone_type, number, midnight,
                                                    None, stamp))
                return
            if number is None:
                current.date_to = midnight - timedelta(days=1)
            else:
                current.phone_number = number
            current.last_update_date = stamp

        return ControlResult(phone_id, self._run(change, commit))

    def change_supplier_site(
        self, vendor_site_id: int, *, address_line1: str | None = None, city: str | None = None,
        commit: bool = True,
    ) -> ControlResult:
        """A supplier site's remit-to address is changed (the site row and its date move)."""
        if vendor_site_id not in self.tables.sites:
            raise KeyError(f"no supplier site {vendor_site_id}")
        stamp = self.now_local()

        def change() -> None:
            site = self.tables.sites[vendor_site_id]
            site.address_line1 = address_line1 if address_line1 is not None else site.address_line1
            site.city = city if city is not None else site.city
            site.last_update_date = stamp

        return ControlResult(vendor_site_id, self._run(change, commit))

    def change_bank_account(
        self, vendor_site_id: int, *, bank_name: str, account_num: str, commit: bool = True
    ) -> ControlResult:
        """A new bank account is assigned to a supplier site: the old assignment is end-dated and a
        new IBY row added; the site row is not touched (its LAST_UPDATE_DATE does not move)."""
        if vendor_site_id not in self.tables.sites:
            raise KeyError(f"no supplier site {vendor_site_id}")
        stamp = self.now_local()
        account_id = self.tables.next_id("bank_account", 40001)

        def change() -> None:
            for account in self.tables.bank_accounts:
                if account.vendor_site_id == vendor_site_id and account.end_date is None:
                    account.end_date, account.last_update_date = stamp, stamp
            self.tables.bank_accounts.append(
                BankAccount(account_id, vendor_site_id, bank_name, account_num, stamp, None, stamp))

        return ControlResult(account_id, self._run(change, commit))

    def record_delivery(
        self,
        *,
        user: str,
        source_table: str,
        source_id: str,
        message_sid: str | None,
        status: str,
        error_code: str | None,
        sent_at: datetime | None,
        final_at: datetime | None,
    ) -> int:
        """The write-back package's INSERT into the shop's audit table."""
        audit_id = self.tables.next_id("audit", 1)
        self.tables.audit.append(AuditRow(audit_id, source_table, source_id, message_sid, status,
                                          error_code, sent_at, final_at, user, self.now_local()))
        return audit_id

    def audit_rows(self) -> list[dict[str, object]]:
        """The write-back rows, dates as ISO strings (server-local, no zone)."""
        return [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(row).items()}
            for row in self.tables.audit
        ]

    # -- the app ---------------------------------------------------------------------------------

    def json_response(
        self, payload: object, status: int = 200, media_type: str = "application/json"
    ) -> Response:
        """Serialise (through the XML bridge when ``json_style`` is "bridged"), truncating the body
        when the malformed-payload fault is armed."""
        if self.json_style == "bridged":
            payload = bridged(payload)
        body = json.dumps(payload, separators=(",", ":"))
        if status == 200 and self.take_malformed():
            body = body[: max(1, len(body) // 2)]
        return Response(body, status_code=status, media_type=media_type)

    def create_app(self) -> Starlette:
        """The ASGI app: ``/webservices/rest/...``, ``/ords/...`` and ``/_sim/...``."""
        async def isg(request: Request) -> Response:
            return await isg_endpoint(self, request)

        async def ords(request: Request) -> Response:
            return await ords_endpoint(self, request)

        all_methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        routes = [
            Route("/webservices/rest/{rest:path}", isg, methods=all_methods),
            Route("/ords/{rest:path}", ords, methods=all_methods),
            *control_routes(self),
        ]
        return Starlette(routes=routes)
