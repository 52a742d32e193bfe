"""The simulated SAP ECC's tables and the Gateway services over them, with their $metadata.

Tables (ABAP names in comments): purchase orders (EKKO, header net value summed from EKPO),
their change documents (CDHDR, object class EINKBELEG: UDATE/UTIME in SAP wall time), supplier
invoices (RBKP: XBLNR the supplier's reference, CPUDT/CPUTM entry date and time, RBSTAT the
status, STBLG the reversal document), suppliers (LFA1), supplier contacts (KNVK-like, with
ADR6 e-mail) and purchasing groups (T024 with the buyer's phone). Numbers are ALPHA-padded as
SAP stores them (LIFNR ``0000100000``), dates are DATS (Edm.DateTime, sap:display-format="Date"),
times TIMS (Edm.Time).

The PO service is a customer's ``ZMM_PO_SRV`` (SEGW): it exposes the newest *committed* change
document of each PO as ``ChangedOn``/``ChangedAt``, since EKKO-AEDAT is the creation date. A V1
update task can commit a change document late, stamped with the time of the dialog step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import quoteattr

Value = str | Decimal | date | datetime | time | int | bool | None


@dataclass(frozen=True, slots=True)
class Prop:
    name: str
    edm: str
    length: int | None = None
    label: str = ""
    date_only: bool = False
    filterable: bool = True
    sortable: bool = True


@dataclass(frozen=True, slots=True)
class SetSchema:
    name: str
    type_name: str
    keys: tuple[str, ...]
    props: tuple[Prop, ...]
    pageable: bool = True
    creatable: bool = False

    def prop(self, name: str) -> Prop | None:
        return next((p for p in self.props if p.name == name), None)


def _s(name: str, length: int, label: str) -> Prop:
    return Prop(name, "Edm.String", length, label)


def _d(name: str, label: str) -> Prop:
    return Prop(name, "Edm.DateTime", None, label, date_only=True)


PO_SET = SetSchema("PurchaseOrderSet", "PurchaseOrder", ("Ebeln",), (
    _s("Ebeln", 10, "Purchasing Doc."), _s("Bukrs", 4, "Company Code"), _s("Bstyp", 1, "Doc. Category"),
    _s("Bsart", 4, "Document Type"), _s("Lifnr", 10, "Supplier"), _s("Ekorg", 4, "Purch. Organization"),
    _s("Ekgrp", 3, "Purchasing Group"), _s("Waers", 5, "Currency"), _d("Bedat", "Document Date"),
    _d("Aedat", "Created On"), _s("Ernam", 12, "Created By"), _s("Frgke", 1, "Release indicator"),
    _s("Frgzu", 8, "Release status"), Prop("Netwr", "Edm.Decimal", None, "Net Order Value"),
    _d("Eindt", "Delivery Date"), _d("ChangedOn", "Changed On"),
    Prop("ChangedAt", "Edm.Time", None, "Changed At"),
))
INVOICE_SET = SetSchema("SupplierInvoiceSet", "SupplierInvoice", ("Belnr", "Gjahr"), (
    _s("Belnr", 10, "Invoice Doc. No."), _s("Gjahr", 4, "Fiscal Year"), _s("Bukrs", 4, "Company Code"),
    _s("Lifnr", 10, "Invoicing Party"), _s("Xblnr", 16, "Reference"), _d("Bldat", "Invoice Date"),
    _d("Budat", "Posting Date"), _d("Cpudt", "Entry Date"), Prop("Cputm", "Edm.Time", None, "Time of Entry"),
    _s("Waers", 5, "Currency"), Prop("Rmwwr", "Edm.Decimal", None, "Gross Invoice Amount"),
    _s("Rbstat", 1, "Invoice Status"), _s("Stblg", 10, "Reversal Doc."), _s("Zuonr", 18, "Assignment"),
))
SUPPLIER_SET = SetSchema("SupplierSet", "Supplier", ("Lifnr",), (
    _s("Lifnr", 10, "Supplier"), _s("Name1", 35, "Name"), _s("Land1", 3, "Country"),
    _s("Telf1", 16, "Telephone 1"), _s("SmtpAddr", 241, "E-Mail Address"),
))
CONTACT_SET = SetSchema("SupplierContactSet", "SupplierContact", ("Lifnr", "Parnr"), (
    _s("Lifnr", 10, "Supplier"), _s("Parnr", 10, "Contact Person"), _s("Name1", 35, "Name"),
    _s("Pafkt", 2, "Function"), _s("Telf1", 16, "Telephone"), _s("SmtpAddr", 241, "E-Mail Address"),
))
GROUP_SET = SetSchema("PurchasingGroupSet", "PurchasingGroup", ("Ekgrp",), (
    _s("Ekgrp", 3, "Purchasing Group"), _s("Eknam", 18, "Description"), _s("Telfn", 12, "Tel.No."),
    _s("SmtpAddr", 241, "E-Mail Address"),
))
AUDIT_SET = SetSchema("DeliveryStatusSet", "DeliveryStatus", ("NotificationId",), (
    _s("NotificationId", 20, "Notification"), _s("Flow", 40, "Flow"), _s("RecordKey", 40, "Document"),
    _s("MessageSid", 34, "Message SID"), _s("Status", 20, "Status"), _s("ErrorCode", 10, "Error"),
    Prop("FinishedAt", "Edm.DateTime", None, "Finished"),
), creatable=True)

#: service name -> its entity sets
SERVICES: dict[str, tuple[SetSchema, ...]] = {
    "ZMM_PO_SRV": (PO_SET, GROUP_SET, SUPPLIER_SET, CONTACT_SET),
    "ZMM_SUPPLIER_INVOICE_SRV": (INVOICE_SET, SUPPLIER_SET),
    "ZMLC_AUDIT_SRV": (AUDIT_SET,),
}


def metadata_xml(service: str, sets: tuple[SetSchema, ...], *, unsortable: frozenset[str] = frozenset()) -> str:
    """The service's EDMX as Gateway writes it (SAP annotations, sap:display-format="Date")."""
    types = []
    for schema in sets:
        props = []
        for p in schema.props:
            attrs = [f'Name="{p.name}"', f'Type="{p.edm}"']
            if p.name in schema.keys:
                attrs.append('Nullable="false"')
            if p.length:
                attrs.append(f'MaxLength="{p.length}"')
            if p.edm == "Edm.Decimal":
                attrs += ['Precision="15"', 'Scale="2"']
            if p.edm == "Edm.DateTime":
                attrs.append('Precision="7"')
            attrs.append(f"sap:label={quoteattr(p.label)}")
            if p.date_only:
                attrs.append('sap:display-format="Date"')
            if not p.filterable:
                attrs.append('sap:filterable="false"')
            if not p.sortable or f"{schema.name}.{p.name}" in unsortable:
                attrs.append('sap:sortable="false"')
            attrs += ['sap:creatable="false"' if not schema.creatable else 'sap:creatable="true"',
                      'sap:updatable="false"']
            props.append(f"<Property {' '.join(attrs)}/>")
        keys = "".join(f'<PropertyRef Name="{k}"/>' for k in schema.keys)
        types.append(f'<EntityType Name="{schema.type_name}" sap:content-version="1"><Key>{keys}</Key>'
                     + "".join(props) + "</EntityType>")
    sets_xml = "".join(
        f'<EntitySet Name="{s.name}" EntityType="{service}.{s.type_name}" '
        f'sap:creatable="{str(s.creatable).lower()}" sap:updatable="false" sap:deletable="false"'
        + ('' if s.pageable else ' sap:pageable="false"') + ' sap:content-version="1"/>' for s in sets)
    return ('<?xml version="1.0" encoding="utf-8"?>'
            '<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" '
            'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
            'xmlns:sap="http://www.sap.com/Protocols/SAPData">'
            '<edmx:DataServices m:DataServiceVersion="2.0">'
            f'<Schema Namespace="{service}" xml:lang="en" sap:schema-version="1" '
            'xmlns="http://schemas.microsoft.com/ado/2008/09/edm">'
            + "".join(types)
            + f'<EntityContainer Name="{service}_Entities" m:IsDefaultEntityContainer="true" '
              'sap:supported-formats="atom json xlsx">' + sets_xml + "</EntityContainer>"
            "</Schema></edmx:DataServices></edmx:Edmx>")


