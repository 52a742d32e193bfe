"""The Channel contract: send one message, or find one that may already have been sent."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from ml_connector.core.models import OutboundMessage, SendResult, StatusEvent


@runtime_checkable
class Channel(Protocol):
    async def send(self, message: OutboundMessage) -> SendResult:
        """Send once. Raises TransientError, PermanentError or InDoubtError (ml_connector.errors)."""
        ...

    async def find_sent(self, message: OutboundMessage, not_before: datetime) -> SendResult | None:
        """Reconcile an in-doubt send: the provider's record of this message, if it exists."""
        ...

    async def fetch_status(self, provider_id: str) -> StatusEvent:
        """The provider's current status of one message (for reconciliation and `check`)."""
        ...


@runtime_checkable
class Probe(Protocol):
    async def probe(self) -> None:
        """One cheap authenticated call: returns when the provider takes the account, else raises
        the DeliveryError a send would get (AccountError while the account is refused)."""
        ...
