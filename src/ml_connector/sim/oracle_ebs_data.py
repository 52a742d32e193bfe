"""Seeded Oracle EBS tables for the simulator, and the rules that read them.

Every DATE here is a naive ``datetime`` in the database server's local time, as in Oracle: the
column has no zone. Rows are plain mutable records (they are the simulated database, not a
boundary); the web layers render them.

What the tables model, and why:

* ``AP_INVOICES_ALL`` + ``AP_INVOICE_DISTRIBUTIONS_ALL`` + ``AP_HOLDS_ALL``: validation status is
  derived (``AP_INVOICES_PKG.GET_APPROVAL_STATUS``), and validating an invoice changes the
  distributions, not the header's LAST_UPDATE_DATE. The header's own ``APPROVAL_STATUS`` column is
  not maintained (it stays as seeded, mostly NULL), so a plain table read cannot see validation.
* ``PO_HEADERS_ALL``: approval updates the header.
* ``PER_ALL_PEOPLE_F``: date-tracked; a future-dated hire becomes current at midnight with no
  update to any row.
* ``PER_PHONES``: free-text phone numbers, as users type them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol

END_OF_TIME = datetime(4712, 12, 31)
"""EBS's open end date for date-tracked rows."""

BUSINESS_GROUP_ID = 202


class _Ago(Protocol):
    def __call__(self, days: float, hour: int = 10, minute: int = 15) -> datetime: ...


@dataclass(slots=True)
class Invoice:
    invoice_id: int
    invoice_num: str
    vendor_id: int
    vendor_site_id: int
    org_id: int
    invoice_amount: float
    invoice_currency_code: str
    invoice_date: datetime
    invoice_type_lookup_code: str
    payment_status_flag: str
    wfapproval_status: str
    approval_status: str | None
    cancelled_date: datetime | None
    created_by: int
    creation_date: datetime
    last_update_date: datetime


@dataclass(slots=True)
class Distribution:
    invoice_distribution_id: int
    invoice_id: int
    distribution_line_number: int
    amount: float
    match_status_flag: str | None
    last_update_date: datetime


@dataclass(slots=True)
class Hold:
    hold_id: int
    invoice_id: int
    hold_lookup_code: str
    release_lookup_code: str | None
    last_update_date: datetime


@dataclass(slots=True)
class PurchaseOrder:
    po_header_id: int
    segment1: str
    type_lookup_code: str
    authorization_status: str
    approved_flag: str | None
    approved_date: datetime | None
    agent_id: int
    vendor_id: int
    org_id: int
    currency_code: str
    revision_num: int
    closed_code: str
    cancel_flag: str
    creation_date: datetime
    last_update_date: datetime


@dataclass(slots=True)
class PersonRow:
    """One date-track row of PER_ALL_PEOPLE_F (a person has one or more)."""

    person_id: int
    effective_start_date: datetime
    effective_end_date: datetime
    employee_number: str
    full_name: str
    first_name: str
    last_name: str
    email_address: str | None
    current_employee_flag: str | None
    business_group_id: int
    creation_date: datetime
    last_update_date: datetime


@dataclass(slots=True)
class Phone:
    phone_id: int
    parent_id: int
    phone_type: str
    phone_number: str | None
    date_from: datetime
    date_to: datetime | None
    last_update_date: datetime
    parent_table: str = "PER_ALL_PEOPLE_F"


@dataclass(slots=True)
class Supplier:
    """AP_SUPPLIERS (R12; PO_VENDORS before)."""

    vendor_id: int
    vendor_name: str
    segment1: str
    last_update_date: datetime


@dataclass(slots=True)
class SupplierSite:
    """AP_SUPPLIER_SITES_ALL: striped by operating unit, where the remit-to address lives."""

    vendor_site_id: int
    vendor_id: int
    vendor_site_code: str
    org_id: int
    address_line1: str
    city: str
    country: str
    pay_site_flag: str
    creation_date: datetime
    last_update_date: datetime


