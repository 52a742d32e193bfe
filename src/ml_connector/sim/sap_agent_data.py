"""The simulated SAP ECC's transparent tables as RFC_READ_TABLE sees them: the dictionary and rows.

Field lists follow the reference notes (erp-apis.md §3.2, §3.3): EKKO (AEDAT is the *creation*
date), EKPO (NETWR on the item), CDHDR/CDPOS change documents of object class EINKBELEG, RBKP
(XBLNR the supplier's reference, CPUDT/CPUTM entry date and time), LFA1 with its address number
and ADR6 e-mail addresses, T024 purchasing groups. Values are kept in ABAP internal form: CHAR
and NUMC as text, DATS ``YYYYMMDD``, TIMS ``HHMMSS``, packed numbers as Decimal. LFA1 and RBKP
are wider than RFC_READ_TABLE's 512-character work area, as in a real system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

Value = str | Decimal | int


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str        # ABAP internal type: C, N, D, T, P, I
    length: int      # characters in RFC_READ_TABLE's work area
    text: str
    decimals: int = 0


def _c(name: str, length: int, text: str) -> Field:
    return Field(name, "C", length, text)


def _n(name: str, length: int, text: str) -> Field:
    return Field(name, "N", length, text)


def _d(name: str, text: str) -> Field:
    return Field(name, "D", 8, text)


def _t(name: str, text: str) -> Field:
    return Field(name, "T", 6, text)


def _p(name: str, text: str, length: int = 16) -> Field:
    return Field(name, "P", length, text, decimals=2)


_MANDT = _c("MANDT", 3, "Client")

TABLES: dict[str, tuple[Field, ...]] = {
    "EKKO": (_MANDT, _c("EBELN", 10, "Purchasing Document Number"), _c("BUKRS", 4, "Company Code"),
             _c("BSTYP", 1, "Purchasing Document Category"), _c("BSART", 4, "Purchasing Document Type"),
             _c("LOEKZ", 1, "Deletion Indicator"), _c("STATU", 1, "Status"),
             _d("AEDAT", "Date on Which Record Was Created"), _c("ERNAM", 12, "Name of Person who Created"),
             _c("LIFNR", 10, "Vendor Account Number"), _c("SPRAS", 1, "Language Key"),
             _c("EKORG", 4, "Purchasing Organization"), _c("EKGRP", 3, "Purchasing Group"),
             _c("WAERS", 5, "Currency Key"), _d("BEDAT", "Purchasing Document Date"),
             _c("FRGKE", 1, "Release Indicator"), _c("FRGZU", 8, "Release status"),
             _p("RLWRT", "Total value at time of release"), _c("VERKF", 30, "Responsible Salesperson")),
    "EKPO": (_MANDT, _c("EBELN", 10, "Purchasing Document Number"), _n("EBELP", 5, "Item Number"),
             _c("LOEKZ", 1, "Deletion Indicator"), _c("TXZ01", 40, "Short Text"), _c("MATNR", 18, "Material"),
             _c("WERKS", 4, "Plant"), _c("MATKL", 9, "Material Group"), _p("MENGE", "Purchase Order Quantity", 17),
             _c("MEINS", 3, "Order Unit"), _p("NETPR", "Net Price"), _p("NETWR", "Net Order Value"),
             _d("EINDT", "Item Delivery Date")),
    "CDHDR": (_MANDT, _c("OBJECTCLAS", 15, "Object class"), _c("OBJECTID", 90, "Object value"),
              _c("CHANGENR", 10, "Document change number"), _c("USERNAME", 12, "User name"),
              _d("UDATE", "Creation date of the change document"), _t("UTIME", "Time changed"),
              _c("TCODE", 20, "Transaction in which a change was made"),
              _c("CHANGE_IND", 1, "Change type (U, I, E, D)")),
    "CDPOS": (_MANDT, _c("OBJECTCLAS", 15, "Object class"), _c("OBJECTID", 90, "Object value"),
              _c("CHANGENR", 10, "Document change number"), _c("TABNAME", 30, "Table Name"),
              _c("TABKEY", 70, "Changed table record key"), _c("FNAME", 30, "Field Name"),
              _c("CHNGIND", 1, "Change Type (U, I, E, D)"), _c("VALUE_NEW", 254, "New contents of changed field"),
              _c("VALUE_OLD", 254, "Old contents of changed field")),
    "RBKP": (_MANDT, _c("BELNR", 10, "Document Number of an Invoice Document"), _n("GJAHR", 4, "Fiscal Year"),
             _c("BLART", 2, "Document Type"), _d("BLDAT", "Invoice Date in Document"),
             _d("BUDAT", "Posting Date in the Document"), _c("USNAM", 12, "User name"),
             _c("TCODE", 20, "Transaction Code"), _d("CPUDT", "Day On Which Accounting Document Was Entered"),
             _t("CPUTM", "Time of Entry"), _c("XBLNR", 16, "Reference Document Number"),
             _c("BUKRS", 4, "Company Code"), _c("LIFNR", 10, "Different Invoicing Party"),
             _c("WAERS", 5, "Currency Key"), _p("RMWWR", "Gross Invoice Amount in Document Currency"),
             _c("RBSTAT", 1, "Invoice document status"), _c("STBLG", 10, "Reversal document number"),
             _c("ZUONR", 18, "Assignment Number"), _c("BKTXT", 25, "Document Header Text"),
             _c("SGTXT", 50, "Item Text"), _c("ZTERM", 4, "Terms of Payment Key"),
             _c("EMPFB", 10, "Payee/Payer"), _c("BVTYP", 4, "Partner bank type"),
             _c("HBKID", 5, "Short Key for a House Bank"), _c("ZLSPR", 1, "Payment Block Key"),
             _c("NAME1", 35, "Name 1 (one-time vendor)"), _c("NAME2", 35, "Name 2 (one-time vendor)"),
             _c("ORT01", 35, "City (one-time vendor)"), _c("STRAS", 35, "Street (one-time vendor)"),
             _c("PSTLZ", 10, "Postal Code (one-time vendor)"), _c("LAND1", 3, "Country Key"),
             _c("STCEG", 20, "VAT Registration Number"), _c("BANKN", 18, "Bank account number"),
             _c("BANKL", 15, "Bank number"), _c("IBAN", 34, "IBAN")),
    "LFA1": (_MANDT, _c("LIFNR", 10, "Account Number of Vendor or Creditor"), _c("LAND1", 3, "Country Key"),
             _c("NAME1", 35, "Name 1"), _c("NAME2", 35, "Name 2"), _c("NAME3", 35, "Name 3"),
             _c("NAME4", 35, "Name 4"), _c("ORT01", 35, "City"), _c("ORT02", 35, "District"),
             _c("PFACH", 10, "PO Box"), _c("PSTL2", 10, "P.O. Box Postal Code"), _c("PSTLZ", 10, "Postal Code"),
             _c("REGIO", 3, "Region"), _c("SORTL", 10, "Search term"), _c("STRAS", 35, "House number and street"),
             _c("ADRNR", 10, "Address"), _c("MCOD1", 25, "Search term for matchcode"),
             _c("MCOD2", 25, "Search term for matchcode"), _c("MCOD3", 25, "Search term for matchcode"),
             _c("ANRED", 15, "Title"), _c("BAHNS", 25, "Train station"),
             _c("BBBNR", 7, "International location number"),
             _c("BEGRU", 4, "Authorization Group"), _c("BRSCH", 4, "Industry key"), _c("DATLT", 14, "Data line"),
             _d("ERDAT", "Date on which the Record Was Created"), _c("ERNAM", 12, "Created by"),
             _c("KTOKK", 4, "Vendor account group"), _c("SPRAS", 1, "Language Key"),
             _c("STCD1", 16, "Tax Number 1"), _c("STCD2", 11, "Tax Number 2"), _c("STCEG", 20, "VAT Registration No."),
             _c("TELF1", 16, "First telephone number"), _c("TELF2", 16, "Second telephone number"),
             _c("TELFX", 31, "Fax Number"), _c("TELTX", 30, "Teletex number"), _c("TELX1", 30, "Telex number"),
             _c("SPERR", 1, "Central posting block"), _c("SPERM", 1, "Centrally imposed purchasing block"),
             _c("LOEVM", 1, "Central Deletion Flag")),
    "ADR6": (_MANDT, _c("ADDRNUMBER", 10, "Address number"), _c("PERSNUMBER", 10, "Person number"),
             _d("DATE_FROM", "Valid-from date"), _n("CONSNUMBER", 3, "Sequence number"),
             _c("FLGDEFAULT", 1, "Flag: this address is the default address"),
             _c("FLG_NOUSE", 1, "Flag: this communication number is not used"),
             _c("HOME_FLAG", 1, "Recipient's home address"),
             _c("SMTP_ADDR", 241, "E-Mail Address"), _c("SMTP_SRCH", 20, "E-Mail Address Search Field")),
    "T024": (_MANDT, _c("EKGRP", 3, "Purchasing Group"), _c("EKNAM", 18, "Description of purchasing group"),
             _c("EKTEL", 12, "Telephone number of purchasing group (buyer group)"),
             _c("LDEST", 4, "Spool: Output device"), _c("TELFX", 31, "Fax number of purchasing group"),
             _c("TEL_NUMBER", 30, "Telephone no.: dialling code+number"),
             _c("TEL_EXTENS", 10, "Telephone no.: Extension"),
             _c("SMTP_ADDR", 241, "E-Mail Address")),
    "ZMLC_DELIVERY": (_MANDT, _c("NOTIFICATION_ID", 20, "Notification"), _c("FLOW", 40, "Flow"),
                      _c("RECORD_KEY", 40, "Document"), _c("MESSAGE_SID", 34, "Message SID"),
                      _c("STATUS", 20, "Delivery status"), _c("ERROR_CODE", 10, "Error code"),
                      _c("FINISHED_AT", 14, "Finished (UTC timestamp)")),
}

#: the key fields of each table (DD03L KEYFLAG), client first
KEYS: dict[str, tuple[str, ...]] = {
    "EKKO": ("MANDT", "EBELN"), "EKPO": ("MANDT", "EBELN", "EBELP"),
    "CDHDR": ("MANDT", "OBJECTCLAS", "OBJECTID", "CHANGENR"),
    "CDPOS": ("MANDT", "OBJECTCLAS", "OBJECTID", "CHANGENR", "TABNAME", "TABKEY", "FNAME", "CHNGIND"),
    "RBKP": ("MANDT", "BELNR", "GJAHR"), "LFA1": ("MANDT", "LIFNR"),
    "ADR6": ("MANDT", "ADDRNUMBER", "PERSNUMBER", "DATE_FROM", "CONSNUMBER"), "T024": ("MANDT", "EKGRP"),
    "ZMLC_DELIVERY": ("MANDT", "NOTIFICATION_ID"),
}


@dataclass
class Row:
    """A table row; `committed` False while the V1 update task has not written it yet."""

    values: dict[str, Value]
    committed: bool = True


@dataclass
class Database:
    """The rows of every table, in insertion order (RFC_READ_TABLE promises no order)."""

    rows: dict[str, list[Row]] = field(default_factory=lambda: {name: [] for name in TABLES})

    def insert(self, table: str, values: dict[str, Value], *, committed: bool = True, client: str = "100") -> Row:
        blank: dict[str, Value] = {f.name: (Decimal("0") if f.type == "P" else 0 if f.type == "I"
                                            else "00000000" if f.type == "D" else "000000" if f.type == "T"
                                            else "") for f in TABLES[table]}
        blank["MANDT"] = client
        unknown = set(values) - set(blank)
        if unknown:
            raise KeyError(f"{table} has no field {', '.join(sorted(unknown))}")
        row = Row({**blank, **values}, committed)
        self.rows[table].append(row)
        return row

    def visible(self, table: str, client: str) -> list[dict[str, Value]]:
        return [r.values for r in self.rows[table] if r.committed and r.values.get("MANDT") == client]

    def find(self, table: str, client: str, **match: Value) -> list[dict[str, Value]]:
        return [r for r in self.visible(table, client) if all(r.get(k) == v for k, v in match.items())]
