"""Seeded SYSPRO company tables for the simulator, and SQL Server's way of comparing their values.

Rows are plain mutable dicts keyed by column name (they are the simulated database, not a
boundary); the e.net and OData layers render them. Values are ``str``, ``date`` (SYSPRO keeps
dates without a time), ``Decimal``, ``int`` or ``None``.

Modelling choices (no source pins these down; adapters can be checked against them):

* ``PurchaseOrder`` keys are stored as SYSPRO shows them, right-justified in six characters
  (``" 00001"``); comparisons follow SQL Server: trailing spaces ignored, leading spaces kept,
  case-insensitive collation. A client that strips the key cannot find the row again.
* PO ``OrderStatus``: ``'0'`` in process (entered, awaiting approval), ``'1'`` ready to print
  (approved), ``'4'`` printed (sent to the supplier), ``'9'`` complete, ``'*'`` cancelled. "PO
  approved" is the move from ``'0'`` to ``'1'``.
* ``TimeStamp`` is a SQL Server rowversion: one counter for the whole database, bumped on every
  insert or update of a row in a table that has the column. Which tables have it is configurable.
* ``InvoiceDate`` and ``PostDate`` are business dates: a back-dated posting appears now with old
  dates, so only ``TimeStamp`` reveals it.
* Posting an AP invoice also writes its entry in the AP posting journal ``ApJnlSummary`` (SYSPRO's
  AP journal, which the GL integration posts to the general ledger): one entry per posted
  invoice, keyed by period (``TrnYear``, ``TrnMonth``), ``Journal`` (one journal per posting day
  in the period) and ``EntryNumber``; ``JnlDate`` is the posting date, ``TrnType`` ``'I'`` an
  invoice. Only the table's existence and key are from the sources; the other column names are
  this simulator's choice, and a site's journal table and columns are configuration of the
  adapter (entity ``table``, ``key``, ``columns``), never constants.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

Value = str | date | Decimal | int | None
Row = dict[str, Value]
Kind = Literal["str", "date", "dec", "int", "rowversion"]

TIMESTAMP = "TimeStamp"
FIRST_ROWVERSION = 0x7D0


@dataclass(frozen=True)
class Column:
    """A column: its kind, and for decimals the scale SQL Server stores."""

    name: str
    kind: Kind
    scale: int = 0


@dataclass(frozen=True)
class TableDef:
    """A table's columns (without ``TimeStamp``) and its primary key, in clustered-index order."""

    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]


def _cols(spec: str) -> tuple[Column, ...]:
    """``"Name:kind[:scale] ..."`` -> columns; keeps the schema table below readable."""
    out = []
    for item in spec.split():
        name, kind, *scale = item.split(":")
        out.append(Column(name, kind, int(scale[0]) if scale else 0))  # type: ignore[arg-type]
    return tuple(out)


SCHEMAS: Mapping[str, TableDef] = MappingProxyType({
    t.name: t for t in (
        TableDef("ApSupplier", ("Supplier",), _cols(
            "Supplier:str SupplierName:str SupShortName:str CurrentBalance:dec:2 OnHold:str "
            "TermsCode:str Currency:str")),
        TableDef("PorMasterHdr", ("PurchaseOrder",), _cols(
            "PurchaseOrder:str OrderStatus:str Supplier:str CancelledFlag:str DatePoCompleted:date "
            "DateLastDocPrt:date OrderEntryDate:date OrderDueDate:date Buyer:str Warehouse:str "
            "Currency:str")),
        TableDef("PorMasterDetail", ("PurchaseOrder", "Line"), _cols(
            "PurchaseOrder:str Line:int LineType:str MStockCode:str MStockDes:str MWarehouse:str "
            "MOrderQty:dec:6 MReceivedQty:dec:6 MPrice:dec:5 MOrderUom:str MCompleteFlag:str "
            "MLatestDueDate:date MGlCode:str")),
        TableDef("ApInvoice", ("Supplier", "Invoice"), _cols(
            "Supplier:str Invoice:str InvoiceDate:date PostDate:date DueDate:date OrigInvValue:dec:2 "
            "OrigDiscValue:dec:2 PaymentNumber:str MthInvBal1:dec:2 MthInvBal2:dec:2 MthInvBal3:dec:2 "
            "ConvRate:dec:6 Currency:str Reference:str Branch:str")),
        TableDef("ApJnlSummary", ("TrnYear", "TrnMonth", "Journal", "EntryNumber"), _cols(
            "TrnYear:int TrnMonth:int Journal:int EntryNumber:int Supplier:str Invoice:str TrnType:str "
            "JnlDate:date TrnValue:dec:2 Reference:str")),
    )
})