@dataclass(slots=True)
class BankAccount:
    """IBY_EXT_BANK_ACCOUNTS with its assignment to a supplier site (IBY_PMT_INSTR_USES_ALL).

    A new account for a site is a new row and an end-dated old assignment: the site itself is
    not updated, so its LAST_UPDATE_DATE does not move.
    """

    ext_bank_account_id: int
    vendor_site_id: int
    bank_name: str
    bank_account_num: str
    start_date: datetime
    end_date: datetime | None
    last_update_date: datetime


@dataclass(slots=True)
class AuditRow:
    """A row written by the ``record_delivery`` write-back service."""

    audit_id: int
    source_table: str
    source_id: str
    message_sid: str | None
    status: str
    error_code: str | None
    sent_at: datetime | None
    final_at: datetime | None
    user_name: str
    creation_date: datetime


# (cancelled, distribution state, has unreleased holds) -> GET_APPROVAL_STATUS result.
# Distribution state: "none" (never validated: no rows, or all NULL/'N'), "all_a" (all 'A'),
# "mixed" (some validated, some not or tested 'T').
_APPROVAL_STATUS: dict[tuple[bool, str, bool], str] = {
    (True, "none", False): "CANCELLED",
    (True, "none", True): "CANCELLED",
    (True, "all_a", False): "CANCELLED",
    (True, "all_a", True): "CANCELLED",
    (True, "mixed", False): "CANCELLED",
    (True, "mixed", True): "CANCELLED",
    (False, "none", False): "NEVER APPROVED",
    (False, "none", True): "NEEDS REAPPROVAL",
    (False, "all_a", False): "APPROVED",
    (False, "all_a", True): "NEEDS REAPPROVAL",
    (False, "mixed", False): "NEEDS REAPPROVAL",
    (False, "mixed", True): "NEEDS REAPPROVAL",
}


def _distribution_state(flags: list[str | None]) -> str:
    normalised = {f or "N" for f in flags}
    if not flags or normalised == {"N"}:
        return "none"
    if normalised == {"A"}:
        return "all_a"
    return "mixed"


@dataclass
class EbsTables:
    """The simulated database: committed rows only (pending work lives in the simulator)."""

    invoices: dict[int, Invoice] = field(default_factory=dict)
    distributions: list[Distribution] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    pos: dict[int, PurchaseOrder] = field(default_factory=dict)
    people: list[PersonRow] = field(default_factory=list)
    phones: list[Phone] = field(default_factory=list)
    audit: list[AuditRow] = field(default_factory=list)
    suppliers: dict[int, Supplier] = field(default_factory=dict)
    sites: dict[int, SupplierSite] = field(default_factory=dict)
    bank_accounts: list[BankAccount] = field(default_factory=list)
    _next_id: dict[str, int] = field(default_factory=dict)

    def next_id(self, sequence: str, start: int) -> int:
        """A sequence's NEXTVAL."""
        value = self._next_id.get(sequence, start)
        self._next_id[sequence] = value + 1
        return value

    # -- derived values ------------------------------------------------------------------------

    def approval_status(self, inv: Invoice) -> str:
        """What AP_INVOICES_PKG.GET_APPROVAL_STATUS would return for a standard invoice."""
        flags = [d.match_status_flag for d in self.distributions if d.invoice_id == inv.invoice_id]
        on_hold = any(
            h.invoice_id == inv.invoice_id and h.release_lookup_code is None for h in self.holds
        )
        return _APPROVAL_STATUS[(inv.cancelled_date is not None, _distribution_state(flags), on_hold)]

    def hold_count(self, inv: Invoice) -> int:
        return sum(1 for h in self.holds if h.invoice_id == inv.invoice_id and h.release_lookup_code is None)

    def invoice_change_date(self, inv: Invoice) -> datetime:
        """GREATEST(header.last_update_date, MAX(dist.last_update_date)), the custom package's rule.

        Validation touches only the distributions, so a service that read the header date alone
        would never report a newly validated invoice.
        """
        dist_dates = [d.last_update_date for d in self.distributions if d.invoice_id == inv.invoice_id]
        return max([inv.last_update_date, *dist_dates])

    def site_account(self, site: SupplierSite) -> BankAccount | None:
        """The bank account assigned to the site now (the open assignment)."""
        current = [a for a in self.bank_accounts if a.vendor_site_id == site.vendor_site_id and a.end_date is None]
        return max(current, key=lambda a: a.start_date) if current else None

    def site_change_date(self, site: SupplierSite) -> datetime:
        """GREATEST(site, supplier, bank account rows of the site): the custom package's rule.

        A new bank account touches only IBY's tables, so a service reading the site's date alone
        would never report it.
        """
        dates = [site.last_update_date, self.suppliers[site.vendor_id].last_update_date]
        dates += [a.last_update_date for a in self.bank_accounts if a.vendor_site_id == site.vendor_site_id]
        return max(dates)

    def person_rows(self, person_id: int) -> list[PersonRow]:
        return sorted(
            (p for p in self.people if p.person_id == person_id), key=lambda p: p.effective_start_date
        )

    def person_on(self, person_id: int, day: date) -> PersonRow | None:
        """The date-track row effective on ``day`` (EBS compares TRUNC(SYSDATE))."""
        moment = datetime.combine(day, time())
        for row in self.person_rows(person_id):
            if row.effective_start_date <= moment <= row.effective_end_date:
                return row
        return None

    def phones_on(self, person_id: int, day: date) -> list[Phone]:
        moment = datetime.combine(day, time())
        return [
            ph
            for ph in self.phones
            if ph.parent_id == person_id
            and ph.date_from <= moment
            and (ph.date_to is None or ph.date_to >= moment)
        ]


