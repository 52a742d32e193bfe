"""A small ERP in one SQLite file, for `demo` and for tests of the generic SQL source.

It keeps time like Oracle EBS: `last_update_date` is naive local wall time ('YYYY-MM-DD
HH:MM:SS' in `tz`), so the connector has to convert it. Amounts are exact decimal text (SQLite's
NUMERIC affinity would turn them into floats). Phone columns hold what ERP users actually type,
dirty values included, and the people include recipients that fail for a reason: a number the
Twilio simulator rejects as invalid (+15005550001 -> 21211) and someone with no phone at all.

Only the standard library: simulators never import the package they exercise.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

PO_STATUSES = ("INCOMPLETE", "IN PROCESS", "APPROVED", "REJECTED")
OPEN_PO_STATUSES = ("INCOMPLETE", "IN PROCESS")
INVOICE_STATUSES = ("NEVER APPROVED", "APPROVED")

#: The Twilio simulator (like Twilio's test credentials) rejects this number with 21211.
INVALID_PHONE = "+15005550001"

SCHEMA = """
CREATE TABLE people (
    person_id        INTEGER PRIMARY KEY,
    full_name        TEXT NOT NULL,
    mobile_phone     TEXT,
    work_phone       TEXT,
    last_update_date TEXT NOT NULL
);
CREATE TABLE po_headers (
    po_id            INTEGER PRIMARY KEY,
    po_number        TEXT NOT NULL UNIQUE,
    vendor_name      TEXT NOT NULL,
    amount           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('INCOMPLETE','IN PROCESS','APPROVED','REJECTED')),
    buyer_id         INTEGER REFERENCES people(person_id),
    last_update_date TEXT NOT NULL
);
CREATE TABLE ap_invoices (
    invoice_id       INTEGER PRIMARY KEY,
    invoice_num      TEXT NOT NULL UNIQUE,
    vendor_name      TEXT NOT NULL,
    amount           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    approval_status  TEXT NOT NULL CHECK (approval_status IN ('NEVER APPROVED','APPROVED')),
    approver_phone   TEXT,
    last_update_date TEXT NOT NULL
);
CREATE INDEX po_headers_changed ON po_headers (last_update_date, po_id);
CREATE INDEX ap_invoices_changed ON ap_invoices (last_update_date, invoice_id);
CREATE INDEX people_changed ON people (last_update_date, person_id);
"""

#: (person_id, full_name, mobile_phone, work_phone): deliverable ones use fictional 312-555-01xx.
PEOPLE: tuple[tuple[int, str, str | None, str | None], ...] = (
    (101, "Dana Whitfield", "(312) 555-0142", "312.555.0100"),
    (102, "Luis Ortega", "312-555-0187", None),
    (103, "Priya Raman", "+1 312 555 0123", "312.555.0199 x12"),
    (104, "Tom Becker", INVALID_PHONE, None),
    (105, "Ana Silva", None, None),
    (106, "Oliver Hughes", "+44 20 7946 0958", None),
)

#: Approver phones on invoices, as typed into the ERP (some unusable on purpose).
APPROVER_PHONES: tuple[str | None, ...] = (
    "(312) 555-0142",
    "312.555.0199 x12",
    "+1 312 555 0123",
    "+44 20 7946 0958",
    INVALID_PHONE,
    "n/a",
    None,
)

VENDORS = (
    "Acme Industrial Supply",
    "Northwind Traders",
    "Globex Logistics",
    "Initech Office Solutions",
    "Stark Fasteners",
    "Wayne Packaging",
)
CURRENCIES = ("USD", "USD", "USD", "CAD", "EUR")
BUYERS = tuple(person[0] for person in PEOPLE)

#: Seeded POs (status, buyer): open ones include the buyer with the invalid number and the one
#: with no phone, so approving them in the demo shows failures with their reasons.
SEEDED_POS: tuple[tuple[str, int], ...] = (
    ("INCOMPLETE", 101),
    ("IN PROCESS", 102),
    ("IN PROCESS", 104),
    ("APPROVED", 103),
    ("REJECTED", 106),
    ("IN PROCESS", 105),
    ("INCOMPLETE", 103),
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DemoErp:
    """The demo ERP's file, clock and business actions. Every write is one short transaction.

    `clock` returns aware 'now' (UTC or any zone); tests pass a fixed or stepping one.
    """

    def __init__(
        self,
        path: Path,
        *,
        seed: int = 7,
        tz: str = "America/Chicago",
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = Path(path)
        self.seed = seed
        self.tz = tz
        self.clock = clock
        self._zone = ZoneInfo(tz)

    # -- setup --------------------------------------------------------------------------------

    def create(self) -> None:
        """(Re)build the tables and seed people, a few POs and invoices, all changed 'now'."""
        rng = random.Random(self.seed)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            for table in ("ap_invoices", "po_headers", "people"):
                db.execute(f"DROP TABLE IF EXISTS {table}")  # noqa: S608 - fixed names
            db.executescript(SCHEMA)
        stamp = self.local_now()
        with self._db() as db:
            db.executemany(
                "INSERT INTO people VALUES (?, ?, ?, ?, ?)",
                [(*person, stamp) for person in PEOPLE],
            )
            for offset, (status, buyer) in enumerate(SEEDED_POS):
                self._insert_po(db, rng, po_id=1001 + offset, status=status, buyer=buyer, stamp=stamp)
            for offset, phone in enumerate(APPROVER_PHONES):
                status = "APPROVED" if offset == 2 else "NEVER APPROVED"
                self._insert_invoice(
                    db, rng, invoice_id=5001 + offset, status=status, phone=phone, stamp=stamp
                )

    # -- time ---------------------------------------------------------------------------------

    def local_now(self) -> str:
        """The ERP's notion of now: naive wall time in its zone, to the second (like SYSDATE)."""
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("DemoErp clock must return an aware datetime")
        return now.astimezone(self._zone).strftime("%Y-%m-%d %H:%M:%S")

    # -- business actions -----------------------------------------------------------------------

    def approve_po(self, po_id: int) -> str:
        """Approve an open PO (INCOMPLETE or IN PROCESS); anything else is a ValueError."""
        return self._move_po(po_id, "APPROVED")

    def reject_po(self, po_id: int) -> str:
        """Reject an open PO."""
        return self._move_po(po_id, "REJECTED")

    def set_mobile_phone(self, person_id: int, phone: str | None) -> str:
        """Correct a person's mobile number, as HR would after a message could not reach them."""
        with self._db() as db:
            changed = db.execute(
                "UPDATE people SET mobile_phone = ?, last_update_date = ? WHERE person_id = ?",
                (phone, self.local_now(), person_id),
            ).rowcount
        if not changed:
            raise KeyError(f"no person {person_id}")
        return f"person {person_id}: mobile phone set"

    def validate_invoice(self, invoice_id: int) -> str:
        """Validate (approve) an invoice that was never approved."""
        with self._db() as db:
            row = db.execute(
                "SELECT invoice_num, approval_status FROM ap_invoices WHERE invoice_id = ?", (invoice_id,)
            ).fetchone()
            if row is None:
                raise KeyError(f"no invoice {invoice_id}")
            if row[1] != "NEVER APPROVED":
                raise ValueError(f"invoice {row[0]} is already {row[1]}")
            db.execute(
                "UPDATE ap_invoices SET approval_status = 'APPROVED', last_update_date = ?"
                " WHERE invoice_id = ?",
                (self.local_now(), invoice_id),
            )
        return f"invoice {row[0]} validated"

    def create_po(self, rng: random.Random) -> str:
        """Enter a new PO in status INCOMPLETE."""
        with self._db() as db:
            po_id = self._next_id(db, "po_headers", "po_id", 1001)
            number = self._insert_po(
                db, rng, po_id=po_id, status="INCOMPLETE", buyer=rng.choice(BUYERS), stamp=self.local_now()
            )
        return f"PO {number} created"

    def create_invoice(self, rng: random.Random) -> str:
        """Enter a new invoice, never approved, with a phone picked from the usual mix."""
        with self._db() as db:
            invoice_id = self._next_id(db, "ap_invoices", "invoice_id", 5001)
            number = self._insert_invoice(
                db,
                rng,
                invoice_id=invoice_id,
                status="NEVER APPROVED",
                phone=rng.choice(APPROVER_PHONES),
                stamp=self.local_now(),
            )
        return f"invoice {number} entered"

    def tick(self, rng: random.Random) -> list[str]:
        """One random business event; returns what happened, for the demo's console."""
        open_pos = self._ids("SELECT po_id FROM po_headers WHERE status IN ('INCOMPLETE', 'IN PROCESS')")
        open_invoices = self._ids(
            "SELECT invoice_id FROM ap_invoices WHERE approval_status = 'NEVER APPROVED'"
        )
        events: list[tuple[int, Callable[[], str]]] = [
            (4 if open_pos else 0, lambda: self.approve_po(rng.choice(open_pos))),
            (1 if open_pos else 0, lambda: self.reject_po(rng.choice(open_pos))),
            (3 if open_invoices else 0, lambda: self.validate_invoice(rng.choice(open_invoices))),
            (2, lambda: self.create_po(rng)),
            (2, lambda: self.create_invoice(rng)),
        ]
        weights = [weight for weight, _ in events]
        _, action = rng.choices(events, weights=weights)[0]
        return [action()]

    # -- reading (for the demo console and tests) -----------------------------------------------

    def rows(self, table: str) -> list[dict[str, object]]:
        """Every row of one of the three tables, as dicts, in key order."""
        keys = {"people": "person_id", "po_headers": "po_id", "ap_invoices": "invoice_id"}
        if table not in keys:
            raise KeyError(f"no table {table!r}; tables: {', '.join(keys)}")
        with self._db() as db:
            db.row_factory = sqlite3.Row
            query = f"SELECT * FROM {table} ORDER BY {keys[table]}"  # noqa: S608 - names from the table above
            return [dict(row) for row in db.execute(query)]

    # -- internals -----------------------------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10)) as db:
            db.execute("PRAGMA journal_mode=WAL")  # the connector reads while the demo writes
            db.execute("PRAGMA foreign_keys=ON")
            with db:
                yield db

    def _ids(self, query: str) -> list[int]:
        with self._db() as db:
            return [row[0] for row in db.execute(query)]

    def _move_po(self, po_id: int, status: str) -> str:
        with self._db() as db:
            row = db.execute("SELECT po_number, status FROM po_headers WHERE po_id = ?", (po_id,)).fetchone()
            if row is None:
                raise KeyError(f"no PO {po_id}")
            if row[1] not in OPEN_PO_STATUSES:
                raise ValueError(f"PO {row[0]} is {row[1]}, not open")
            db.execute(
                "UPDATE po_headers SET status = ?, last_update_date = ? WHERE po_id = ?",
                (status, self.local_now(), po_id),
            )
        return f"PO {row[0]} {status.lower()}"

    @staticmethod
    def _next_id(db: sqlite3.Connection, table: str, key: str, first: int) -> int:
        query = f"SELECT MAX({key}) FROM {table}"  # noqa: S608 - fixed names
        found = db.execute(query).fetchone()[0]
        return first if found is None else int(found) + 1

    @staticmethod
    def _amount(rng: random.Random) -> str:
        return str((Decimal(rng.randrange(5_000, 2_500_000)) / 100).quantize(Decimal("0.01")))

    def _insert_po(
        self, db: sqlite3.Connection, rng: random.Random, *, po_id: int, status: str, buyer: int, stamp: str
    ) -> str:
        number = str(po_id + 9000)
        db.execute(
            "INSERT INTO po_headers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (po_id, number, rng.choice(VENDORS), self._amount(rng), rng.choice(CURRENCIES), status, buyer,
             stamp),
        )
        return number

    def _insert_invoice(
        self,
        db: sqlite3.Connection,
        rng: random.Random,
        *,
        invoice_id: int,
        status: str,
        phone: str | None,
        stamp: str,
    ) -> str:
        number = f"INV-{invoice_id}"
        db.execute(
            "INSERT INTO ap_invoices VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (invoice_id, number, rng.choice(VENDORS), self._amount(rng), rng.choice(CURRENCIES), status,
             phone, stamp),
        )
        return number
