"""A changed ERP row becomes a delivered SMS, durably and audited, through every real layer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ml_connector.core.models import Status
from tests.support.pipeline import pipeline


def store_urls() -> list[object]:
    urls: list[object] = [pytest.param(None, id="sqlite")]
    urls.append(pytest.param("postgres", id="postgresql", marks=pytest.mark.postgres))
    return urls


@pytest.fixture(params=store_urls())
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param is None:
        return None
    return str(request.getfixturevalue("pg_schema_url"))


async def test_approved_po_reaches_buyer_and_delivery_is_audited(tmp_path: Path, store_url: str | None) -> None:
    async with pipeline(tmp_path, store_url=store_url) as p:
        await p.poll()                       # baseline: existing rows are not events
        assert p.notifications() == []
        p.erp.approve_po(1002)               # buyer 102, mobile "312-555-0187"
        await p.poll()
        await p.dispatch()

        [n] = p.notifications()
        assert n.status is Status.DELIVERED
        assert n.recipient == "+13125550187"
        assert n.recipient_field == "person.mobile_phone"
        assert n.body.startswith("PO ") and "approved" in n.body
        [message] = p.sim.messages()
        assert message.sid == n.provider_id and message.to == "+13125550187"
        assert message.resource["body"] == n.body

        journey = [(e.kind, e.status) for e in p.audit() if e.notification_id == n.id]
        assert journey == [("created", "pending"), ("claimed", "sending"), ("attempt", "queued"),
                           ("status", "sent"), ("status", "delivered")]

        # Re-polling the same window (overlap) or after a restart creates nothing new.
        await p.poll()
        await p.dispatch()
        assert len(p.notifications()) == 1
        assert len(p.sim.messages()) == 1


async def test_bad_phone_fails_that_notification_only(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        await p.poll()
        p.erp.approve_po(1003)  # buyer 104: an invalid number -> Twilio 21211
        p.erp.approve_po(1006)  # buyer 105: no phone at all -> fails before sending
        p.erp.approve_po(1007)  # a deliverable buyer
        await p.poll()
        await p.dispatch()
        by_record = {n.record_key: n for n in p.notifications()}
        assert by_record["1003"].status is Status.FAILED
        assert by_record["1003"].error_code == 21211
        assert by_record["1006"].status is Status.FAILED
        assert by_record["1006"].reason is not None and "person.mobile_phone: empty" in by_record["1006"].reason
        assert by_record["1007"].status is Status.DELIVERED
        # 21211 is refused at create: Twilio keeps no message for it.
        assert [m.to for m in p.sim.messages()] == [by_record["1007"].recipient]


async def test_no_plaintext_phone_or_body_in_the_database_file(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.dispatch()
        [n] = p.notifications()
        body = n.body
    raw = b"".join(path.read_bytes() for path in tmp_path.glob("ml-connector.db*"))
    assert raw, "the store file exists"
    for secret in (b"+13125550187", b"3125550187", body.encode()):
        assert secret not in raw
    # Sanity: the ERP's own database does hold the number, so the check can see it.
    erp_rows = sqlite3.connect(tmp_path / "demo-erp.db").execute("select mobile_phone from people").fetchall()
    assert ("312-555-0187",) in erp_rows
