"""SQL write-back end to end: a PO approved in the demo ERP, sent, delivered (signed callback), and its
final status written into the ERP's own tables: an UPDATE of the PO row and a status-table INSERT."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ml_connector.core.models import Status
from tests.support.pipeline import pipeline


def with_write_back(config: dict[str, Any]) -> None:
    config["sources"]["erp"]["write_back"] = {"entities": {
        "purchase_order": {"update": "po_alerts", "key": "po_id", "columns": {
            "alert_status": "status", "alert_sid": "message_sid", "alert_error": "error_code",
            "alert_final_at": "final_at"}},
        "invoice": {"insert": "sms_status", "columns": {
            "invoice_id": "record_key", "status": "status", "sid": "message_sid", "code": "error_code"}},
    }}


async def test_final_statuses_land_in_the_erps_own_columns_and_status_table(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=with_write_back) as p:
        erp_db = tmp_path / "demo-erp.db"
        with sqlite3.connect(erp_db) as db:
            db.execute("CREATE TABLE po_alerts (po_id INTEGER PRIMARY KEY, alert_status TEXT, alert_sid TEXT, "
                       "alert_error INTEGER, alert_final_at TEXT)")
            db.execute("INSERT INTO po_alerts (po_id) SELECT po_id FROM po_headers")
            db.execute("CREATE TABLE sms_status (invoice_id TEXT, status TEXT, sid TEXT, code INTEGER)")
        await p.poll()
        p.erp.approve_po(1002)          # a deliverable buyer
        p.erp.approve_po(1003)          # buyer 104: an invalid number, refused by Twilio (21211)
        invoice = next(r for r in p.erp.rows("ap_invoices") if r["approval_status"] == "NEVER APPROVED")
        p.erp.validate_invoice(int(str(invoice["invoice_id"])))
        await p.poll()
        await p.dispatch()
        by_record = {n.record_key: n for n in p.notifications()}
        assert (by_record["1002"].status, by_record["1003"].status) == (Status.DELIVERED, Status.FAILED)
        invoice_note = by_record[str(invoice["invoice_id"])]

        assert await p.connector.write_backs.run_once() == 3

        with sqlite3.connect(erp_db) as db:
            rows = {r[0]: r[1:] for r in db.execute(
                "SELECT po_id, alert_status, alert_sid, alert_error, alert_final_at FROM po_alerts "
                "WHERE alert_status IS NOT NULL")}
        assert set(rows) == {1002, 1003}
        assert rows[1002][:3] == ("delivered", by_record["1002"].provider_id, None)
        assert rows[1003][0] == "failed" and rows[1003][2] == 21211
        assert all(r[3] for r in rows.values())  # the final time, in the ERP's clock
        with sqlite3.connect(erp_db) as db:
            statuses = list(db.execute("SELECT invoice_id, status, sid, code FROM sms_status"))
        assert statuses == [(str(invoice["invoice_id"]), invoice_note.status.value, invoice_note.provider_id,
                             invoice_note.error_code)]
        assert [e.status for e in p.audit() if e.kind == "write_back"] == ["done"] * 3
