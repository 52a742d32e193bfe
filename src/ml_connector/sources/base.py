"""The Source contract every ERP adapter implements, and the registry that builds them.

A source owns everything about speaking to its ERP: login, sessions, context, paging, clock.
The poller only sees `Record`s with aware-UTC `changed_at`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ml_connector.core.models import CheckResult, Delivery, Record


@runtime_checkable
class Source(Protocol):
    """One configured ERP connection."""

    async def check(self) -> CheckResult:
        """Authenticate and make one cheap real call; raise a SourceError saying what failed."""
        ...

    def fetch(self, entity: str, since: datetime, until: datetime) -> AsyncIterator[Record]:
        """Records of `entity` changed in [since, until), oldest first, ties by key; streaming."""
        ...

    async def lookup(self, entity: str, key: str) -> Record | None:
        """One record by key (e.g. a buyer's phones), or None when it does not exist."""
        ...


@runtime_checkable
class WriteBack(Protocol):
    """Optional: a source that can record a notification's final delivery status in the ERP."""

    async def write_back(self, delivery: Delivery) -> None: ...


@runtime_checkable
class Closeable(Protocol):
    """Optional: a source holding a session or connections releases them here (logout)."""

    async def aclose(self) -> None: ...


#: Builds a source from its validated config section (a pydantic model) and shared context.
SourceFactory = Callable[[Any, Mapping[str, Any]], Source]