@dataclass
class ChangeDocument:
    """CDHDR: one change of a PO, stamped UDATE/UTIME (SAP wall time) and committed or not yet."""

    ebeln: str
    at: datetime          # naive SAP wall time of the dialog step
    fields: dict[str, Value]
    committed: bool = True


@dataclass
class SapTables:
    pos: dict[str, dict[str, Value]] = field(default_factory=dict)
    changes: list[ChangeDocument] = field(default_factory=list)
    invoices: dict[tuple[str, str], dict[str, Value]] = field(default_factory=dict)
    suppliers: dict[str, dict[str, Value]] = field(default_factory=dict)
    contacts: dict[tuple[str, str], dict[str, Value]] = field(default_factory=dict)
    groups: dict[str, dict[str, Value]] = field(default_factory=dict)
    audit: dict[str, dict[str, Value]] = field(default_factory=dict)

    def po_rows(self) -> list[dict[str, Value]]:
        """PurchaseOrderSet: EKKO fields as of the committed change documents, plus ChangedOn/At."""
        rows = []
        for ebeln, header in self.pos.items():
            row = dict(header)
            docs = sorted((c for c in self.changes if c.ebeln == ebeln and c.committed), key=lambda c: c.at)
            if not docs:
                continue  # not committed yet: the update task has not written EKKO
            for doc in docs:
                row.update(doc.fields)
            row["ChangedOn"] = docs[-1].at.date()
            row["ChangedAt"] = docs[-1].at.time().replace(microsecond=0)
            rows.append(row)
        return rows

    def rows(self, entity_set: str) -> list[dict[str, Value]]:
        if entity_set == "PurchaseOrderSet":
            return self.po_rows()
        tables: dict[str, Mapping[Any, dict[str, Value]]] = {
            "SupplierInvoiceSet": self.invoices, "SupplierSet": self.suppliers,
            "SupplierContactSet": self.contacts, "PurchasingGroupSet": self.groups,
            "DeliveryStatusSet": self.audit}
        table = tables[entity_set]
        return [dict(row) for row in table.values() if not row.get("_uncommitted")]
