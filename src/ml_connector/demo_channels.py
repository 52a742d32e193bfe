"""The demo's channels beyond SMS: an email through the SendGrid simulator, a call through the
Twilio simulator.

Kept apart from demo.py so each channel adds its config here: `add_channel_sections` adds the
email sender (the simulator's key and Event Webhook verification key), a flow that emails the
purchasing team when a PO of the demo ERP is approved, and one that calls the PO's buyer and
asks to press 1; `plan_calls` has the simulated buyers answer and press 1.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ANSWERING_BUYERS", "DEMO_SENDGRID_KEY", "PURCHASING_TEAM", "add_channel_sections", "mask_address",
           "plan_calls"]

#: Buyers of the demo ERP who answer the call and press 1 (the others' phones ring out or fail).
ANSWERING_BUYERS = ("+13125550142", "+13125550187", "+13125550123")

DEMO_SENDGRID_KEY = "SG.simulator-key.0123456789"  # noqa: S105 - the SendGrid simulator's demo key
PURCHASING_TEAM = "purchasing@example.com"
#: The demo's outbound webhook secret (Standard Webhooks "whsec_" + base64).
DEMO_HOOK_SECRET = "whsec_ZGVtby13ZWJob29rLXNlY3JldC0zMi1ieXRlcyE="  # noqa: S105 - the demo receiver's
#: The approved WhatsApp Content template the demo names ("Invoice {{1}} from {{2}}: {{3}}").
DEMO_CONTENT_SID = "HX" + "0d" * 16


def add_channel_sections(config: dict[str, Any], *, sendgrid_url: str, sendgrid_public_key: str,
                         hook_url: str | None = None) -> None:
    """Add the email sender, the webhook endpoint and their flows to the demo config (in place)."""
    account = config["twilio"]["accounts"]["main"]
    if hook_url:
        account["webhook_endpoints"] = {"erp-hook": {"url": hook_url, "secret": DEMO_HOOK_SECRET}}
        po = config["flows"]["po_approved"]
        config["flows"]["po_approved_hook"] = {
            "source": po["source"], "entity": po["entity"], "schedule": po["schedule"], "trigger": po["trigger"],
            "channel": "webhook", "sender": "main.erp-hook", "timezone": po["timezone"],
            "template": "PO {{ po_number }} for {{ vendor_name }} approved", "retry": po["retry"],
        }
    account["email_senders"] = {"purchasing": {
        "from": "erp-alerts@example.com", "from_name": "ERP alerts", "reply_to": "buyers@example.com",
        "api_key": DEMO_SENDGRID_KEY, "event_public_key": sendgrid_public_key, "base_url": sendgrid_url,
        "categories": ["ml-connector", "po-approved"], "rate": 10,
    }}
    po = config["flows"]["po_approved"]
    config["flows"]["po_approved_email"] = {
        "source": po["source"], "entity": po["entity"], "schedule": po["schedule"], "trigger": po["trigger"],
        "channel": "email", "sender": "main.purchasing", "timezone": po["timezone"],
        "recipients": [{"static": [PURCHASING_TEAM]}],
        "subject": "PO {{ po_number }} approved: {{ vendor_name }}",
        "template": "PO {{ po_number }} for {{ vendor_name }} was approved: {{ amount | money(currency) }}.",
        "html": "<p>PO <b>{{ po_number }}</b> for {{ vendor_name }} was approved: "
                "{{ amount | money(currency) }}.</p>",
        "retry": po["retry"],
    }
    config["flows"]["po_approved_call"] = {
        "source": po["source"], "entity": po["entity"], "schedule": po["schedule"], "trigger": po["trigger"],
        "channel": "voice", "sender": po["sender"], "timezone": po["timezone"], "recipients": po["recipients"],
        "template": "Purchase order {{ po_number }} for {{ vendor_name }} was approved, "
                    "for {{ amount | money(currency) }}.",
        "voice": {"voice": "Polly.Joanna", "language": "en-US", "acknowledge": True,
                  "prompt": "Press 1 to confirm you received this message.", "retries": 1, "retry_delay": "5s"},
        "retry": po["retry"],
    }


    invoice = config["flows"]["invoice_validated"]
    config["flows"]["invoice_validated_whatsapp"] = {
        **invoice, "channel": "whatsapp", "content_sid": DEMO_CONTENT_SID,
        "content_variables": {"1": "{{ invoice_num }}", "2": "{{ vendor_name }}",
                              "3": "{{ amount | money(currency) }}"},
    }
    config["flows"]["po_approved_mms"] = {
        **po, "channel": "mms",
        "template": "PO {{ po_number }} approved; the PDF is attached.",
        "media": ["https://erp.example.com/po/{{ po_number }}.pdf"],
    }


def plan_calls(twilio_sim: Any) -> None:
    """The simulated buyers who answer press 1; invoice approvers read their WhatsApp messages."""
    from ml_connector.sim.twilio import Outcome

    for number in ANSWERING_BUYERS:
        twilio_sim.calls.press[number] = "1"
    for number in ("+13125550123", "+13125550142"):  # WhatsApp read receipts (SMS to them: delivered)
        twilio_sim.set_outcome(number, Outcome(status="read"))


def mask_address(value: str) -> str:
    """An email address as the journeys show it: first letter and domain ("p•••@example.com")."""
    local, at, domain = value.partition("@")
    return f"{local[:1]}•••@{domain}" if at else "•••"
