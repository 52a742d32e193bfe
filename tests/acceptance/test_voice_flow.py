"""An approved PO becomes a phone call through every real layer: TwiML said twice, the person
presses 1, the signed Gather action makes the notification acknowledged; busy is undelivered;
a call whose create response was lost is found in the Calls list, not placed twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ml_connector.core.models import Status
from ml_connector.sim.twilio_faults import FaultRule
from tests.support.pipeline import pipeline

BUYER = "+13125550187"  # buyer 102 of PO 1002


def voice_flow(**voice: Any) -> Any:
    def tweak(config: dict[str, Any]) -> None:
        config["flows"] = {"po_call": {
            **config["flows"]["po_approved"], "channel": "voice",
            "template": "Purchase order {{ po_number }} for {{ vendor_name }} was approved.",
            "voice": {"acknowledge": True, "voice": "Polly.Joanna", "language": "en-US", **voice},
        }}
    return tweak


async def test_a_call_pressed_1_is_acknowledged(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=voice_flow()) as p:
        p.sim.calls.press[BUYER] = "1"
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.dispatch()

        [n] = p.notifications()
        assert n.channel == "voice" and n.status is Status.ACKNOWLEDGED, n
        [call] = p.sim.calls.calls.values()
        assert n.provider_id == call.sid and call.to == BUYER and call.digits == "1"
        assert call.twiml.count("was approved.</Say>") == 2 and "<Gather" in call.twiml
        assert all(result == 200 for _, result in call.callbacks), call.callbacks
        statuses = [e.detail.get("provider_status") for e in p.audit() if e.kind == "status"]
        assert "acknowledged" in statuses and statuses[-1] == "completed"  # completed after: stays acknowledged


async def test_a_wrong_digit_is_recorded_but_not_an_acknowledgement(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=voice_flow()) as p:
        p.sim.calls.press[BUYER] = "9"
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.dispatch()
        [n] = p.notifications()
        assert n.status is Status.DELIVERED
        digits = [e.detail for e in p.audit() if e.kind == "status" and e.detail.get("provider_status")
                  == "not-acknowledged"]
        assert len(digits) == 1


async def test_busy_is_undelivered(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=voice_flow(acknowledge=False)) as p:
        p.sim.calls.outcomes[BUYER] = "busy"
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.dispatch()
        [n] = p.notifications()
        assert n.status is Status.UNDELIVERED


async def test_callbacks_reversed_and_repeated_still_end_acknowledged(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=voice_flow()) as p:
        p.sim.calls.press[BUYER] = "1"
        p.sim.calls.reverse = p.sim.calls.duplicate = True
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.dispatch()
        [n] = p.notifications()
        assert n.status is Status.ACKNOWLEDGED


async def test_a_forged_voice_callback_is_refused(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=voice_flow()) as p:
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.dispatch()
        [n] = p.notifications()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(p.webhook), base_url="http://x") as client:
            for path in ("/twilio/voice/status", "/twilio/voice/ack?n=1&d=1"):
                form = {"AccountSid": p.connector.config.twilio.accounts["main"].account_sid,
                        "CallSid": n.provider_id or "", "CallStatus": "completed", "Digits": "1"}
                forged = await client.post(path, data=form, headers={"X-Twilio-Signature": "Zm9yZ2Vk"})
                unsigned = await client.post(path, data=form)
                assert forged.status_code == unsigned.status_code == 403
        after = p.connector.store.get_notification(n.id)
        assert after is not None and after.status is n.status


async def test_a_lost_call_create_is_found_in_the_calls_list_not_placed_twice(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=voice_flow(acknowledge=False)) as p:
        p.sim.set_faults([FaultRule(action="drop_after_accept", operation="create_call", count=1)])
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.connector.dispatcher.run_until_idle()  # the response was lost: in doubt
        [n] = p.notifications()
        assert n.status is Status.PENDING and n.provider_id is None  # in doubt: looked up before any resend
        assert len(p.sim.calls.calls) == 1
        p.clock.advance(60)  # the in-doubt look-up is due
        await p.dispatch()
        [n] = p.notifications()
        assert len(p.sim.calls.calls) == 1
        [call] = p.sim.calls.calls.values()
        assert n.provider_id == call.sid and n.status is Status.DELIVERED


async def test_busy_calls_again_after_the_delay_as_many_times_as_allowed(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=voice_flow(acknowledge=False, retries=1, retry_delay="30s")) as p:
        p.sim.calls.outcomes[BUYER] = "busy"
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.dispatch()
        [n] = p.notifications()
        assert n.status is Status.UNDELIVERED
        retry = p.connector.voice_retry
        assert retry.retry_once() == []  # not before the delay
        p.clock.advance(31)
        assert retry.retry_once() == [n.id]
        assert retry.retry_once() == []  # reopened once, by one process
        await p.dispatch()
        assert len(p.sim.calls.calls) == 2
        [n] = p.notifications()
        assert n.status is Status.UNDELIVERED  # busy again
        p.clock.advance(31)
        assert retry.retry_once() == []  # its one retry is spent
        replays = [e for e in p.audit() if e.kind == "replay"]
        assert len(replays) == 1 and "after busy" in str(replays[0].detail.get("actor"))


async def test_no_answer_then_answered_is_delivered(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=voice_flow(acknowledge=False, retries=2, retry_delay="10s")) as p:
        p.sim.calls.outcomes[BUYER] = "no-answer"
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.dispatch()
        p.sim.calls.outcomes[BUYER] = "completed"
        p.clock.advance(11)
        assert len(p.connector.voice_retry.retry_once()) == 1
        await p.dispatch()
        [n] = p.notifications()
        assert n.status is Status.DELIVERED and len(p.sim.calls.calls) == 2
