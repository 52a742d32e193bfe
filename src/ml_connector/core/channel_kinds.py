"""What each channel is, as data: its statuses, its addresses, how it is paced. Pure.

The dispatcher, store, replay and audit are the same for every channel; what differs is
declared here, once per channel, and read by whoever needs it:

    field       meaning
    statuses    provider status -> lifecycle status (core.lifecycle.STATUS_TABLES)
    address     what a recipient is: an E.164 phone number, an email address, or the flow's
                endpoint itself (outbound webhooks have no person to resolve)
    pacing      "sender": each sender has its own rate (Twilio queues per number, SendGrid per
                key); "account": one rate for the whole account (calls per second)
    segments    whether the body is billed and paced by SMS segments
    lookup      whether the provider can be asked for one message's status, or for what was
                sent (SendGrid cannot: its events are the only source, see channels.email)

The error tables live next to the provider they classify (core.resolution for Twilio REST
and delivery codes, core.sendgrid_errors for SendGrid); the channel module applies its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ml_connector.core.lifecycle import STATUS_TABLES
from ml_connector.core.models import Status

__all__ = ["CHANNEL_KINDS", "MESSAGE_CHANNELS", "ChannelKind", "channel_kind", "route_key"]

#: Channels on Twilio Messages: their status callbacks go to the message status webhook.
MESSAGE_CHANNELS = frozenset({"sms", "mms", "whatsapp"})


@dataclass(frozen=True, slots=True)
class ChannelKind:
    name: str
    statuses: Mapping[str, Status]
    address: Literal["phone", "email", "endpoint"]
    pacing: Literal["sender", "account"]
    segments: bool
    lookup: bool = True


CHANNEL_KINDS: Mapping[str, ChannelKind] = {
    "sms": ChannelKind("sms", STATUS_TABLES["sms"], "phone", "sender", segments=True),
    "mms": ChannelKind("mms", STATUS_TABLES["mms"], "phone", "sender", segments=False),
    "whatsapp": ChannelKind("whatsapp", STATUS_TABLES["whatsapp"], "phone", "sender", segments=False),
    "voice": ChannelKind("voice", STATUS_TABLES["voice"], "phone", "account", segments=False),
    "email": ChannelKind("email", STATUS_TABLES["email"], "email", "sender", segments=False, lookup=False),
    "webhook": ChannelKind("webhook", STATUS_TABLES["webhook"], "endpoint", "sender", segments=False, lookup=False),
}


def channel_kind(name: str) -> ChannelKind:
    """The declaration of channel `name`; KeyError names the channels there are."""
    try:
        return CHANNEL_KINDS[name]
    except KeyError:
        raise KeyError(f"unknown channel {name!r}; channels: {', '.join(sorted(CHANNEL_KINDS))}") from None


def route_key(account: str, channel: str) -> str:
    """The key of one account's channel in the dispatcher's channel map.

    SMS keeps the bare account name (an account's Messages channel is what the name meant
    before there were other channels); any other channel is "<account>/<channel>".
    """
    return account if channel == "sms" else f"{account}/{channel}"
