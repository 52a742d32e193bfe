"""Which notification an inbound text answers. Pure.

SMS has no thread id. A reply belongs to a notification sent to the same person (keyed phone
hash) from the same sender (number, or Messaging Service when the notification went through one,
since the service may have picked any of its numbers) within the flow's reply window. Among those:

1. a flow may put a short reference in its text ("Reply YES 4711 to approve"): a reply carrying
   a reference matches the notification with it, even when several are open;
2. otherwise the most recent one matches, unless its flow asks for references and another open
   notification asks for them too (then the person must say which: the reply is ambiguous);
3. a reply that matches nothing, or two with the same reference, or two sent at the same instant,
   is unmatched with the reason. It is never dropped and never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ml_connector.core.keywords import words


@dataclass(frozen=True)
class Sent:
    """One notification a reply could answer."""

    notification_id: int
    recipient_hash: str
    sender: str  # the E.164 number it was sent from, or the Messaging Service SID
    sent_at: datetime
    reply_window: timedelta
    reference: str | None = None  # the short reference the flow put in the text, if any


@dataclass(frozen=True)
class Inbound:
    recipient_hash: str  # the keyed hash of the number that wrote (Twilio's `From`)
    to: str  # the number written to (Twilio's `To`)
    messaging_service_sid: str | None
    body: str
    received_at: datetime


@dataclass(frozen=True)
class Matched:
    notification_id: int
    by: str  # "reference" or "most recent"


@dataclass(frozen=True)
class Unmatched:
    reason: str


Match = Matched | Unmatched


def open_for(inbound: Inbound, sent: Iterable[Sent]) -> list[Sent]:
    """The notifications this text could answer, newest first."""
    senders = {inbound.to} | ({inbound.messaging_service_sid} if inbound.messaging_service_sid else set())
    candidates = [s for s in sent if s.recipient_hash == inbound.recipient_hash and s.sender in senders
                  and s.sent_at <= inbound.received_at <= s.sent_at + s.reply_window]
    return sorted(candidates, key=lambda s: (s.sent_at, s.notification_id), reverse=True)


def match_reply(inbound: Inbound, sent: Iterable[Sent]) -> Match:
    candidates = open_for(inbound, sent)
    if not candidates:
        return Unmatched("no notification sent to this number from this sender is within its reply window")
    said = set(words(inbound.body))
    by_reference = [s for s in candidates if s.reference and s.reference.upper() in said]
    if len(by_reference) == 1:
        return Matched(by_reference[0].notification_id, "reference")
    if len(by_reference) > 1:
        ids = ", ".join(str(s.notification_id) for s in by_reference)
        return Unmatched(f"the reference matches several open notifications ({ids})")
    newest = candidates[0]
    if len(candidates) > 1 and candidates[1].sent_at == newest.sent_at:
        return Unmatched(f"{len(candidates)} open notifications were sent at the same moment and the reply "
                         "carries none of their references")
    referenced = [s for s in candidates if s.reference]
    if newest.reference and len(referenced) > 1:
        refs = ", ".join(s.reference for s in referenced if s.reference)
        return Unmatched(f"several open notifications ask for a reference ({refs}) and the reply carries none")
    return Matched(newest.notification_id, "most recent")