ORDER_STATUS: Mapping[str, str] = MappingProxyType({
    "0": "In process",
    "1": "Ready to print",
    "4": "Printed",
    "9": "Complete",
    "*": "Cancelled",
})

SUPPLIERS: tuple[tuple[str, str, str, str], ...] = (
    ("ACM001", "Acme Fasteners Ltd", "ACME", "$"),
    ("BRA001", "Bräunlich & Söhne KG", "BRAEUNLICH", "EUR"),
    ("CRE001", "Crème & Co", "CREME", "EUR"),
    ("MUL001", "Müller Industrietechnik", "MUELLER", "EUR"),
    ("NOR001", "Nørre Stål A/S", "NORRE", "EUR"),
    ("OEU001", "Œuvre Mécanique SARL", "OEUVRE", "EUR"),
    ("SOC001", "Société Générale de Fournitures", "SOCGEN", "EUR"),
    ("UTE002", "Utexam Logistics Limited", "UTEXAM", "$"),
    ("ZAF001", "Zeta Fabrication (Pty) Ltd", "ZETA", "ZAR"),
)

STOCK: tuple[tuple[str, str, str], ...] = (
    ("2804011COL", "SPEARMINT BLEND", "LB"),
    ("A100", "BRACKET STEEL 40MM", "EA"),
    ("B2040", "BEARING 6204-2RS", "EA"),
    ("C-330", "CABLE 3-CORE 2.5MM", "M"),
    ("FG-ROTOR", "ROTOR ASSEMBLY", "EA"),
)

BUYERS = ("BRH", "JDS", "KMN")


def po_key(number: int) -> str:
    """A purchase order number as SYSPRO stores it (``" 00001"``)."""
    return f"{number:05d}".rjust(6)


# -- SQL Server comparison semantics -------------------------------------------------------------

def sql_text(value: str) -> str:
    """Collation key: case-insensitive, trailing spaces ignored (as ``=`` does in SQL Server)."""
    return value.rstrip(" ").casefold()


def sort_key(value: Value) -> tuple[int, object]:
    """Ascending order with NULLs first, strings by collation key."""
    if value is None:
        return (0, 0)
    return (1, sql_text(value) if isinstance(value, str) else value)


_LIKE_WILDCARDS: Mapping[str, str] = MappingProxyType({"%": ".*", "_": "."})


def like(value: str, pattern: str) -> bool:
    """SQL ``LIKE`` with ``%``, ``_`` and ``[...]`` classes, case-insensitive."""
    parts = [_LIKE_WILDCARDS.get(token) or (token if token.startswith("[") else re.escape(token))
             for token in re.findall(r"\[[^\]]+\]|.", pattern, re.DOTALL)]
    return re.fullmatch("".join(parts), value.rstrip(" "), re.IGNORECASE | re.DOTALL) is not None


def _ordered(op: Callable[[object, object], bool]) -> Callable[[Value, Value], bool]:
    def compare(left: Value, right: Value) -> bool:
        if left is None or right is None:
            return False
        a, b = (sql_text(left), sql_text(right)) if isinstance(left, str) and isinstance(right, str) else (
            left, right)
        return op(a, b)
    return compare


COMPARISONS: Mapping[str, Callable[[Value, Value], bool]] = MappingProxyType({
    "EQ": _ordered(lambda a, b: a == b),
    "NE": _ordered(lambda a, b: a != b),
    "GT": _ordered(lambda a, b: a > b),  # type: ignore[operator]
    "GE": _ordered(lambda a, b: a >= b),  # type: ignore[operator]
    "LT": _ordered(lambda a, b: a < b),  # type: ignore[operator]
    "LE": _ordered(lambda a, b: a <= b),  # type: ignore[operator]
    "LIKE": lambda a, b: isinstance(a, str) and isinstance(b, str) and like(a, b),
})
"""COMFND condition -> how SQL Server compares (NULL never matches)."""


# -- the company database ------------------------------------------------------------------------

