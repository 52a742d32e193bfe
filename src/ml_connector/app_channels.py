"""Composition of the channels beyond SMS: email senders, their pacing and their webhook.

Kept out of app.py so that each channel adds its few lines here: what app.py asks of this
module is the channel map entries (keyed by core.channel_kinds.route_key), the pacing rates
(keyed like SMS senders: "<account>.<sender>") and the webhook routes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ml_connector.channels.base import Channel
from ml_connector.channels.email import EmailChannel, EmailSenderRef
from ml_connector.channels.http import AiohttpTransport, HttpTransport
from ml_connector.channels.sendgrid_api import SendGridClient
from ml_connector.channels.sendgrid_signature import load_public_key
from ml_connector.config import Config
from ml_connector.core.channel_kinds import route_key
from ml_connector.core.email_body import EmailTemplate, compile_email
from ml_connector.core.flowspec import FlowSpec
from ml_connector.store.port import Store

__all__ = ["build_channels", "channel_rates", "compile_email_flow", "flow_sender", "webhook_routes"]


def compile_email_flow(key: str, spec: FlowSpec) -> EmailTemplate:
    """The subject, text and HTML templates of an email flow (TemplateError names the one wrong)."""
    return compile_email(key, subject=spec.subject or "", text=spec.template, html=spec.html,
                         timezone=spec.timezone, currency=spec.currency)


def flow_sender(spec: FlowSpec) -> str | None:
    """What an email flow's notifications name as sender: the email sender's name; None for SMS."""
    return spec.sender.partition(".")[2] if spec.channel == "email" else None


def build_channels(config: Config, transport: HttpTransport | None) -> dict[str, Channel]:
    """One email channel per account that has email senders, each sender on its own key."""
    channels: dict[str, Channel] = {}
    for account_name, account in config.twilio.accounts.items():
        if not account.email_senders:
            continue
        senders = {
            name: EmailSenderRef(
                SendGridClient(sender.api_key.get_secret_value(), base_url=sender.base_url,
                               transport=transport or AiohttpTransport(verify=sender.verify_tls)),
                sender.from_, sender.from_name, sender.reply_to, tuple(sender.categories),
            )
            for name, sender in account.email_senders.items()
        }
        channels[route_key(account_name, "email")] = EmailChannel(senders)
    return channels


def channel_rates(config: Config) -> dict[str, float]:
    """Pacing of email senders: mails per second, per sender."""
    return {
        f"{account_name}.{name}": sender.rate
        for account_name, account in config.twilio.accounts.items()
        for name, sender in account.email_senders.items()
    }


def webhook_routes(config: Config, store: Store, clock: Callable[[], datetime]) -> list[Any]:
    """The SendGrid Event Webhook route, when some email sender has a verification key."""
    keys = [load_public_key(sender.event_public_key)
            for account in config.twilio.accounts.values() for sender in account.email_senders.values()
            if sender.event_public_key]
    if not keys:
        return []
    from ml_connector.web.email_events import email_event_route

    return [email_event_route(store=store, public_keys=keys, clock=clock)]


async def aclose(channels: dict[str, Channel]) -> None:
    for channel in channels.values():
        if isinstance(channel, EmailChannel):
            await channel.aclose()
