"""MMS and WhatsApp flows through every real layer: media URLs rendered from the record, WhatsApp
addresses, approved Content templates, the 24-hour rule (63016) and `read`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from ml_connector.core.models import Status
from ml_connector.sim.twilio import Outcome
from tests.support.pipeline import pipeline

BUYER = "+13125550187"
HX = "HX" + "0123456789abcdef" * 2


def flow(**overrides: Any) -> Any:
    def tweak(config: dict[str, Any]) -> None:
        config["flows"] = {"po_media": {**config["flows"]["po_approved"], **overrides}}
    return tweak


async def run(p: Any) -> Any:
    await p.poll()
    p.erp.approve_po(1002)
    await p.poll()
    await p.dispatch()
    [n] = p.notifications()
    return n


async def test_an_mms_carries_each_rendered_media_url(tmp_path: Path) -> None:
    media = ["https://erp.example.com/po/{{ po_number }}.pdf", "https://erp.example.com/logo.png"]
    async with pipeline(tmp_path, tweak=flow(channel="mms", media=media)) as p:
        n = await run(p)
        assert n.channel == "mms" and n.status is Status.DELIVERED
        [message] = p.sim.messages()
        po = json.loads(n.body)["text"].split()[1]
        assert message.resource["num_media"] == "2"
        assert message.sid.startswith("MM") and message.to == BUYER
        assert p.sim.index.by_sid[message.sid].media_urls == (f"https://erp.example.com/po/{po}.pdf",
                                                             "https://erp.example.com/logo.png")


async def test_a_whatsapp_template_starts_the_conversation_and_is_read(tmp_path: Path) -> None:
    variables = {"1": "{{ po_number }}", "2": "{{ vendor_name }}"}
    async with pipeline(tmp_path, tweak=flow(channel="whatsapp", content_sid=HX, content_variables=variables)) as p:
        p.sim.set_outcome(BUYER, Outcome(status="read"))
        n = await run(p)
        assert n.channel == "whatsapp" and n.status is Status.READ
        assert n.recipient == BUYER  # stored bare: the keyed look-up by phone finds it
        [message] = p.sim.messages()
        assert message.to == f"whatsapp:{BUYER}" and (message.from_ or "").startswith("whatsapp:+")
        content = json.loads(n.body)
        assert content["content_sid"] == HX and f"PO {content['content_variables']['1']} for" in content["text"]


async def test_whatsapp_free_text_outside_the_24_hour_window_fails_with_the_reason(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=flow(channel="whatsapp")) as p:
        p.sim.whatsapp_sessions[BUYER] = p.clock() - timedelta(hours=25)
        n = await run(p)
        assert n.status is Status.FAILED and n.error_code == 63016
        assert "24-hour window" in n.problem and "content_sid" in n.problem
        assert len(p.sim.messages()) == 1  # permanent: not tried again


async def test_whatsapp_free_text_inside_the_window_is_delivered(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=flow(channel="whatsapp")) as p:
        p.sim.whatsapp_sessions[BUYER] = p.clock() - timedelta(hours=2)
        n = await run(p)
        assert n.status is Status.DELIVERED


async def test_an_sms_to_a_reader_stops_at_delivered(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        p.sim.set_outcome(BUYER, Outcome(status="read"))
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.dispatch()
        [n] = p.notifications()
        assert n.channel == "sms" and n.status is Status.DELIVERED
