"""PORQRY, the purchase order query: one PO with its merchandise lines and totals.

Output follows the recorded ``PorDetail`` document: display fields carry thousands separators
(``MOrderQty`` ``38,400.000``) next to ``Unedited_`` twins right-aligned in twenty characters;
money totals are right-aligned in sixteen. The key must match as stored (``" 00001"``, SQL
comparison); the BO does not pad a key for the caller. An unknown PO, or a missing key, is a
validation error in the lower-cased XML shape.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from xml.etree.ElementTree import Element

from ml_connector.sim.syspro_data import ORDER_STATUS, Row, SysproData
from ml_connector.sim.syspro_wire import ValidationFault, document, element

ERR_PO_NOT_FOUND = 120001
ERR_PO_REQUIRED = 120002

LINE_TYPES = {"1": "Stocked line", "4": "Freight line", "5": "Miscellaneous line", "6": "Comment line",
              "7": "Non-stocked line"}


def po_key_from(root: Element) -> str:
    node = root.find("Key/PurchaseOrder")
    key = node.text or "" if node is not None else ""
    if not key.strip():
        raise ValidationFault(("Key", "PurchaseOrder"), key, ERR_PO_REQUIRED, "Purchase order is required")
    return key


def _date(value: object) -> str:
    return value.isoformat() if isinstance(value, date) else ""


def _dec(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(0)


def _merchandise(line: Row) -> list[str]:
    qty, received, price = _dec(line["MOrderQty"]), _dec(line["MReceivedQty"]), _dec(line["MPrice"])
    outstanding = qty - received
    return [
        "<PurchaseOrderLine>", "<Merchandise>",
        element("Line", str(line["Line"])),
        element("LineType", str(line["LineType"])),
        element("LineTypeDescription", LINE_TYPES.get(str(line["LineType"]), "")),
        element("MStockCode", str(line["MStockCode"])),
        element("MStockDes", str(line["MStockDes"])),
        element("MWarehouse", str(line["MWarehouse"])),
        element("MOutstandingQty", f"{outstanding:,.3f}"),
        element("Unedited_MOutstandingQty", f"{outstanding:.6f}".rjust(20)),
        element("MOrderQty", f"{qty:,.3f}"),
        element("Unedited_MOrderQty", f"{qty:.6f}".rjust(20)),
        element("MReceivedQty", f"{received:,.3f}"),
        element("Unedited_MReceivedQty", f"{received:.6f}".rjust(20)),
        element("MOrderUom", str(line["MOrderUom"])),
        element("MCompleteFlag", str(line["MCompleteFlag"])),
        element("MPrice", f"{price:.5f}"),
        element("Edit_MPrice", f"{price:,.3f}"),
        element("OrderValue", f"{qty * price:.5f}"),
        element("MLatestDueDate", _date(line["MLatestDueDate"])),
        element("MGlCode", str(line["MGlCode"])),
        "</Merchandise>", "</PurchaseOrderLine>",
    ]


def _money(prefix: str, order: Decimal, received: Decimal) -> list[str]:
    values = (("OrderValue", order), ("ReceivedToDateValue", received),
              ("OutstandingValue", order - received))
    return ([element(f"{prefix}{n}", f"{v:.2f}".rjust(16)) for n, v in values]
            + [element(f"Edited_{prefix}{n}", f"{v:,.2f}") for n, v in values])


def render_porqry(data: SysproData, key: str, version: str) -> str:
    hdr = data.find("PorMasterHdr", (key,))
    if hdr is None:
        raise ValidationFault(("Key", "PurchaseOrder"), key, ERR_PO_NOT_FOUND,
                              f"Purchase order '{key}' not found")
    supplier = data.find("ApSupplier", (str(hdr["Supplier"]),)) or {}
    lines = [r for r in data.rows["PorMasterDetail"] if r["PurchaseOrder"] == hdr["PurchaseOrder"]]
    order = sum((_dec(r["MOrderQty"]) * _dec(r["MPrice"]) for r in lines), Decimal(0))
    received = sum((_dec(r["MReceivedQty"]) * _dec(r["MPrice"]) for r in lines), Decimal(0))
    status = str(hdr["OrderStatus"])
    out = [
        element("PurchaseOrder", str(hdr["PurchaseOrder"])),
        element("Supplier", str(hdr["Supplier"])),
        element("SupplierName", str(supplier.get("SupplierName") or "")),
        element("Currency", str(hdr["Currency"])),
        element("OrderStatus", status),
        element("OrderStatusDescription", ORDER_STATUS.get(status, "")),
        element("Warehouse", str(hdr["Warehouse"])),
        element("OrderEntryDate", _date(hdr["OrderEntryDate"])),
        element("OrderDueDate", _date(hdr["OrderDueDate"])),
        element("MemoDate", _date(hdr["OrderEntryDate"])),
        element("OrderType", "Local"),
        element("Buyer", str(hdr["Buyer"])),
    ]
    for line in sorted(lines, key=lambda r: int(str(r["Line"]))):
        out += _merchandise(line)
    out += ["<PurchaseOrderTotals>", "<LocalValues>", *_money("Local", order, received), "</LocalValues>",
            "<CurrentValues>", *_money("Current", order, received), "</CurrentValues>",
            element("OrderCompleteDate", _date(hdr["DatePoCompleted"])), "</PurchaseOrderTotals>"]
    return document("PorDetail", version, out)
