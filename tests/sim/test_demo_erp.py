"""sim.demo_erp: the SQLite demo ERP keeps EBS-like naive local time and dirty phone data."""

from __future__ import annotations

import ast
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ml_connector.sim import demo_erp
from ml_connector.sim.demo_erp import INVALID_PHONE, DemoErp


class SteppingClock:
    """Aware 'now' that moves one minute per reading: every write gets a distinct time."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def make_erp(tmp_path: Path, start: datetime = datetime(2024, 7, 1, 16, 59, tzinfo=UTC)) -> DemoErp:
    erp = DemoErp(tmp_path / "erp.db", clock=SteppingClock(start))
    erp.create()
    return erp


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def test_create_builds_the_three_tables(tmp_path: Path) -> None:
    erp = make_erp(tmp_path)
    assert columns(erp.path, "po_headers") == [
        "po_id",
        "po_number",
        "vendor_name",
        "amount",
        "currency",
        "status",
        "buyer_id",
        "last_update_date",
    ]
    assert columns(erp.path, "ap_invoices") == [
        "invoice_id",
        "invoice_num",
        "vendor_name",
        "amount",
        "currency",
        "approval_status",
        "approver_phone",
        "last_update_date",
    ]
    assert columns(erp.path, "people") == [
        "person_id",
        "full_name",
        "mobile_phone",
        "work_phone",
        "last_update_date",
    ]
    pos = erp.rows("po_headers")
    assert {po["status"] for po in pos} == {"INCOMPLETE", "IN PROCESS", "APPROVED", "REJECTED"}
    for po in pos:
        amount = Decimal(str(po["amount"]))
        assert amount == amount.quantize(Decimal("0.01")) and str(po["amount"]).count(".") == 1


def test_timestamps_are_naive_local_wall_time(tmp_path: Path) -> None:
    erp = make_erp(tmp_path)  # first reading: 2024-07-01 17:00Z = 12:00 CDT
    stamps = {row["last_update_date"] for row in erp.rows("po_headers")}
    assert stamps == {"2024-07-01 12:00:00"}
    winter = DemoErp(
        tmp_path / "w.db", tz="America/Chicago", clock=lambda: datetime(2024, 1, 15, 18, 30, tzinfo=UTC)
    )
    assert winter.local_now() == "2024-01-15 12:30:00"  # CST
    naive = DemoErp(tmp_path / "n.db", clock=lambda: datetime(2024, 1, 15, 18, 30))
    with pytest.raises(ValueError, match="aware"):
        naive.local_now()


def test_people_include_failures_with_reasons(tmp_path: Path) -> None:
    erp = make_erp(tmp_path)
    people = erp.rows("people")
    mobiles = [person["mobile_phone"] for person in people]
    assert INVALID_PHONE == "+15005550001" and INVALID_PHONE in mobiles
    assert any(person["mobile_phone"] is None and person["work_phone"] is None for person in people)
    assert "(312) 555-0142" in mobiles
    phones = {invoice["approver_phone"] for invoice in erp.rows("ap_invoices")}
    assert {"(312) 555-0142", "312.555.0199 x12", "+44 20 7946 0958", "n/a"} <= phones
    # Every open PO's buyer exists; the undeliverable buyers own open POs so the demo shows them.
    by_id = {person["person_id"]: person for person in people}
    open_buyers = {
        po["buyer_id"] for po in erp.rows("po_headers") if po["status"] in ("INCOMPLETE", "IN PROCESS")
    }
    assert open_buyers <= set(by_id)
    assert {by_id[b]["mobile_phone"] for b in open_buyers} >= {INVALID_PHONE, None}


def test_approve_po_moves_status_and_time(tmp_path: Path) -> None:
    erp = make_erp(tmp_path)
    before = {po["po_id"]: po for po in erp.rows("po_headers")}
    assert erp.approve_po(1002) == "PO 10002 approved"
    after = {po["po_id"]: po for po in erp.rows("po_headers")}
    assert after[1002]["status"] == "APPROVED"
    assert after[1002]["last_update_date"] == "2024-07-01 12:01:00"
    assert {k: v for k, v in after.items() if k != 1002} == {k: v for k, v in before.items() if k != 1002}
    with pytest.raises(ValueError, match="PO 10002 is APPROVED, not open"):
        erp.approve_po(1002)
    with pytest.raises(KeyError):
        erp.approve_po(999)


def test_validate_invoice(tmp_path: Path) -> None:
    erp = make_erp(tmp_path)
    assert erp.validate_invoice(5001) == "invoice INV-5001 validated"
    [invoice] = [i for i in erp.rows("ap_invoices") if i["invoice_id"] == 5001]
    assert invoice["approval_status"] == "APPROVED"
    assert invoice["last_update_date"] == "2024-07-01 12:01:00"
    with pytest.raises(ValueError, match="already APPROVED"):
        erp.validate_invoice(5001)


def snapshot(erp: DemoErp) -> dict[str, list[dict[str, object]]]:
    return {table: erp.rows(table) for table in ("people", "po_headers", "ap_invoices")}


def test_tick_is_one_event_and_reproducible(tmp_path: Path) -> None:
    first, second = make_erp(tmp_path / "a"), make_erp(tmp_path / "b")
    rng_a, rng_b = random.Random(42), random.Random(42)
    for _ in range(25):
        before = snapshot(first)
        [event] = first.tick(rng_a)
        assert second.tick(rng_b) == [event]
        after = snapshot(first)
        changed = [(table, row) for table in after for row in after[table] if row not in before[table]]
        assert len(changed) == 1, event  # exactly one row created or updated
        assert str(changed[0][1]["last_update_date"]) > max(
            str(r["last_update_date"]) for t in before.values() for r in t
        )
    assert snapshot(first) == snapshot(second)


def test_tick_covers_every_kind_of_event(tmp_path: Path) -> None:
    erp = make_erp(tmp_path)
    rng = random.Random(1)
    events = [erp.tick(rng)[0] for _ in range(60)]
    for word in ("approved", "rejected", "validated", "created", "entered"):
        assert any(word in event for event in events), word


def test_create_is_repeatable(tmp_path: Path) -> None:
    erp = make_erp(tmp_path)
    erp.approve_po(1001)
    erp.create()
    assert [po["status"] for po in erp.rows("po_headers")][0] == "INCOMPLETE"
    assert len(erp.rows("people")) == 6


def test_simulator_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(demo_erp.__file__).read_text())
    imported = {
        str(node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {
        "__future__",
        "random",
        "sqlite3",
        "collections",
        "contextlib",
        "datetime",
        "decimal",
        "pathlib",
        "zoneinfo",
    }
