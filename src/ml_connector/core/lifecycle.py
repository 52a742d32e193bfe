"""The notification state machine: which status may follow which. Pure.

Statuses only move forward. Provider callbacks arrive out of order and more than once, so a
report of a status at or below the current rank changes nothing. Final statuses are terminal,
except that `read` or `acknowledged` may follow `delivered` (and `acknowledged` may follow
`read`), and replay may reopen a failed notification.

Each channel has its own provider-status table (`STATUS_TABLES`): Twilio message statuses,
Twilio call statuses and SendGrid event types are different vocabularies that happen to share
a few words ("delivered", "failed", "queued"), so a word is only read in its channel's table.
"""

from __future__ import annotations

from collections.abc import Mapping

from ml_connector.core.models import Status

#: Rank of each status; a transition is allowed only to a strictly higher rank.
RANK: Mapping[Status, int] = {
    Status.PENDING: 0,
    Status.DEFERRED: 0,
    Status.SENDING: 1,
    Status.QUEUED: 2,
    Status.SENT: 3,
    Status.UNDELIVERED: 4,
    Status.FAILED: 4,
    Status.DEAD: 4,
    Status.SUPPRESSED: 4,
    Status.DELIVERED: 5,
    Status.READ: 6,
    Status.ACKNOWLEDGED: 7,
}

#: Statuses after which the provider has nothing more to tell (except what AFTER_DELIVERY allows).
FINAL: frozenset[Status] = frozenset({
    Status.DELIVERED, Status.READ, Status.ACKNOWLEDGED, Status.UNDELIVERED, Status.FAILED, Status.DEAD,
    Status.SUPPRESSED,
})

#: What the person did with a delivered notification: may follow `delivered`, in rank order.
AFTER_DELIVERY: frozenset[Status] = frozenset({Status.DELIVERED, Status.READ, Status.ACKNOWLEDGED})

#: Statuses a person may replay.
REPLAYABLE: frozenset[Status] = frozenset({Status.FAILED, Status.DEAD, Status.UNDELIVERED})

#: Twilio message status -> our status. Unknown provider statuses map to None (kept in audit only).
TWILIO_STATUS: Mapping[str, Status] = {
    "accepted": Status.QUEUED,
    "scheduled": Status.QUEUED,
    "queued": Status.QUEUED,
    "sending": Status.QUEUED,
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.READ,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
    "canceled": Status.FAILED,
    "partially_delivered": Status.DELIVERED,
}

#: Twilio call status (Calls resource and status callbacks, twilio.md §8) -> our status. A call
#: that was answered and ended is `delivered`; the confirming digit (our own Gather action, not
#: a Twilio status) is reported as "acknowledged". busy/no-answer are `undelivered`: the voice
#: channel's retry table decides whether to call again.
CALL_STATUS: Mapping[str, Status] = {
    "queued": Status.QUEUED,
    "initiated": Status.QUEUED,
    "ringing": Status.SENT,
    "in-progress": Status.SENT,
    "answered": Status.SENT,
    "completed": Status.DELIVERED,
    "acknowledged": Status.ACKNOWLEDGED,
    "busy": Status.UNDELIVERED,
    "no-answer": Status.UNDELIVERED,
    "failed": Status.FAILED,
    "canceled": Status.FAILED,
}

#: SendGrid mail send answer and Event Webhook event types (twilio.md §10) -> our status.
#: "queued" is our name for the 202 of /v3/mail/send. `deferred` means the receiving server
#: said "try later" and SendGrid keeps trying: still on its way. `open`/`click` are not
#: delivery statuses: kept in the audit only (None).
SENDGRID_EVENTS: Mapping[str, Status] = {
    "queued": Status.QUEUED,
    "processed": Status.QUEUED,
    "deferred": Status.SENT,
    "delivered": Status.DELIVERED,
    "bounce": Status.UNDELIVERED,
    "dropped": Status.FAILED,
}

#: An outbound webhook's 2xx answer is its delivery; nothing reports on it later.
WEBHOOK_STATUS: Mapping[str, Status] = {"delivered": Status.DELIVERED}

#: Channel name -> its provider-status table. SMS, MMS and WhatsApp share Twilio Messages.
STATUS_TABLES: Mapping[str, Mapping[str, Status]] = {
    "sms": TWILIO_STATUS,
    "mms": TWILIO_STATUS,
    "whatsapp": TWILIO_STATUS,
    "voice": CALL_STATUS,
    "email": SENDGRID_EVENTS,
    "webhook": WEBHOOK_STATUS,
}


def from_provider(provider_status: str, channel: str = "sms") -> Status | None:
    """Map a provider status string to ours, in the channel's table; None when it is not a
    lifecycle status of that channel (kept in the audit only) or the channel is unknown."""
    table = STATUS_TABLES.get(channel)
    return None if table is None else table.get(provider_status.lower())


def advances(current: Status, new: Status) -> bool:
    """True when moving from `current` to `new` is forward progress.

    A final failure never turns into a success or vice versa: `delivered` after
    `undelivered`/`failed` reported by the provider out of order is *not* allowed. Once final,
    only a higher step of AFTER_DELIVERY may follow one (delivered -> read -> acknowledged).
    """
    if current in FINAL:
        return current in AFTER_DELIVERY and new in AFTER_DELIVERY and RANK[new] > RANK[current]
    return RANK[new] > RANK[current]
