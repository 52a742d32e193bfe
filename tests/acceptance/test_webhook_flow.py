"""An approved PO becomes a signed outbound webhook through every real layer."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ml_connector.core.models import Status
from ml_connector.sim.webhook_receiver import WebhookReceiver
from tests.support.pipeline import pipeline

SECRET = "whsec_" + base64.b64encode(b"a shared secret of 32 bytes.....").decode()


def hook(config: dict[str, Any]) -> None:
    config["twilio"]["accounts"]["main"]["webhook_endpoints"] = {"erp-hook": {
        "url": "https://customer.example.com/hooks/erp", "secret": "${HOOK_SECRET}"}}
    po = config["flows"]["po_approved"]
    config["flows"] = {"po_hook": {
        "source": po["source"], "entity": po["entity"], "schedule": po["schedule"], "trigger": po["trigger"],
        "channel": "webhook", "sender": "main.erp-hook", "template": "PO {{ po_number }} approved",
        "retry": {"max_attempts": 3, "base_delay": "PT0S", "max_delay": "PT0S"},
    }}


async def test_an_approved_po_is_posted_signed_and_retried_after_a_5xx(tmp_path: Path) -> None:
    receiver = WebhookReceiver(SECRET)
    receiver.fail_next(503)
    async with pipeline(tmp_path, tweak=hook, env={"HOOK_SECRET": SECRET}, webhook_app=receiver.create_app()) as p:
        await p.poll()
        p.erp.approve_po(1002)
        await p.poll()
        await p.connector.dispatcher.run_until_idle()
        [n] = p.notifications()
        assert n.channel == "webhook" and n.status is Status.DELIVERED, n
        assert n.attempts_made == 2  # the 503, then the delivery
        [delivery] = receiver.received
        assert delivery.webhook_id == f"mlc_{n.id}"
        assert delivery.payload["data"]["record_key"] == "1002" and delivery.payload["data"]["flow"] == "po_hook"
