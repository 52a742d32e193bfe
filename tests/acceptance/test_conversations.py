"""Conversations end to end: a reply threaded to the PO it answers, STOP suppressing the next text,
HELP answered with the configured text, forged inbound posts refused with nothing stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from ml_connector.channels.signature import compute_signature
from ml_connector.core.models import Status
from ml_connector.demo import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, DEMO_SENDER
from tests.support.pipeline import PUBLIC_URL, Pipeline, pipeline

INBOUND_URL = f"{PUBLIC_URL}/twilio/inbound"
BUYER = "+13125550187"  # buyer 102 of the demo ERP (PO 1002)
FLOW = "po_approved"


def threaded(config: dict[str, Any]) -> None:
    flow = config["flows"][FLOW]
    flow["replies"] = {"window": "P3D", "reference": "po_number"}
    flow["template"] = "PO {{ po_number }} approved. Reply YES {{ po_number }} to confirm receipt."
    config["conversations"] = {"help_text": "Acme AP alerts. Reply STOP to stop. Call +1 312 555 0100."}


async def text_in(p: Pipeline, body: str, *, sid: str, sender: str = BUYER, token: str = DEMO_AUTH_TOKEN,
                  signed: bool = True) -> httpx.Response:
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": DEMO_ACCOUNT_SID, "From": sender,
              "To": DEMO_SENDER, "Body": body, "NumMedia": "0", "SmsStatus": "received", "ApiVersion": "2010-04-01"}
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if signed:
        headers["x-twilio-signature"] = compute_signature(token, INBOUND_URL, sorted(params.items()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(p.connector.webhook_app()),
                                 base_url=PUBLIC_URL) as client:
        return await client.post("/twilio/inbound", content=urlencode(params), headers=headers)


async def approved_and_sent(p: Pipeline, po_id: int) -> int:
    p.erp.approve_po(po_id)
    await p.poll()
    await p.dispatch()
    newest = max(p.notifications(flow=FLOW), key=lambda n: n.id)
    assert newest.status is Status.DELIVERED
    return newest.id


async def test_a_reply_quoting_the_po_lands_on_its_notification(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=threaded) as p:
        with sqlite3.connect(p.erp.path) as db:  # two open POs for the same buyer
            db.execute("UPDATE po_headers SET buyer_id = 102 WHERE po_id = 1001")
        await p.poll()
        first = await approved_and_sent(p, 1002)
        await approved_and_sent(p, 1001)  # still open when the reply comes: the reference decides
        po_number = next(n for n in p.notifications(flow=FLOW) if n.id == first).body.split()[1]
        answer = await text_in(p, f"yes {po_number}", sid="SM" + "1" * 32)
        assert answer.status_code == 200
        assert answer.text.endswith("<Response/>")
        (reply,) = p.connector.store.inbound_messages()
        assert (reply.notification_id, reply.match_reason) == (first, "matched by reference")
        journey = [e.kind for e in p.audit() if e.notification_id == first]
        assert journey[-1] == "reply"


async def test_stop_suppresses_the_next_notification_and_help_is_answered(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=threaded) as p:
        await p.poll()
        await approved_and_sent(p, 1002)
        assert (await text_in(p, "Stop.", sid="SM" + "2" * 32)).status_code == 200
        with sqlite3.connect(p.erp.path) as db:
            db.execute("UPDATE po_headers SET buyer_id = 102 WHERE po_id = 1001")
        p.erp.approve_po(1001)
        await p.poll()
        await p.dispatch()
        newest = max(p.notifications(flow=FLOW), key=lambda n: n.id)
        assert newest.status is Status.SUPPRESSED
        assert newest.reason is not None and newest.reason.startswith("opted out: replied STOP on ")
        assert len(p.sim.messages()) == 1
        help_answer = await text_in(p, "HELP", sid="SM" + "3" * 32)
        assert "<Message>Acme AP alerts. Reply STOP to stop. Call +1 312 555 0100.</Message>" in help_answer.text


async def test_forged_inbound_posts_get_403_and_store_nothing(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=threaded) as p:
        assert (await text_in(p, "STOP", sid="SM" + "4" * 32, token="not-the-token")).status_code == 403
        assert (await text_in(p, "STOP", sid="SM" + "5" * 32, signed=False)).status_code == 403
        assert p.connector.store.inbound_messages() == []
        assert p.connector.store.is_suppressed(BUYER, DEMO_SENDER) is None
