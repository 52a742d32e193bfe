"""The shop's custom PL/SQL services, as ISG would run them (erp-apis §1.6).

Each service reads ``InputParameters`` (by the deployed parameter names), runs under an
``AppContext`` and returns the OUT parameters. Table OUT parameters are serialised the ISG way:
``{"X_T": {"X_T_ITEM": [...]}}``, an object instead of a list when there is exactly one row, and
``{}`` when there are none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from ml_connector.sim.oracle_ebs_config import AppContext
from ml_connector.sim.oracle_ebs_data import Invoice, PersonRow, Phone, PurchaseOrder, SupplierSite

if TYPE_CHECKING:
    from ml_connector.sim.oracle_ebs import EbsSim

DEFAULT_MAX_ROWS = 100
MAX_ROWS_CAP = 1000

_DATE_INPUT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_ORA_01861 = "ORA-01861: literal does not match format string"
_ORA_06502 = "ORA-06502: PL/SQL: numeric or value error: character to number conversion error"
_ORA_00054 = "ORA-00054: resource busy and acquire with NOWAIT specified or timeout expired"

Json = object
T = TypeVar("T")


class ServiceError(Exception):
    """The package returned ``X_RETURN_STATUS`` "E" with this ``X_MSG_DATA``."""


def item_table(name: str, rows: Sequence[Json]) -> dict[str, Json]:
    """The ``_ITEM`` quirk: one row is an object, several a list, none an empty object."""
    if not rows:
        return {}
    return {f"{name}_ITEM": rows[0] if len(rows) == 1 else list(rows)}


class Params:
    """InputParameters read by logical name, converted as PL/SQL would convert them."""

    def __init__(self, names: Mapping[str, str], raw: Mapping[str, object]) -> None:
        self._names = names
        self._raw = raw

    def _get(self, logical: str) -> object | None:
        value = self._raw.get(self._names[logical])
        return None if value is None or value == "" else value

    def text(self, logical: str) -> str | None:
        value = self._get(logical)
        return None if value is None else str(value)

    def required(self, logical: str) -> str:
        value = self.text(logical)
        if value is None:
            raise ServiceError(f"{self._names[logical]} is required.")
        return value

    def integer(self, logical: str) -> int | None:
        value = self._get(logical)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str | float):
            raise ServiceError(_ORA_06502)
        try:
            number = float(value)
        except ValueError:
            raise ServiceError(_ORA_06502) from None
        if not number.is_integer():
            raise ServiceError(_ORA_06502)
        return int(number)

    def date(self, logical: str) -> datetime | None:
        """A DATE in ``YYYY-MM-DDTHH:MM:SS``, server-local; anything else is ORA-01861."""
        value = self._get(logical)
        if value is None:
            return None
        if not isinstance(value, str) or not _DATE_INPUT.fullmatch(value):
            raise ServiceError(_ORA_01861)
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise ServiceError(_ORA_01861) from None


@dataclass(frozen=True)
class _Window:
    since: datetime | None
    max_rows: int
    offset: int


def _window(p: Params) -> _Window:
    max_rows = p.integer("max_rows")
    offset = p.integer("offset") or 0
    return _Window(p.date("since"), min(DEFAULT_MAX_ROWS if max_rows is None else max_rows, MAX_ROWS_CAP),
                   max(offset, 0))


def _page(rows: list[tuple[datetime, tuple[int, int], T]], w: _Window) -> list[T]:
    """``WHERE change >= :since ORDER BY change, id OFFSET :o ROWS FETCH NEXT :n ROWS ONLY``."""
    if w.since is None or w.max_rows <= 0:
        return []
    since = w.since
    chosen = sorted((r for r in rows if r[0] >= since), key=lambda r: (r[0], r[1]))
    return [r[2] for r in chosen[w.offset: w.offset + w.max_rows]]


def _orgs(ctx: AppContext, p: Params) -> frozenset[int]:
    org = p.integer("org_id")
    return ctx.orgs if org is None else ctx.orgs & {org}


def _changed_invoices(sim: EbsSim, ctx: AppContext, p: Params) -> dict[str, Json]:
    t = sim.tables
    orgs = _orgs(ctx, p)
    rows = [(t.invoice_change_date(i), (i.invoice_id, 0), i) for i in t.invoices.values() if i.org_id in orgs]
    page = _page(rows, _window(p))
    for inv in page:
        user = sim.locked_by("invoice", inv.invoice_id)
        if user is not None:
            raise ServiceError(f"Invoice {inv.invoice_num} is locked by user {user}. {_ORA_00054}")
    return {"X_INVOICES": item_table("X_INVOICES", [_invoice_item(sim, i) for i in page])}


def _invoice_item(sim: EbsSim, inv: Invoice) -> dict[str, Json]:
    t, d = sim.tables, sim.format_isg_date
    return {
        "INVOICE_ID": inv.invoice_id, "INVOICE_NUM": inv.invoice_num, "VENDOR_ID": inv.vendor_id,
        "VENDOR_SITE_ID": inv.vendor_site_id, "ORG_ID": inv.org_id, "INVOICE_AMOUNT": inv.invoice_amount,
        "INVOICE_CURRENCY_CODE": inv.invoice_currency_code, "INVOICE_DATE": d(inv.invoice_date),
        "INVOICE_TYPE_LOOKUP_CODE": inv.invoice_type_lookup_code,
        "PAYMENT_STATUS_FLAG": inv.payment_status_flag, "WFAPPROVAL_STATUS": inv.wfapproval_status,
        "APPROVAL_STATUS": t.approval_status(inv), "HOLD_COUNT": t.hold_count(inv),
        "CANCELLED_DATE": d(inv.cancelled_date), "LAST_UPDATE_DATE": d(t.invoice_change_date(inv)),
    }


def _changed_pos(sim: EbsSim, ctx: AppContext, p: Params) -> dict[str, Json]:
    orgs = _orgs(ctx, p)
    rows = [(po.last_update_date, (po.po_header_id, 0), po)
            for po in sim.tables.pos.values() if po.org_id in orgs]
    page = _page(rows, _window(p))
    for po in page:
        user = sim.locked_by("po", po.po_header_id)
        if user is not None:
            raise ServiceError(f"Purchase order {po.segment1} is locked by user {user}. {_ORA_00054}")
    return {"X_POS": item_table("X_POS", [_po_item(sim, po) for po in page])}


def _po_item(sim: EbsSim, po: PurchaseOrder) -> dict[str, Json]:
    d = sim.format_isg_date
    return {
        "PO_HEADER_ID": po.po_header_id, "SEGMENT1": po.segment1, "TYPE_LOOKUP_CODE": po.type_lookup_code,
        "AUTHORIZATION_STATUS": po.authorization_status, "APPROVED_FLAG": po.approved_flag,
        "APPROVED_DATE": d(po.approved_date), "AGENT_ID": po.agent_id, "VENDOR_ID": po.vendor_id,
        "ORG_ID": po.org_id, "CURRENCY_CODE": po.currency_code, "REVISION_NUM": po.revision_num,
        "CLOSED_CODE": po.closed_code, "CANCEL_FLAG": po.cancel_flag,
        "LAST_UPDATE_DATE": d(po.last_update_date),
    }


def _changed_supplier_sites(sim: EbsSim, ctx: AppContext, p: Params) -> dict[str, Json]:
    """Supplier sites whose site, supplier or bank account changed since (MOAC-striped by org)."""
    t = sim.tables
    orgs = _orgs(ctx, p)
    rows = [(t.site_change_date(site), (site.vendor_site_id, 0), site) for site in t.sites.values()
            if site.org_id in orgs]
    page = _page(rows, _window(p))
    return {"X_SITES": item_table("X_SITES", [_site_item(sim, site) for site in page])}


def _masked(number: str) -> str:
    """IBY's MASKED_BANK_ACCOUNT_NUM: all but the last four digits hidden."""
    return "X" * max(0, len(number) - 4) + number[-4:]


