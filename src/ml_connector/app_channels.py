"""Composition of the channels beyond SMS: email senders, their pacing and their webhook.

Kept out of app.py so that each channel adds its few lines here: what app.py asks of this
module is the channel map entries (keyed by core.channel_kinds.route_key), the pacing rates
(keyed like SMS senders: "<account>.<sender>") and the webhook routes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ml_connector.channels.base import Channel
from ml_connector.channels.email import EmailChannel, EmailSenderRef
from ml_connector.channels.http import AiohttpTransport, HttpTransport
from ml_connector.channels.messages import MediaChannel
from ml_connector.channels.sendgrid_api import SendGridClient
from ml_connector.channels.sendgrid_signature import load_public_key
from ml_connector.channels.sms import SmsChannel
from ml_connector.channels.twilio_api import TwilioClient
from ml_connector.channels.voice import VoiceChannel
from ml_connector.channels.webhook import WebhookChannel, WebhookEndpoint
from ml_connector.config import Config
from ml_connector.core.channel_kinds import route_key
from ml_connector.core.email_body import EmailTemplate, compile_email
from ml_connector.core.flowspec import FlowSpec, VoiceSpec
from ml_connector.core.message_body import MessageTemplate
from ml_connector.core.templates import compile_template
from ml_connector.core.voice_body import VoiceTemplate
from ml_connector.core.webhook_body import WebhookTemplate
from ml_connector.store.port import Store

__all__ = ["build_channels", "channel_rates", "compile_flow", "flow_sender", "webhook_routes"]

STATUS_PATH = "/twilio/voice/status"  # web.voice_webhooks serves these (imported lazily there)
ACK_PATH = "/twilio/voice/ack"


def compile_flow(key: str, spec: FlowSpec) -> EmailTemplate | VoiceTemplate | MessageTemplate | WebhookTemplate:
    """The templates of an email flow (subject, text, HTML), a voice flow (the spoken message) or
    an MMS/WhatsApp flow (text, media URLs, Content variables); TemplateError names the one wrong."""
    base = key.removesuffix(".template")
    if spec.channel == "webhook":
        return WebhookTemplate(key, compile_template(key, spec.template, timezone=spec.timezone,
                                                     currency=spec.currency, locale=spec.locale))
    if spec.channel in ("mms", "whatsapp"):
        def compiled(name: str, source: str) -> Any:
            return compile_template(name, source, timezone=spec.timezone, currency=spec.currency, locale=spec.locale)

        return MessageTemplate(
            key, compiled(key, spec.template),
            tuple(compiled(f"{base}.media.{i}", url) for i, url in enumerate(spec.media)),
            spec.content_sid,
            tuple((name, compiled(f"{base}.content_variables.{name}", value))
                  for name, value in spec.content_variables.items()),
        )
    if spec.channel == "voice":
        text = compile_template(key, spec.template, timezone=spec.timezone, currency=spec.currency,
                                locale=spec.locale)
        return VoiceTemplate(key, text, spec.voice or VoiceSpec())
    return compile_email(key, subject=spec.subject or "", text=spec.template, html=spec.html,
                         timezone=spec.timezone, currency=spec.currency, locale=spec.locale)


def flow_sender(spec: FlowSpec) -> str | None:
    """What an email or webhook flow's notifications name as sender: the email sender's or the
    endpoint's name; None for the Twilio channels (their sender is the From address)."""
    return spec.sender.partition(".")[2] if spec.channel in ("email", "webhook") else None


def build_channels(config: Config, transport: HttpTransport | None,
                   clients: Mapping[str, TwilioClient], webhook_transport: HttpTransport | None = None,
                   ) -> dict[str, Channel]:
    """A voice channel per Twilio account (on its REST client), and an email channel per account
    that has email senders, each sender on its own key."""
    channels: dict[str, Channel] = {}
    public = str(config.webhooks.public_url).rstrip("/") if config.webhooks.public_url else None
    for account_name, client in clients.items():
        for kind in ("mms", "whatsapp"):
            channels[route_key(account_name, kind)] = MediaChannel(SmsChannel(client), kind)
        channels[route_key(account_name, "voice")] = VoiceChannel(
            client, status_callback=f"{public}{STATUS_PATH}" if public else None,
            ack_url=f"{public}{ACK_PATH}" if public else None)
    for account_name, account in config.twilio.accounts.items():
        if account.webhook_endpoints:
            endpoints = {name: WebhookEndpoint(e.url, e.secret.get_secret_value(), e.timeout)
                         for name, e in account.webhook_endpoints.items()}
            verify = all(e.verify_tls for e in account.webhook_endpoints.values())
            channels[route_key(account_name, "webhook")] = WebhookChannel(
                endpoints, transport=webhook_transport or AiohttpTransport(verify=verify))
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
    """Pacing of email senders (mails per second, per sender) and of calls (per account)."""
    rates = {
        f"{account_name}.{name}": sender.rate
        for account_name, account in config.twilio.accounts.items()
        for name, sender in account.email_senders.items()
    }
    rates.update({route_key(name, "voice"): account.calls_per_second
                  for name, account in config.twilio.accounts.items()})
    rates.update({f"{account_name}.{name}": endpoint.rate
                  for account_name, account in config.twilio.accounts.items()
                  for name, endpoint in account.webhook_endpoints.items()})
    return rates


def webhook_routes(config: Config, store: Store, clock: Callable[[], datetime]) -> list[Any]:
    """The voice webhooks (with a public URL) and the SendGrid Event Webhook route (when some
    email sender has a verification key)."""
    from ml_connector.web.email_events import email_event_route
    from ml_connector.web.voice_webhooks import voice_routes

    routes: list[Any] = []
    tokens = {a.account_sid: a.auth_token.get_secret_value() for a in config.twilio.accounts.values() if a.auth_token}
    if config.webhooks.public_url and tokens:
        routes += voice_routes(store=store, auth_tokens=tokens, public_url=str(config.webhooks.public_url),
                              clock=clock)
    keys = [load_public_key(sender.event_public_key)
            for account in config.twilio.accounts.values() for sender in account.email_senders.values()
            if sender.event_public_key]
    if keys:
        routes.append(email_event_route(store=store, public_keys=keys, clock=clock))
    return routes


async def aclose(channels: dict[str, Channel]) -> None:
    for channel in channels.values():
        if isinstance(channel, EmailChannel | WebhookChannel):
            await channel.aclose()
