"""The notification state machine: which status may follow which. Pure.

Statuses only move forward. Provider callbacks arrive out of order and more than once, so a
report of a status at or below the current rank changes nothing. Final statuses are terminal,
except that `read` may follow `delivered` and replay may reopen a failed notification.
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
}

#: Statuses after which the provider has nothing more to tell (except `read` after `delivered`).
FINAL: frozenset[Status] = frozenset(
    {Status.DELIVERED, Status.READ, Status.UNDELIVERED, Status.FAILED, Status.DEAD, Status.SUPPRESSED}
)

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


def from_provider(provider_status: str) -> Status | None:
    """Map a Twilio status string to ours; None when it is not a message-lifecycle status."""
    return TWILIO_STATUS.get(provider_status.lower())


def advances(current: Status, new: Status) -> bool:
    """True when moving from `current` to `new` is forward progress.

    A final failure never turns into a success or vice versa, except `read` after `delivered`
    and `delivered` after `undelivered`/`failed` reported by the provider out of order is *not*
    allowed: once final, only `read` may follow `delivered`.
    """
    if current in FINAL:
        return current is Status.DELIVERED and new is Status.READ
    return RANK[new] > RANK[current]