def _site_item(sim: EbsSim, site: SupplierSite) -> dict[str, Json]:
    t, d = sim.tables, sim.format_isg_date
    supplier = t.suppliers[site.vendor_id]
    account = t.site_account(site)
    return {
        "VENDOR_ID": supplier.vendor_id, "VENDOR_NAME": supplier.vendor_name, "SEGMENT1": supplier.segment1,
        "VENDOR_SITE_ID": site.vendor_site_id, "VENDOR_SITE_CODE": site.vendor_site_code, "ORG_ID": site.org_id,
        "ADDRESS_LINE1": site.address_line1, "CITY": site.city, "COUNTRY": site.country,
        "PAY_SITE_FLAG": site.pay_site_flag,
        "EXT_BANK_ACCOUNT_ID": account.ext_bank_account_id if account else None,
        "BANK_NAME": account.bank_name if account else None,
        "MASKED_BANK_ACCOUNT_NUM": _masked(account.bank_account_num) if account else None,
        "BANK_ACCOUNT_START_DATE": d(account.start_date) if account else None,
        "LAST_UPDATE_DATE": d(t.site_change_date(site)),
    }


def _changed_people(sim: EbsSim, ctx: AppContext, p: Params) -> dict[str, Json]:
    """Every date-track row changed since; PER_ALL_PEOPLE_F is not striped by operating unit.

    ``P_PERSON_ID``, when given, narrows the rows to one person (the package's optional filter).
    With ``nested_phones`` each row carries the person's phones current today as a nested table.
    """
    person_id = p.integer("person_id")
    rows = [
        (r.last_update_date, (r.person_id, r.effective_start_date.toordinal()), r)
        for r in sim.tables.people if person_id is None or r.person_id == person_id
    ]
    page = _page(rows, _window(p))
    items: list[Json] = []
    today = sim.today()
    for r in page:
        item = _person_item(sim, r)
        if sim.nested_phones:
            phones = sorted(sim.tables.phones_on(r.person_id, today), key=lambda ph: ph.phone_id)
            item["PHONES"] = item_table("PHONES", [_phone_item(sim, ph) for ph in phones])
        items.append(item)
    return {"X_PEOPLE": item_table("X_PEOPLE", items)}


