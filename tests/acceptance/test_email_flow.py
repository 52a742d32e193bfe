"""An approved PO becomes an email through SendGrid, delivered by its signed event, through every
real layer (config, poller, store, dispatcher, email channel, Event Webhook)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ml_connector.core.models import Status
from ml_connector.sim.sendgrid import DEFAULT_API_KEY, SendGridSim
from tests.support.pipeline import pipeline

TEAM = "Purchasing.Team@Example.COM"


@pytest.fixture
async def sendgrid() -> AsyncIterator[SendGridSim]:
    sim = SendGridSim(events_to="http://127.0.0.1:8080/sendgrid/events")
    yield sim
    await sim.aclose()


def email_flow(sendgrid: SendGridSim, **flow: Any) -> Any:
    def tweak(config: dict[str, Any]) -> None:
        config["twilio"]["accounts"]["main"]["email_senders"] = {"purchasing": {
            "from": "erp@example.com", "from_name": "ERP", "reply_to": "buyers@example.com",
            "api_key": "${SENDGRID_KEY}", "event_public_key": sendgrid.public_key, "categories": ["po"],
        }}
        config["flows"] = {"po_email": {
            **config["flows"]["po_approved"], "channel": "email", "sender": "main.purchasing",
            "recipients": [{"static": [TEAM]}],
            "subject": "PO {{ po_number }} approved",
            "template": "PO {{ po_number }} for {{ vendor_name }} approved.",
            "html": "<p>PO <b>{{ po_number }}</b> for {{ vendor_name }} approved.</p>", **flow,
        }}
    return tweak


async def test_an_approved_po_is_emailed_and_delivered(tmp_path: Path, sendgrid: SendGridSim) -> None:
    async with pipeline(tmp_path, tweak=email_flow(sendgrid), sendgrid=sendgrid,
                        env={"SENDGRID_KEY": DEFAULT_API_KEY}) as p:
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.connector.dispatcher.run_until_idle()
        await sendgrid.drain()

        [n] = p.notifications()
        assert n.channel == "email" and n.status is Status.DELIVERED
        assert n.recipient == "Purchasing.Team@example.com"  # the domain is case-blind, the local part not
        [mail] = sendgrid.sent
        assert n.provider_id == mail.message_id
        assert mail.subject.startswith("PO ") and mail.custom_args == {"mlc_notification_id": str(n.id)}
        assert mail.categories == ["po"]
        kinds = [e.detail.get("provider_status") for e in p.audit() if e.kind == "status"]
        assert kinds == ["processed", "delivered"]
        with sqlite3.connect(tmp_path / "ml-connector.db") as db:  # the address is encrypted at rest
            dump = "\n".join(db.iterdump())
        assert "purchasing.team@example.com" not in dump.lower()


async def test_an_email_whose_send_was_lost_is_not_sent_again(tmp_path: Path, sendgrid: SendGridSim) -> None:
    async with pipeline(tmp_path, tweak=email_flow(sendgrid), sendgrid=sendgrid,
                        env={"SENDGRID_KEY": DEFAULT_API_KEY}) as p:
        sendgrid.events_to = None
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        sendgrid.drop_next()
        await p.connector.dispatcher.run_until_idle()
        [n] = p.notifications()
        assert n.status is Status.FAILED and "not resent" in n.problem
        assert len(sendgrid.sent) == 1


async def test_a_crash_mid_send_is_not_sent_again(tmp_path: Path, sendgrid: SendGridSim) -> None:
    """The row comes back in doubt (its lease ran out): SendGrid cannot be asked, so it fails."""
    async with pipeline(tmp_path, tweak=email_flow(sendgrid), sendgrid=sendgrid,
                        env={"SENDGRID_KEY": DEFAULT_API_KEY}) as p:
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        store = p.connector.store
        [claimed] = store.claim_due("crashed-worker", p.clock(), p.connector.config.dispatcher.lease, 10)
        p.clock.advance(p.connector.config.dispatcher.lease.total_seconds() + 1)  # the worker died
        await p.connector.dispatcher.run_until_idle()
        [n] = p.notifications()
        assert n.id == claimed.id and n.status is Status.FAILED and "not resent" in n.problem
        assert sendgrid.sent == []


async def test_an_unknown_email_sender_is_a_config_error(tmp_path: Path, sendgrid: SendGridSim) -> None:
    from ml_connector.errors import ConfigError

    with pytest.raises(ConfigError, match="no email sender 'billing'"):
        async with pipeline(tmp_path, tweak=email_flow(sendgrid, sender="main.billing"), sendgrid=sendgrid,
                            env={"SENDGRID_KEY": DEFAULT_API_KEY}):
            pass
