"""The function modules the simulated SAP system offers over the agent protocol.

Each is ``(system, context, imports, tables) -> (exports, tables)`` or raises `AbapException`
(a function exception such as TABLE_NOT_AVAILABLE, DATA_BUFFER_EXCEEDED) . BAPIs report business
errors in RETURN (BAPIRET2) rows, not as exceptions. Written from erp-apis.md §3.3:

* RFC_READ_TABLE: QUERY_TABLE, DELIMITER, NO_DATA, ROWSKIPS, ROWCOUNT; OPTIONS (WHERE in
  72-character lines), FIELDS (answered with OFFSET, LENGTH, TYPE, FIELDTEXT), DATA-WA of 512
  characters: wider selections raise DATA_BUFFER_EXCEEDED (message AD 559). Rows come in no
  particular order (here: a stable order unrelated to the key).
* BAPI_PO_GETDETAIL1 (POHEADER, POITEM, POSCHEDULE, RETURN), BAPI_VENDOR_GETDETAIL
  (GENERALDETAIL, RETURN), RFC_SYSTEM_INFO, DDIF_FIELDINFO_GET, BAPI_TRANSACTION_COMMIT and
  _ROLLBACK, and a customer's Z module recording delivery statuses, whose writes wait in the
  session's logical unit of work until BAPI_TRANSACTION_COMMIT in the same session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from ml_connector.sim.sap_agent_data import KEYS, TABLES, Database, Field, Value
from ml_connector.sim.sap_agent_where import OptionNotValid, compile_where, join_lines

WORK_AREA = 512


class AbapException(Exception):
    """A classic function exception (RAISE key), with the message SAP attaches."""

    def __init__(self, key: str, message: str, *, msg_class: str = "", number: str = "",
                 v: tuple[str, ...] = ()) -> None:
        self.key = key
        self.message = message
        self.msg_class = msg_class
        self.number = number
        self.v = v
        super().__init__(f"{key}: {message}")


class System(Protocol):
    """What the functions need of the simulated system."""

    db: Database
    client: str
    user: str
    sid: str
    release: str
    not_authorized: set[str]
    display_blocked: set[str]


@dataclass
class Context:
    """One RFC connection's user context: its logical unit of work (writes not yet committed)."""

    pending: list[tuple[str, dict[str, Value]]] = field(default_factory=list)


Imports = Mapping[str, Any]
Tables = Mapping[str, list[dict[str, Any]]]
Answer = tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]
Function = Callable[[System, Context, Imports, Tables], Answer]


def bapiret2(kind: str, msg_class: str, number: str, text: str, *v: str) -> dict[str, Any]:
    row = {"TYPE": kind, "ID": msg_class, "NUMBER": number, "MESSAGE": text, "LOG_NO": "", "LOG_MSG_NO": "000000",
           "PARAMETER": "", "ROW": 0, "FIELD": "", "SYSTEM": ""}
    for n in range(4):
        row[f"MESSAGE_V{n + 1}"] = v[n] if n < len(v) else ""
    return row


def encode(f: Field, value: Value) -> str:
    """A value as RFC_READ_TABLE writes it into the work area: padded to the field's length."""
    if f.type in ("P", "I"):
        number = Decimal(str(value))
        text = (f"{abs(number):.{f.decimals}f}" if f.type == "P" else str(abs(int(number))))
        text += "-" if number < 0 else " "
        return text.rjust(f.length)[-f.length:]
    if f.type == "N":
        return str(value).zfill(f.length)[-f.length:]
    return str(value).ljust(f.length)[:f.length]


def _fields_of(table: str) -> dict[str, Field]:
    return {f.name: f for f in TABLES[table]}


def _stable_order(table: str, rows: list[dict[str, Value]]) -> list[dict[str, Value]]:
    def digest(row: dict[str, Value]) -> str:
        key = "|".join(str(row[k]) for k in KEYS[table])
        return hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()
    return sorted(rows, key=digest)


