"""The REST API's bodies as pydantic models: what handlers return and what the OpenAPI document says.

One definition serves both, so the document cannot drift from the answers. Phone numbers are
always masked; bodies appear only in a notification's detail (as on the dashboard).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "Attempt", "AuditPage", "AuditRow", "Callback", "Flow", "FlowList", "Journey", "JourneyEvent",
    "Notification", "NotificationDetail", "NotificationPage", "Problem", "ProblemField", "RecipientHash",
    "RecipientHashRequest", "ReplayFilter", "ReplayResult", "WriteBack",
]


#: So many minutes, hours or days ago.
Ago = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}[mhd]$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemField(_Model):
    name: str = Field(description="The parameter or body field that is wrong.")
    detail: str


class Problem(_Model):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[ProblemField] | None = None


class Notification(_Model):
    id: int
    flow: str
    entity: str
    record_key: str
    channel: str
    status: str
    recipient: str = Field(description="Masked phone number.")
    recipient_field: str
    sender: str
    provider_id: str | None
    error_code: int | None
    error_message: str | None
    reason: str | None
    attempts_made: int
    max_attempts: int
    segments: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None


class Attempt(_Model):
    attempt_no: int
    outcome: str | None
    started_at: datetime
    finished_at: datetime | None
    provider_id: str | None
    provider_status: str | None
    error_code: int | None
    error_message: str | None
    console_url: str | None


class NotificationDetail(Notification):
    body: str
    attempts: list[Attempt]


class NotificationPage(_Model):
    items: list[Notification]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class JourneyEvent(_Model):
    at: datetime
    kind: str
    status: str | None
    detail: dict[str, Any]


class Callback(_Model):
    received_at: datetime
    provider_id: str
    provider_status: str
    error_code: int | None
    result: str = Field(description="applied, duplicate, stale or orphan.")


class WriteBack(_Model):
    source: str
    status: str
    state: str
    attempts: int
    last_error: str | None
    updated_at: datetime


class Journey(_Model):
    notification: NotificationDetail
    record_changed_at: datetime
    event_version: str
    trigger: str
    events: list[JourneyEvent]
    callbacks: list[Callback]
    write_backs: list[WriteBack]
    other_recipients: list[Notification]


class ReplayFilter(_Model):
    flow: str | None = None
    status: list[Literal["failed", "dead", "undelivered"]] = Field(
        default_factory=list, description="Replayable statuses (default: all of them).")
    channel: str | None = None
    since: datetime | Ago | None = Field(default=None,
                                         description="A date/time (UTC unless it says), or 30m/24h/7d ago.")
    until: datetime | Ago | None = None
    recipient_hash: str | None = Field(default=None, pattern="^[0-9a-fA-F]{64}$")
    dry_run: bool = Field(default=True, description="Only count what would be replayed.")


class ReplayResult(_Model):
    dry_run: bool
    matched: int
    capped: bool = Field(description="More matched than one replay takes; replay again for the rest.")
    replayed: list[int]


class Flow(_Model):
    name: str
    source: str
    entity: str
    enabled: bool
    paused: bool
    paused_by: str | None = Field(description="Who paused it (user:NAME or token:NAME).")
    every_seconds: float
    watermark: datetime | None
    lookback_watermark: datetime | None
    last_commit_at: datetime | None
    last_poll_at: datetime | None
    last_read: int | None
    records_read: int | None
    events_fired: int | None
    errors: int | None
    last_error: str | None
    next_run_at: datetime | None
    events_day: int
    failed_day: int


class FlowList(_Model):
    items: list[Flow]


class AuditRow(_Model):
    id: int
    at: datetime
    notification_id: int | None
    flow: str | None
    kind: str
    status: str | None
    detail: dict[str, Any]


class AuditPage(_Model):
    items: list[AuditRow]
    next_cursor: int | None


class RecipientHashRequest(_Model):
    phone: str = Field(min_length=1, max_length=64)


class RecipientHash(_Model):
    recipient_hash: str