class SysproData:
    """One company's tables, the rowversion counter, and the business changes tests drive."""

    def __init__(self, *, today: date, rng: random.Random, timestamp_tables: Iterable[str]) -> None:
        unknown = set(timestamp_tables) - set(SCHEMAS)
        if unknown:
            raise ValueError(f"timestamp_tables names unknown tables: {sorted(unknown)}")
        self.timestamp_tables = frozenset(timestamp_tables)
        self.rows: dict[str, list[Row]] = {name: [] for name in SCHEMAS}
        self._index: dict[str, dict[tuple[str, ...], Row]] = {name: {} for name in SCHEMAS}
        self._rowversion = FIRST_ROWVERSION
        self._journals: dict[tuple[int, int], dict[date, int]] = {}  # period -> posting day -> Journal
        self._seed(today, rng)

    def columns(self, table: str) -> tuple[Column, ...]:
        """The table's columns, ``TimeStamp`` last when the table has one; KeyError if unknown."""
        base = SCHEMAS[table].columns
        return (*base, Column(TIMESTAMP, "rowversion")) if table in self.timestamp_tables else base

    def column(self, table: str, name: str) -> Column | None:
        return next((c for c in self.columns(table) if c.name == name), None)

    def touch(self, table: str, row: Row) -> None:
        """Give the row a new rowversion (SQL Server does this on every write)."""
        if table in self.timestamp_tables:
            self._rowversion += 1
            row[TIMESTAMP] = self._rowversion

    def insert(self, table: str, row: Row) -> Row:
        names = {c.name for c in SCHEMAS[table].columns}
        if set(row) != names:
            raise ValueError(f"{table} row must have exactly {sorted(names)}")
        key = tuple(sql_text(str(row[k])) for k in SCHEMAS[table].key)
        if key in self._index[table]:
            raise ValueError(f"duplicate {table} key {key}")
        self.touch(table, row)
        self.rows[table].append(row)
        self._index[table][key] = row
        return row

    def find(self, table: str, key: tuple[str, ...]) -> Row | None:
        """The row whose key equals ``key`` as SQL Server compares (key columns never change)."""
        return self._index[table].get(tuple(sql_text(k) for k in key))

    def key_order(self, table: str, rows: Iterable[Row]) -> list[Row]:
        """Clustered-index order, which is what an unordered scan returns in practice."""
        names = SCHEMAS[table].key
        return sorted(rows, key=lambda r: tuple(sort_key(r[n]) for n in names))

    # -- business changes ------------------------------------------------------------------------

    def add_supplier(self, supplier: str, name: str, *, currency: str = "$", short_name: str = "") -> Row:
        return self.insert("ApSupplier", {
            "Supplier": supplier, "SupplierName": name, "SupShortName": short_name or name[:10].upper(),
            "CurrentBalance": Decimal("0.00"), "OnHold": "N", "TermsCode": "30", "Currency": currency,
        })

    def add_purchase_order(
        self,
        *,
        supplier: str,
        lines: Iterable[tuple[str, Decimal, Decimal]],
        entry_date: date,
        status: str = "0",
        buyer: str = "BRH",
        warehouse: str = "FG",
        number: int | None = None,
    ) -> str:
        """Enter a PO with (stock code, quantity, price) lines; returns its padded key."""
        sup = self.find("ApSupplier", (supplier,))
        if sup is None:
            raise KeyError(f"supplier {supplier}")
        if status not in ORDER_STATUS:
            raise ValueError(f"OrderStatus must be one of {sorted(ORDER_STATUS)}")
        number = number if number is not None else len(self.rows["PorMasterHdr"]) + 1
        key = po_key(number)
        due = entry_date + timedelta(days=14)
        stock = {code: (desc, uom) for code, desc, uom in STOCK}
        detail: list[Row] = []
        for line_no, (code, qty, price) in enumerate(lines, start=1):
            desc, uom = stock.get(code, (code, "EA"))
            detail.append({
                "PurchaseOrder": key, "Line": line_no, "LineType": "1", "MStockCode": code,
                "MStockDes": desc, "MWarehouse": warehouse,
                "MOrderQty": Decimal(qty).quantize(Decimal("1.000000")), "MReceivedQty": Decimal("0.000000"),
                "MPrice": Decimal(price).quantize(Decimal("1.00000")),
                "MOrderUom": uom, "MCompleteFlag": "", "MLatestDueDate": due, "MGlCode": "1908-00",
            })
        if not detail:
            raise ValueError("a purchase order needs at least one line")
        self.insert("PorMasterHdr", {
            "PurchaseOrder": key, "OrderStatus": status, "Supplier": str(sup["Supplier"]),
            "CancelledFlag": "Y" if status == "*" else "",
            "DatePoCompleted": entry_date if status == "9" else None,
            "DateLastDocPrt": entry_date if status in ("4", "9") else None, "OrderEntryDate": entry_date,
            "OrderDueDate": due, "Buyer": buyer, "Warehouse": warehouse, "Currency": str(sup["Currency"]),
        })
        for row in detail:
            self.insert("PorMasterDetail", row)
        return key

    def set_po_status(self, purchase_order: str, status: str, *, today: date) -> Row:
        """Move a PO to ``status`` the way the SYSPRO programs do (flags and dates follow)."""
        row = self.find("PorMasterHdr", (purchase_order,))
        if row is None:
            raise KeyError(f"purchase order {purchase_order!r}")
        if status not in ORDER_STATUS:
            raise ValueError(f"OrderStatus must be one of {sorted(ORDER_STATUS)}")
        row["OrderStatus"] = status
        row["CancelledFlag"] = "Y" if status == "*" else ""
        if status == "9":
            row["DatePoCompleted"] = today
        if status == "4":
            row["DateLastDocPrt"] = today
        self.touch("PorMasterHdr", row)
        return row

    def post_ap_invoice(
        self,
        *,
        supplier: str,
        invoice: str,
        amount: Decimal,
        invoice_date: date,
        post_date: date,
        reference: str = "",
    ) -> Row:
        """Post an AP invoice; dates may lie in the past (back-dated posting) while the row is new."""
        sup = self.find("ApSupplier", (supplier,))
        if sup is None:
            raise KeyError(f"supplier {supplier}")
        value = Decimal(amount).quantize(Decimal("0.01"))
        row = self.insert("ApInvoice", {
            "Supplier": str(sup["Supplier"]), "Invoice": invoice, "InvoiceDate": invoice_date,
            "PostDate": post_date, "DueDate": invoice_date + timedelta(days=30), "OrigInvValue": value,
            "OrigDiscValue": Decimal("0.00"), "PaymentNumber": "", "MthInvBal1": value,
            "MthInvBal2": Decimal("0.00"), "MthInvBal3": Decimal("0.00"), "ConvRate": Decimal("1.000000"),
            "Currency": str(sup["Currency"]), "Reference": reference, "Branch": "10",
        })
        balance = sup["CurrentBalance"]
        sup["CurrentBalance"] = (balance if isinstance(balance, Decimal) else Decimal(0)) + value
        self.touch("ApSupplier", sup)
        self._journal_entry(row, post_date, value, reference)
        return row

    def _journal_entry(self, invoice: Row, post_date: date, value: Decimal, reference: str) -> Row:
        """The posted invoice's entry in the AP posting journal (see the module docstring)."""
        period = (post_date.year, post_date.month)
        days = self._journals.setdefault(period, {})
        journal = days.setdefault(post_date, len(days) + 1)
        entries = sum(1 for r in self.rows["ApJnlSummary"]
                      if (r["TrnYear"], r["TrnMonth"], r["Journal"]) == (*period, journal))
        return self.insert("ApJnlSummary", {
            "TrnYear": period[0], "TrnMonth": period[1], "Journal": journal, "EntryNumber": entries + 1,
            "Supplier": invoice["Supplier"], "Invoice": invoice["Invoice"], "TrnType": "I",
            "JnlDate": post_date, "TrnValue": value, "Reference": reference,
        })

    def journal_entry_of(self, supplier: str, invoice: str) -> Row | None:
        """The AP journal entry that posted this invoice, if it was posted."""
        return next((r for r in self.rows["ApJnlSummary"]
                     if sql_text(str(r["Supplier"])) == sql_text(supplier)
                     and sql_text(str(r["Invoice"])) == sql_text(invoice)), None)

    # -- seed ------------------------------------------------------------------------------------

    def _seed(self, today: date, rng: random.Random) -> None:
        """Nine suppliers, 240 POs and 180 invoices over the last months, deterministic per seed."""
        for code, name, short, currency in SUPPLIERS:
            self.add_supplier(code, name, currency=currency, short_name=short)
        codes = [s[0] for s in SUPPLIERS]
        statuses = "0" * 3 + "1" * 3 + "4" * 8 + "9" * 8 + "*" * 2
        for n in range(1, 241):
            lines = [(rng.choice(STOCK)[0], Decimal(rng.choice((10, 250, 1200, 38400))),
                      Decimal(rng.randrange(50, 250000)) / 100) for _ in range(rng.randint(1, 3))]
            self.add_purchase_order(
                supplier=rng.choice(codes), lines=lines, entry_date=today - timedelta(days=240 - n // 2),
                status=rng.choice(statuses), buyer=rng.choice(BUYERS), warehouse=rng.choice(("FG", "RM")),
            )
        for n in range(1, 181):
            invoice_date = today - timedelta(days=180 - n + rng.randint(0, 3))
            row = self.post_ap_invoice(
                supplier=rng.choice(codes), invoice=f"INV-{10000 + n}",
                amount=Decimal(rng.randrange(1000, 5000000)) / 100, invoice_date=invoice_date,
                post_date=min(today, invoice_date + timedelta(days=rng.randint(0, 3))),
                reference=f"PO {po_key(rng.randint(1, 240)).strip()}",
            )
            if rng.random() < 0.4:
                row["PaymentNumber"] = f"P{rng.randint(100, 999):05d}"
                row["MthInvBal1"] = Decimal("0.00")