def rfc_read_table(system: System, context: Context, imports: Imports, tables: Tables) -> Answer:
    name = str(imports.get("QUERY_TABLE", "")).strip().upper()
    if name not in TABLES:
        raise AbapException("TABLE_NOT_AVAILABLE", f"Table {name} is not active in the dictionary")
    if name in system.not_authorized:
        raise AbapException("NOT_AUTHORIZED", f"No authorization for table {name} (S_TABU_DIS)")
    fields = _fields_of(name)
    delimiter = str(imports.get("DELIMITER", ""))[:1]
    delimiter = "" if delimiter == " " else delimiter
    asked = [str(row.get("FIELDNAME", "")).strip().upper() for row in tables.get("FIELDS", [])]
    asked = [a for a in asked if a] or list(fields)
    unknown = [a for a in asked if a not in fields]
    if unknown:
        raise AbapException("TABLE_WITHOUT_DATA", f"Field {unknown[0]} does not exist in table {name}")
    chosen = [fields[a] for a in asked]
    out_fields, offset = [], 0
    for n, f in enumerate(chosen):
        if n:
            offset += len(delimiter)
        out_fields.append({"FIELDNAME": f.name, "OFFSET": f"{offset:06d}", "LENGTH": f"{f.length:06d}",
                           "TYPE": f.type, "FIELDTEXT": f.text})
        offset += f.length
    if offset > WORK_AREA:
        raise AbapException("DATA_BUFFER_EXCEEDED", f"Data buffer exceeded: table {name}, {WORK_AREA} characters",
                            msg_class="AD", number="559", v=(name, str(WORK_AREA)))
    result_tables: dict[str, list[dict[str, Any]]] = {
        "FIELDS": out_fields, "OPTIONS": list(tables.get("OPTIONS", [])), "DATA": []}
    if str(imports.get("NO_DATA", "")).strip():
        return {}, result_tables
    try:
        where = join_lines([str(row.get("TEXT", "")) for row in tables.get("OPTIONS", [])])
        predicate = compile_where(where, fields)
        rows = [r for r in system.db.visible(name, system.client) if predicate(r)]
    except OptionNotValid as exc:
        raise AbapException("OPTION_NOT_VALID", f"Selection criteria are not valid: {exc}") from None
    rows = _stable_order(name, rows)
    skip = int(imports.get("ROWSKIPS") or 0)
    count = int(imports.get("ROWCOUNT") or 0)
    rows = rows[skip:skip + count] if count else rows[skip:]
    result_tables["DATA"] = [{"WA": delimiter.join(encode(f, r[f.name]) for f in chosen)} for r in rows]
    return {}, result_tables


def ddif_fieldinfo_get(system: System, context: Context, imports: Imports, tables: Tables) -> Answer:
    name = str(imports.get("TABNAME", "")).strip().upper()
    if name not in TABLES:
        raise AbapException("NOT_FOUND", f"Table {name} not found")
    rows, offset = [], 0
    for n, f in enumerate(TABLES[name], start=1):
        rows.append({"TABNAME": name, "FIELDNAME": f.name, "POSITION": f"{n:04d}", "OFFSET": f"{offset:06d}",
                     "LENG": f"{f.length:06d}", "OUTPUTLEN": f"{f.length:06d}", "DECIMALS": f"{f.decimals:06d}",
                     "DATATYPE": {"C": "CHAR", "N": "NUMC", "D": "DATS", "T": "TIMS", "P": "CURR", "I": "INT4"}[f.type],
                     "INTTYPE": f.type, "FIELDTEXT": f.text, "KEYFLAG": "X" if f.name in KEYS[name] else ""})
        offset += f.length
    return {}, {"DFIES_TAB": rows}


def rfc_system_info(system: System, context: Context, imports: Imports, tables: Tables) -> Answer:
    return {"RFCSI_EXPORT": {"RFCPROTO": "011", "RFCCHARTYP": "4103", "RFCINTTYP": "LIT", "RFCFLOTYP": "IE3",
                             "RFCDEST": f"sapecd01_{system.sid}_00", "RFCHOST": "sapecd01", "RFCSYSID": system.sid,
                             "RFCDATABS": system.sid, "RFCDBHOST": "sapecddb", "RFCDBSYS": "ORACLE",
                             "RFCSAPRL": system.release, "RFCMACH": "  390", "RFCOPSYS": "Linux",
                             "RFCTZONE": "  3600", "RFCDAYST": "", "RFCIPADDR": "10.0.0.12",
                             "RFCKERNRL": "753", "RFCHOST2": "sapecd01", "RFCSI_RESV": ""}}, {}


def _po_number(value: Any) -> str:
    text = str(value or "").strip()
    return text.zfill(10) if text.isdigit() else text