def seed_tables(rng: random.Random, now: datetime) -> EbsTables:
    """Build the seeded tables relative to ``now`` (server-local, naive)."""
    t = EbsTables()
    midnight = datetime.combine(now.date(), time())

    def ago(days: float, hour: int = 10, minute: int = 15) -> datetime:
        return midnight - timedelta(days=days) + timedelta(hours=hour, minutes=minute)

    _seed_people(t, now, midnight, ago)
    _seed_invoices(t, rng, ago)
    _seed_pos(t, ago)
    _seed_suppliers(t, ago)
    return t


def _seed_people(t: EbsTables, now: datetime, midnight: datetime, ago: _Ago) -> None:
    people: list[tuple[int, str, str, str | None]] = [
        (101, "Pat", "Buyer", "pat.buyer@example.com"),
        (102, "Lee", "Agent", "lee.agent@example.com"),
        (103, "Sam", "Clerk", None),
        (104, "Dana", "Hr", "dana.hr@example.com"),
    ]
    for i, (pid, first, last, email) in enumerate(people):
        t.people.append(
            PersonRow(pid, ago(900 + i), END_OF_TIME, f"E{pid}", f"{last}, {first}", first, last, email,
                      "Y", BUSINESS_GROUP_ID, ago(900 + i), ago(20 - i, 9, 0))
        )
    # A leaver: employee until 30 days ago, then an ex-employee row.
    t.people.append(PersonRow(105, ago(700), ago(31, 0, 0), "E105", "Former, Alex", "Alex", "Former",
                              "alex.former@example.com", "Y", BUSINESS_GROUP_ID, ago(700), ago(30, 16, 5)))
    t.people.append(PersonRow(105, ago(30, 0, 0), END_OF_TIME, "E105", "Former, Alex", "Alex", "Former",
                              "alex.former@example.com", None, BUSINESS_GROUP_ID, ago(30, 16, 5),
                              ago(30, 16, 5)))
    # A future-dated hire: entered today, effective tomorrow.
    entered = max(midnight, now - timedelta(hours=1))
    t.people.append(PersonRow(106, midnight + timedelta(days=1), END_OF_TIME, "E106", "Future, Robin",
                              "Robin", "Future", "robin.future@example.com", "Y", BUSINESS_GROUP_ID,
                              entered, entered))
    phones: list[tuple[int, str, str | None]] = [
        (101, "M", "(312) 555-0142"),
        (101, "W1", "312.555.0199 x12"),
        (102, "M", "+44 20 7946 0958"),
        (103, "M", ""),
        (103, "W1", "ext 4411 only"),
        (104, "H1", "312-555-0177"),
        (104, "M", "3125550188"),
        (105, "M", "(312) 555-0110"),
        (106, "M", "(773) 555-0123"),
    ]
    for pid, kind, number in phones:
        start = min(r.effective_start_date for r in t.people if r.person_id == pid)
        t.phones.append(Phone(t.next_id("phone", 9001), pid, kind, number, start, None, start))


