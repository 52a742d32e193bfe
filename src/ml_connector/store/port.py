"""The storage port: everything the runtime, webhooks and CLI ask of the database.

Plain value types and one Protocol, no SQLAlchemy: callers depend on this module only, and
`store.sql.SqlStore` implements it for SQLite and PostgreSQL. Methods are synchronous and
short (one transaction each); async callers run them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from ml_connector.core.models import Delivery, Status, StatusEvent
from ml_connector.core.resolution import resolve_delivery_error


@dataclass(frozen=True, slots=True)
class RecordState:
    """Last-seen values of the watched fields of one record in one flow."""

    flow: str
    record_key: str
    values: Mapping[str, Any]
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A notification the poller decided on. Inserted once per idempotency key, ever."""

    idempotency_key: str
    flow: str
    entity: str
    record_key: str
    event_version: str
    channel: str
    account: str
    sender: str
    recipient: str           # E.164 when usable, else the raw value (status FAILED)
    recipient_field: str     # where the number came from ("static", "BUYER_PHONE", "person.MOBILE")
    body: str
    status: Status           # PENDING, or FAILED/SUPPRESSED when decided before sending
    reason: str | None       # why FAILED/SUPPRESSED
    next_attempt_at: datetime
    max_attempts: int
    segments: int
    record_changed_at: datetime
    write_back: str | None = None  # source name to record the final status in (its own queue)
    reply_reference: str | None = None  # the short reference in the text that a reply may quote


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One event's line in a digest, as the poller decided it."""

    item_key: str  # the idempotency key the event's own notification would have had
    flow: str
    recipient: str  # E.164
    account: str
    sender: str
    window_key: str
    closes_at: datetime
    max_items: int | None
    text: str  # the flow's template rendered for this event
    record_key: str



@dataclass(frozen=True, slots=True)
class PollCommit:
    """One poll's result, committed in ONE transaction (invariant 1)."""

    flow: str
    watermark_kind: str                  # "main" or "lookback"
    watermark: datetime | None           # None: leave it where it is
    states: Sequence[RecordState]
    notifications: Sequence[NewNotification]
    polled_at: datetime
    digest_items: Sequence[DigestItem] = ()  # events of batching flows, joined to their digests


@dataclass(frozen=True, slots=True)
class Claimed:
    """A notification claimed for sending, decrypted. `in_doubt`: an earlier attempt never finished."""

    id: int
    flow: str
    entity: str
    record_key: str
    account: str
    sender: str
    recipient: str
    body: str
    attempt_no: int                  # the number of the attempt now starting (1-based)
    max_attempts: int
    in_doubt: bool
    in_doubt_since: datetime | None  # started_at of the unfinished attempt
    created_at: datetime
    channel: str = "sms"             # core.channel_kinds: which channel of the account sends it


class Outcome(StrEnum):
    ACCEPTED = "accepted"      # provider took it: provider_id set, status QUEUED (or later)
    ADOPTED = "adopted"        # reconciliation found the earlier in-doubt send: provider_id set
    TRANSIENT = "transient"    # retry at next_attempt_at (or DEAD if the budget is spent)
    PERMANENT = "permanent"    # FAILED with the provider's code and message
    IN_DOUBT = "in_doubt"      # outcome unknown: stays SENDING-in-doubt, reconciled at next claim
    DEFERRED = "deferred"      # not attempted (pacing, quiet hours): back to PENDING at next_attempt_at
    HELD = "held"              # the account is refused (credentials, standing): PENDING again at
                               # next_attempt_at with the error shown; not an attempt (like DEFERRED)
    LOOKUP_FAILED = "lookup_failed"  # only the in-doubt send's look-up ran, and failed: still in doubt,
                                     # looked up again at next_attempt_at; uses none of the retry budget


@dataclass(frozen=True, slots=True)
class AttemptResult:
    notification_id: int
    attempt_no: int
    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    provider_id: str | None = None
    provider_status: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None


class ApplyResult(StrEnum):
    APPLIED = "applied"        # status moved forward
    DUPLICATE = "duplicate"    # same report seen before: nothing changed
    STALE = "stale"            # older than what we know: kept in audit, status unchanged
    ORPHAN = "orphan"          # unknown provider id: kept, adopted if the SID shows up later


@dataclass(frozen=True, slots=True)
class NotificationFilter:
    flow: str | None = None
    statuses: Sequence[Status] = ()
    since: datetime | None = None
    until: datetime | None = None
    recipient: str | None = None     # E.164; matched through the keyed hash
    ids: Sequence[int] = ()
    limit: int = 100


