"""What the Twilio simulator remembers: accounts, credentials, senders, messages and their history.

Configuration objects are frozen; a simulated message is the one mutable record, changed only by
the simulator's own lifecycle task. Snapshots handed to tests are frozen copies.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

from ml_connector.sim import twilio_wire as wire

DEFAULT_ACCOUNT_SID = "AC" + "a" * 32
DEFAULT_AUTH_TOKEN = "5a1d0c0ffee5a1d0c0ffee5a1d0c0ffe"  # noqa: S105 - the simulator's public demo token
DEFAULT_API_KEY_SID = "SK" + "b" * 32
DEFAULT_API_KEY_SECRET = "sim-api-key-secret-0123456789abc"  # noqa: S105 - public demo secret
DEFAULT_SERVICE_SID = "MG" + "c" * 32
DEFAULT_NUMBERS = ("+15005550006", "+15017122661", "+15017122662")
_EPOCH = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

FinalStatus = Literal["delivered", "read", "undelivered", "failed", "rejected"]  # read: WhatsApp


@dataclass(frozen=True)
class Account:
    """An account with its primary Auth Token and the senders it owns."""

    sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = DEFAULT_AUTH_TOKEN
    numbers: tuple[str, ...] = DEFAULT_NUMBERS
    friendly_name: str = "ml-connector simulator"
    type: Literal["Trial", "Full"] = "Full"
    status: Literal["active", "suspended", "closed"] = "active"
    owner_account_sid: str | None = None
    date_created: datetime = _EPOCH

    def __post_init__(self) -> None:
        if not wire.ACCOUNT_SID.match(self.sid):
            raise ValueError("account sid must match ^AC[0-9a-fA-F]{32}$")


@dataclass(frozen=True)
class ApiKey:
    """An API Key (SK...) and its secret; it authenticates for exactly one account."""

    sid: str = DEFAULT_API_KEY_SID
    secret: str = DEFAULT_API_KEY_SECRET
    account_sid: str = DEFAULT_ACCOUNT_SID


@dataclass(frozen=True)
class MessagingService:
    """A Messaging Service with its sender pool and optional service-level status callback."""

    sid: str = DEFAULT_SERVICE_SID
    account_sid: str = DEFAULT_ACCOUNT_SID
    pool: tuple[str, ...] = ("+15017122661", "+15017122662")
    status_callback: str | None = None

    def __post_init__(self) -> None:
        if not wire.SERVICE_SID.match(self.sid) or not self.pool:
            raise ValueError("a messaging service needs an MG... sid and a non-empty pool")


@dataclass(frozen=True)
class Outcome:
    """What happens to messages sent to one number.

    `rejected` answers the create request itself with `error_code` (a 21xxx code); the others
    are reached asynchronously, through `sent` unless `via_sent` is false.
    """

    status: FinalStatus = "delivered"
    error_code: int | None = None
    via_sent: bool = True

    def __post_init__(self) -> None:
        needs_code = self.status not in ("delivered", "read")
        if needs_code != (self.error_code is not None):
            raise ValueError("error_code is required for undelivered/failed/rejected and only for them")
        if self.status == "rejected" and not wire.is_sync_error_code(self.error_code or 0):
            raise ValueError("a rejected outcome needs a known synchronous error code")


@dataclass(frozen=True)
class StatusChange:
    status: str
    at: datetime


@dataclass(frozen=True)
class CallbackAttempt:
    """One HTTP POST of a status callback, as it left the simulator and how it ended."""

    status: str
    url: str
    attempt: int
    params: tuple[tuple[str, str], ...]
    signature: str
    idempotency_token: str
    result: str
    ok: bool
    at: datetime


@dataclass(eq=False)
class SimMessage:
    """A message resource and its history. Mutated only by the simulator."""

    seq: int
    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    media_urls: tuple[str, ...]
    messaging_service_sid: str | None
    status: str
    num_segments: int
    date_created: datetime
    date_updated: datetime
    status_callback: str | None
    outcome: Outcome
    date_sent: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    price: str | None = None
    price_unit: str | None = None
    statuses: list[StatusChange] = field(default_factory=list)
    callbacks: list[CallbackAttempt] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"/{wire.API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def resource(self) -> dict[str, object]:
        """The api.v2010.account.message representation."""
        return {
            "account_sid": self.account_sid,
            "api_version": wire.API_VERSION,
            "body": self.body,
            "date_created": wire.rfc2822(self.date_created),
            "date_sent": wire.rfc2822(self.date_sent) if self.date_sent else None,
            "date_updated": wire.rfc2822(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_urls)),
            "num_segments": str(self.num_segments),
            "price": self.price,
            "price_unit": self.price_unit,
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": self.uri.removesuffix(".json") + "/Media.json"},
            "to": self.to,
            "uri": self.uri,
        }

    def sent_on(self) -> date | None:
        return self.date_sent.date() if self.date_sent else None


@dataclass(frozen=True)
class MessageRecord:
    """A frozen snapshot of one message for tests and the /_sim/ control API."""

    sid: str
    to: str
    from_: str | None
    status: str
    error_code: int | None
    resource: dict[str, object]
    statuses: tuple[StatusChange, ...]
    callbacks: tuple[CallbackAttempt, ...]

    @classmethod
    def of(cls, message: SimMessage) -> MessageRecord:
        return cls(
            sid=message.sid,
            to=message.to,
            from_=message.from_,
            status=message.status,
            error_code=message.error_code,
            resource=message.resource(),
            statuses=tuple(message.statuses),
            callbacks=tuple(message.callbacks),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "sid": self.sid,
            "to": self.to,
            "from": self.from_,
            "status": self.status,
            "error_code": self.error_code,
            "resource": self.resource,
            "statuses": [{"status": s.status, "at": s.at.isoformat()} for s in self.statuses],
            "callbacks": [
                {
                    "status": c.status,
                    "url": c.url,
                    "attempt": c.attempt,
                    "params": dict(c.params),
                    "signature": c.signature,
                    "idempotency_token": c.idempotency_token,
                    "result": c.result,
                    "ok": c.ok,
                    "at": c.at.isoformat(),
                }
                for c in self.callbacks
            ],
        }


class MessageIndex:
    """Messages by SID (O(1)) and, in creation order, by account, (account, To) and (account, From)."""

    def __init__(self) -> None:
        self.by_sid: dict[str, SimMessage] = {}
        self._by_account: dict[str, list[SimMessage]] = {}
        self._by_to: dict[tuple[str, str], list[SimMessage]] = {}
        self._by_from: dict[tuple[str, str], list[SimMessage]] = {}

    def add(self, message: SimMessage) -> None:
        self.by_sid[message.sid] = message
        self._by_account.setdefault(message.account_sid, []).append(message)
        self._by_to.setdefault((message.account_sid, message.to), []).append(message)
        if message.from_ is not None:
            self._by_from.setdefault((message.account_sid, message.from_), []).append(message)

    def sender_assigned(self, message: SimMessage) -> None:
        """Index a message whose sender was picked from a Messaging Service pool after creation."""
        if message.from_ is not None:
            bucket = self._by_from.setdefault((message.account_sid, message.from_), [])
            bisect.insort(bucket, message, key=lambda m: m.seq)

    def candidates(self, account_sid: str, to: str | None, from_: str | None) -> list[SimMessage]:
        """The narrowest creation-ordered list that holds every message matching the filters."""
        if to is not None:
            return self._by_to.get((account_sid, to), [])
        if from_ is not None:
            return self._by_from.get((account_sid, from_), [])
        return self._by_account.get(account_sid, [])

    def __iter__(self) -> Iterator[SimMessage]:
        return iter(sorted(self.by_sid.values(), key=lambda m: m.seq))

    def __len__(self) -> int:
        return len(self.by_sid)