def _seed_invoices(t: EbsTables, rng: random.Random, ago: _Ago) -> None:
    # (id, org, days ago, dist flags, hold, cancelled, wf status)
    specs: list[tuple[int, int, float, list[str | None], str | None, bool, str]] = [
        (10001, 204, 6, ["A", "A"], None, False, "NOT REQUIRED"),
        (10002, 204, 5, [None, None], None, False, "REQUIRED"),
        (10003, 204, 4, ["T"], "QTY REC", False, "REQUIRED"),
        (10004, 204, 3.5, ["A"], None, True, "NOT REQUIRED"),
        (10005, 458, 3, ["A"], None, False, "WFAPPROVED"),
        (10006, 204, 2, ["A", None], None, False, "REQUIRED"),
        (10007, 204, 1, [None], None, False, "REQUIRED"),
        (10008, 458, 1, ["N"], None, False, "REQUIRED"),
    ]
    for inv_id, org, days, flags, hold, cancelled, wf in specs:
        stamp = ago(days)
        amount = round(rng.uniform(100, 25000), 2)
        t.invoices[inv_id] = Invoice(
            inv_id, f"INV-{inv_id - 9000}", 5000 + inv_id % 7, 7000 + inv_id % 7, org, amount, "USD",
            stamp - timedelta(days=2), "STANDARD", "N", wf, None, stamp if cancelled else None, 1318,
            stamp, stamp,
        )
        for n, flag in enumerate(flags, start=1):
            t.distributions.append(
                Distribution(t.next_id("dist", 700001), inv_id, n, round(amount / len(flags), 2), flag, stamp)
            )
        if hold is not None:
            t.holds.append(Hold(t.next_id("hold", 3001), inv_id, hold, None, stamp))


def _seed_pos(t: EbsTables, ago: _Ago) -> None:
    # (id, number, status, agent, org, days ago, revision)
    specs: list[tuple[int, str, str, int, int, float, int]] = [
        (5001, "4501", "APPROVED", 101, 204, 6, 0),
        (5002, "4502", "IN PROCESS", 102, 204, 4, 0),
        (5003, "4503", "INCOMPLETE", 101, 204, 3, 0),
        (5004, "4504", "REQUIRES REAPPROVAL", 102, 204, 2, 1),
        (5005, "4505", "APPROVED", 101, 458, 2, 0),
        (5006, "4506", "REJECTED", 103, 204, 1, 0),
    ]
    for po_id, number, status, agent, org, days, rev in specs:
        stamp = ago(days, 11, 30)
        approved = status == "APPROVED"
        t.pos[po_id] = PurchaseOrder(
            po_id, number, "STANDARD", status, "Y" if approved else None, stamp if approved else None,
            agent, 5001 + po_id % 5, org, "USD", rev, "OPEN", "N", stamp - timedelta(days=1), stamp,
        )



def _seed_suppliers(t: EbsTables, ago: _Ago) -> None:
    """The suppliers the seeded invoices name (VENDOR_ID 5000-5006, VENDOR_SITE_ID 7000-7006)."""
    names = ("Acme Industrial", "Northwind Traders", "Globex Metals", "Initech Supplies",
             "Umbrella Logistics", "Stark Fasteners", "Wayne Packaging")
    cities = ("Chicago", "Milwaukee", "Gary", "Joliet", "Aurora", "Naperville", "Evanston")
    for n, name in enumerate(names):
        vendor_id, site_id = 5000 + n, 7000 + n
        t.suppliers[vendor_id] = Supplier(vendor_id, name, str(1000 + n), ago(400 + n))
        t.sites[site_id] = SupplierSite(site_id, vendor_id, f"{cities[n].upper()}-1", 458 if n == 4 else 204,
                                        f"{100 + 11 * n} Main St", cities[n], "US", "Y", ago(400 + n),
                                        ago(30 + n, 14, 0))
        t.bank_accounts.append(BankAccount(t.next_id("bank_account", 40001), site_id, "First Lake Bank",
                                           f"00{n}1{n}45{n}78{n}", ago(400 + n), None, ago(30 + n, 14, 0)))