@dataclass(frozen=True, slots=True)
class AttemptView:
    attempt_no: int
    outcome: str | None
    started_at: datetime
    finished_at: datetime | None
    provider_id: str | None
    provider_status: str | None
    error_code: int | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class NotificationView:
    id: int
    flow: str
    entity: str
    record_key: str
    channel: str
    account: str
    sender: str
    recipient: str
    recipient_field: str
    body: str
    status: Status
    reason: str | None
    provider_id: str | None
    error_code: int | None
    attempts_made: int
    max_attempts: int
    segments: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    attempts: Sequence[AttemptView] = field(default_factory=tuple)
    error_message: str | None = None
    event_version: str = ""

    @property
    def problem(self) -> str:
        """What went wrong, for people: the reason, or the provider's code and message."""
        if self.error_code is not None or self.error_message:
            code = f"[{self.error_code}] " if self.error_code is not None else ""
            text = self.error_message or self.reason
            if not text and self.error_code is not None:  # callbacks carry only the code
                text = resolve_delivery_error(self.error_code).reason.removesuffix(f" ({self.error_code})")
            return code + (text or "")
        return self.reason or ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    notification_id: int | None
    flow: str | None
    kind: str                 # created, claimed, attempt, status, replay, orphan, write_back, poll...
    status: str | None
    detail: Mapping[str, Any]  # never secrets or plaintext personal data


@dataclass(frozen=True, slots=True)
class Revision:
    """A notification addressed and rendered again from the ERP's current record (replay --re-resolve)."""

    idempotency_key: str   # the key a poll would give the event for this recipient now
    recipient: str         # E.164
    recipient_field: str
    body: str
    segments: int


@dataclass(frozen=True, slots=True)
class WriteBackTask:
    """A final delivery status to record in the source ERP (own queue: never blocks sending)."""

    id: int
    source: str
    attempt_no: int
    delivery: Delivery


class Store(Protocol):
    # -- polling -------------------------------------------------------------------------
    def get_watermark(self, flow: str, kind: str = "main") -> datetime | None: ...
    def last_seen(self, flow: str, record_keys: Sequence[str]) -> dict[str, Mapping[str, Any]]: ...
    def commit_poll(self, commit: PollCommit) -> list[int]: ...

    # -- dispatching ---------------------------------------------------------------------
    def claim_due(self, worker: str, now: datetime, lease: timedelta, limit: int) -> list[Claimed]: ...
    def finish_attempt(self, result: AttemptResult) -> None: ...
    def finish_attempts(self, results: Sequence[AttemptResult]) -> list[bool]: ...

    # -- provider reports ----------------------------------------------------------------
    def apply_status(self, event: StatusEvent) -> ApplyResult: ...
    def apply_statuses(self, events: Sequence[StatusEvent]) -> list[ApplyResult]: ...
    def errors_reported(
        self, codes: Sequence[int], since: datetime, until: datetime
    ) -> list[tuple[int, str, str]]: ...

    # -- accounts whose sending is held (runtime.account_hold), for `check` ------------------
    def record_account_hold(self, account: str, reason: str | None, at: datetime) -> None: ...
    def account_holds(self) -> dict[str, Mapping[str, Any]]: ...

    # -- availability ----------------------------------------------------------------------
    def ping(self) -> str: ...
    def outage(self) -> str | None: ...

    # -- write-back to the ERP ----------------------------------------------------------------
    def claim_write_backs(
        self, worker: str, now: datetime, lease: timedelta, limit: int
    ) -> list[WriteBackTask]: ...
    def finish_write_back(
        self, task_id: int, *, ok: bool, error: str | None, next_attempt_at: datetime | None, now: datetime,
        skipped: bool = False,
    ) -> None: ...

    # -- people --------------------------------------------------------------------------
    def list_notifications(self, flt: NotificationFilter) -> list[NotificationView]: ...
    def get_notification(self, notification_id: int) -> NotificationView | None: ...
    def replay(self, ids: Sequence[int], now: datetime, actor: str, *,
               revisions: Mapping[int, Revision] | None = None, forced: Sequence[int] = ()) -> list[int]: ...
    def audit(self, since: datetime | None, until: datetime | None, *, notification: int | None = None,
              flow: str | None = None, kinds: Sequence[str] = ()) -> Iterator[AuditEntry]: ...