def bapi_po_getdetail1(system: System, context: Context, imports: Imports, tables: Tables) -> Answer:
    ebeln = _po_number(imports.get("PURCHASEORDER"))
    found = system.db.find("EKKO", system.client, EBELN=ebeln)
    if not found:
        return {"POHEADER": {}}, {"RETURN": [bapiret2("E", "06", "019", f"Purchase order {ebeln} does not exist",
                                                      ebeln)], "POITEM": [], "POSCHEDULE": []}
    ekko = found[0]
    if str(ekko["EKGRP"]) in system.display_blocked:  # no M_BEST_EKG display authority for the group
        return {"POHEADER": {}}, {"RETURN": [bapiret2("E", "ME", "045", f"No authorization to display purchase "
                                                      f"order {ebeln}", ebeln, str(ekko["EKGRP"]))],
                                  "POITEM": [], "POSCHEDULE": []}
    header = {"PO_NUMBER": ekko["EBELN"], "COMP_CODE": ekko["BUKRS"], "DOC_CAT": ekko["BSTYP"],
              "DOC_TYPE": ekko["BSART"], "DELETE_IND": ekko["LOEKZ"], "STATUS": ekko["STATU"],
              "CREAT_DATE": ekko["AEDAT"], "CREATED_BY": ekko["ERNAM"], "VENDOR": ekko["LIFNR"],
              "LANGU": ekko["SPRAS"], "PURCH_ORG": ekko["EKORG"], "PUR_GROUP": ekko["EKGRP"],
              "CURRENCY": ekko["WAERS"], "DOC_DATE": ekko["BEDAT"], "REL_IND": ekko["FRGKE"],
              "REL_STATUS": ekko["FRGZU"], "SALES_PERS": ekko["VERKF"]}
    items, schedules = [], []
    for ekpo in sorted(system.db.find("EKPO", system.client, EBELN=ebeln), key=lambda r: str(r["EBELP"])):
        items.append({"PO_ITEM": ekpo["EBELP"], "DELETE_IND": ekpo["LOEKZ"], "SHORT_TEXT": ekpo["TXZ01"],
                      "MATERIAL": ekpo["MATNR"], "PLANT": ekpo["WERKS"], "MATL_GROUP": ekpo["MATKL"],
                      "QUANTITY": str(ekpo["MENGE"]), "PO_UNIT": ekpo["MEINS"], "NET_PRICE": str(ekpo["NETPR"]),
                      "PRICE_UNIT": 1})
        schedules.append({"PO_ITEM": ekpo["EBELP"], "SCHED_LINE": "0001", "DELIVERY_DATE": ekpo["EINDT"],
                          "QUANTITY": str(ekpo["MENGE"])})
    exports = {"POHEADER": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in header.items()},
               "POEXPIMPHEADER": {}}
    return exports, {"RETURN": [], "POITEM": items, "POSCHEDULE": schedules}


def bapi_vendor_getdetail(system: System, context: Context, imports: Imports, tables: Tables) -> Answer:
    lifnr = _po_number(imports.get("VENDORNO"))
    found = system.db.find("LFA1", system.client, LIFNR=lifnr)
    if not found:
        return {"GENERALDETAIL": {}, "RETURN": bapiret2("E", "F2", "163", f"Vendor {lifnr} does not exist", lifnr)}, {}
    lfa1 = found[0]
    general = {"VENDOR": lfa1["LIFNR"], "NAME": lfa1["NAME1"], "NAME_2": lfa1["NAME2"], "CITY": lfa1["ORT01"],
               "POSTL_CODE": lfa1["PSTLZ"], "STREET": lfa1["STRAS"], "COUNTRY": lfa1["LAND1"],
               "LANGU": lfa1["SPRAS"], "TELEPHONE": lfa1["TELF1"], "TELEPHONE2": lfa1["TELF2"],
               "FAX_NUMBER": lfa1["TELFX"]}
    return {"GENERALDETAIL": general, "COMPANYDETAIL": {}, "RETURN": {k: "" for k in bapiret2("", "", "", "")}}, {}


def bapi_transaction_commit(system: System, context: Context, imports: Imports, tables: Tables) -> Answer:
    for table, values in context.pending:
        system.db.insert(table, values, client=system.client)
    context.pending.clear()
    return {"RETURN": {k: "" for k in bapiret2("", "", "", "")}}, {}


def bapi_transaction_rollback(system: System, context: Context, imports: Imports, tables: Tables) -> Answer:
    context.pending.clear()
    return {"RETURN": {k: "" for k in bapiret2("", "", "", "")}}, {}


DELIVERY_FIELDS = ("NOTIFICATION_ID", "FLOW", "RECORD_KEY", "MESSAGE_SID", "STATUS", "ERROR_CODE", "FINISHED_AT")


def z_delivery_status(system: System, context: Context, imports: Imports, tables: Tables) -> Answer:
    """The customer's Z module: records one final status in ZMLC_DELIVERY (in the update task)."""
    widths = _fields_of("ZMLC_DELIVERY")
    values = {name: str(imports.get(name, ""))[:widths[name].length] for name in DELIVERY_FIELDS}
    if not values["NOTIFICATION_ID"].strip():
        return {}, {"RETURN": [bapiret2("E", "ZMLC", "001", "Notification id is initial")]}
    if not values["STATUS"].strip():
        return {}, {"RETURN": [bapiret2("E", "ZMLC", "002", f"Status is initial for {values['NOTIFICATION_ID']}",
                                        values["NOTIFICATION_ID"])]}
    context.pending.append(("ZMLC_DELIVERY", dict(values)))
    return {}, {"RETURN": [bapiret2("S", "ZMLC", "000", "Delivery status recorded", values["NOTIFICATION_ID"])]}


FUNCTIONS: dict[str, Function] = {
    "RFC_READ_TABLE": rfc_read_table, "DDIF_FIELDINFO_GET": ddif_fieldinfo_get,
    "RFC_SYSTEM_INFO": rfc_system_info, "BAPI_PO_GETDETAIL1": bapi_po_getdetail1,
    "BAPI_VENDOR_GETDETAIL": bapi_vendor_getdetail, "BAPI_TRANSACTION_COMMIT": bapi_transaction_commit,
    "BAPI_TRANSACTION_ROLLBACK": bapi_transaction_rollback, "Z_MLC_DELIVERY_STATUS": z_delivery_status,
}