def _person_item(sim: EbsSim, r: PersonRow) -> dict[str, Json]:
    d = sim.format_isg_date
    return {
        "PERSON_ID": r.person_id, "EMPLOYEE_NUMBER": r.employee_number, "FULL_NAME": r.full_name,
        "FIRST_NAME": r.first_name, "LAST_NAME": r.last_name, "EMAIL_ADDRESS": r.email_address,
        "CURRENT_EMPLOYEE_FLAG": r.current_employee_flag, "BUSINESS_GROUP_ID": r.business_group_id,
        "EFFECTIVE_START_DATE": d(r.effective_start_date), "EFFECTIVE_END_DATE": d(r.effective_end_date),
        "LAST_UPDATE_DATE": d(r.last_update_date),
    }


def _phone_item(sim: EbsSim, ph: Phone) -> dict[str, Json]:
    d = sim.format_isg_date
    return {
        "PHONE_ID": ph.phone_id, "PHONE_TYPE": ph.phone_type, "PHONE_NUMBER": ph.phone_number,
        "DATE_FROM": d(ph.date_from), "DATE_TO": d(ph.date_to), "LAST_UPDATE_DATE": d(ph.last_update_date),
    }


def _person(sim: EbsSim, ctx: AppContext, p: Params) -> dict[str, Json]:
    """The person as of TRUNC(SYSDATE), with phones current that day."""
    text = p.required("person_id")
    person_id = p.integer("person_id")
    today = sim.today()
    row = sim.tables.person_on(person_id, today) if person_id is not None else None
    if row is None:
        raise ServiceError(f"No person with PERSON_ID {text} is effective on {today.isoformat()}.")
    phones = sorted(sim.tables.phones_on(row.person_id, today), key=lambda ph: ph.phone_id)
    return {"X_PERSON": _person_item(sim, row),
            "X_PHONES": item_table("X_PHONES", [_phone_item(sim, ph) for ph in phones])}


def _record_delivery(sim: EbsSim, ctx: AppContext, p: Params) -> dict[str, Json]:
    """The audit INSERT; the NOT NULL columns (``sim.audit_required``) are checked first."""
    def text(logical: str) -> str | None:
        return p.required(logical) if logical in sim.audit_required else p.text(logical)

    audit_id = sim.record_delivery(
        user=ctx.user.name,
        source_table=p.required("source_table"),
        source_id=p.required("source_id"),
        message_sid=text("message_sid"),
        status=p.required("status"),
        error_code=text("error_code"),
        sent_at=p.date("sent_at"),
        final_at=p.date("final_at"),
    )
    return {"X_AUDIT_ID": audit_id}


@dataclass(frozen=True)
class Service:
    """A deployed method: its body, and what its OUT parameters look like when it fails."""

    run: Callable[[EbsSim, AppContext, Params], dict[str, Json]]
    out_tables: tuple[str, ...]

    def empty_output(self) -> dict[str, Json]:
        return {name: {} for name in self.out_tables}


SERVICES: Mapping[str, Service] = {
    "changed_invoices": Service(_changed_invoices, ("X_INVOICES",)),
    "changed_pos": Service(_changed_pos, ("X_POS",)),
    "changed_people": Service(_changed_people, ("X_PEOPLE",)),
    "changed_supplier_sites": Service(_changed_supplier_sites, ("X_SITES",)),
    "person": Service(_person, ("X_PERSON", "X_PHONES")),
    "record_delivery": Service(_record_delivery, ()),
}


def run_service(sim: EbsSim, logical: str, ctx: AppContext, raw: Mapping[str, object]) -> dict[str, Json]:
    return SERVICES[logical].run(sim, ctx, Params(sim.names.params, raw))
