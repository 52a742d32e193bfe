"""Frozen value types that cross module boundaries. Naive datetimes are rejected at the door."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


def require_aware(value: datetime, what: str) -> datetime:
    """Refuse naive datetimes: every instant inside ml-connector is timezone-aware."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value


@dataclass(frozen=True, slots=True)
class Record:
    """One ERP row as a source yields it. `changed_at` is aware UTC, converted by the source."""

    entity: str
    key: str
    changed_at: datetime
    data: Mapping[str, Any]

    def __post_init__(self) -> None:
        require_aware(self.changed_at, "Record.changed_at")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What `check()` reached: shown by `ml-connector check`."""

    system: str
    details: Mapping[str, str] = field(default_factory=dict)


class Status(StrEnum):
    """A notification's lifecycle state (see core.lifecycle for the order)."""

    PENDING = "pending"          # waiting to be sent (first try or retry at next_attempt_at)
    DEFERRED = "deferred"        # held by policy (quiet hours, digest) until next_attempt_at
    SENDING = "sending"          # claimed; request may be in flight (in doubt if the lease expires)
    QUEUED = "queued"            # accepted by the provider (Twilio queued/accepted/scheduled)
    SENT = "sent"                # handed to the carrier
    DELIVERED = "delivered"
    READ = "read"
    ACKNOWLEDGED = "acknowledged"  # the person confirmed (a voice call answered with the digit)
    UNDELIVERED = "undelivered"
    FAILED = "failed"            # permanent failure (ours or the provider's)
    DEAD = "dead"                # transient failures exhausted the retry budget
    SUPPRESSED = "suppressed"    # never sent on purpose (opted out, policy)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What a channel sends. `to` is E.164; `sender` is a From number/ID or a Messaging Service SID."""

    notification_id: int
    account: str
    to: str
    sender: str
    body: str
    media_urls: tuple[str, ...] = ()
    status_callback: str | None = None
    validity_period: int | None = None
    channel: str = "sms"  # core.channel_kinds; the channel module reads `body` its own way
    content_sid: str | None = None         # WhatsApp: an approved Content template (HX...)
    content_variables: str | None = None   # its variables, a JSON object of strings


@dataclass(frozen=True, slots=True)
class SendResult:
    """The provider accepted the request: its id (Twilio SID) and initial status."""

    provider_id: str
    provider_status: str
    segments: int | None = None
    error_code: int | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A provider status report (signed callback or reconciliation fetch)."""

    provider_id: str
    provider_status: str
    error_code: int | None
    received_at: datetime
    raw: Mapping[str, str]

    def __post_init__(self) -> None:
        require_aware(self.received_at, "StatusEvent.received_at")


@dataclass(frozen=True, slots=True)
class Delivery:
    """A notification's final outcome, as handed to a source's write-back."""

    notification_id: int
    flow: str
    entity: str
    record_key: str
    provider_id: str | None
    status: Status
    error_code: int | None
    error_message: str | None
    created_at: datetime
    finished_at: datetime
