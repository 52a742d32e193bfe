"""What the contract suite needs from an adapter/simulator pair: the SourceHarness protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ml_connector.sources.base import Closeable, Source
from tests.support.clock import ManualClock

START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # a whole second, mid-morning in New York

OVERLAP = timedelta(minutes=10)
LOOKBACK_WINDOW = timedelta(hours=1)


class SourceHarness(Protocol):
    """One adapter wired to its simulator in-process. Built fresh for every test.

    `entity` is an entity whose records `change()` and `late()` create; `key_field` is the
    field of its records holding the key; `page_size` is the page size `build()` configures,
    so that `change(page_size * 2 + 1)` spans several pages.

    Optional attributes (read with the functions below, which supply the defaults):

    * `observed` (default False): True when `changed_at` is the time a poll observed the row,
      not the time the row changed (an ERP with no change time to trust, e.g. SYSPRO): then
      tests that compare change times of separate changes do not apply.
    * `overlap` and `lookback_window` (defaults OVERLAP and LOOKBACK_WINDOW): the flow's
      schedule in the ERP's own time grain. An ERP whose "late" records are back-dated by whole
      days (business dates) needs a day-sized overlap, or "older than the overlap" means nothing.
    """

    name: str
    entity: str
    key_field: str
    page_size: int
    clock: ManualClock
    #: details check() must report (a subset of CheckResult.details)
    expected_check: Mapping[str, str]

    def build(self, **overrides: Any) -> Source:
        """A new source instance (a restart) talking to the same simulator."""
        ...

    def change(self, count: int) -> list[str]:
        """Make `count` records change now (visible at once); their keys."""
        ...

    def late(self, age: timedelta) -> str:
        """A record whose change time is `age` ago but which becomes visible only now; its key."""
        ...

    def expire_sessions(self) -> bool:
        """Kill every server-side session now; False when the ERP has no sessions."""
        ...

    def logins(self) -> int:
        """How many logins the simulator has served (counted on the wire, not by the adapter)."""
        ...

    def corrupt_next(self) -> None:
        """The next successful response body is truncated."""
        ...

    async def aclose(self) -> None:
        """Close every source built."""
        ...


Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class LoginCounter:
    """ASGI middleware counting logins as the server sees them: requests whose path `is_login`."""

    def __init__(self, app: Asgi, is_login: Callable[[str], bool]) -> None:
        self.app = app
        self.is_login = is_login
        self.count = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and self.is_login(str(scope.get("path", ""))):
            self.count += 1
        await self.app(scope, receive, send)


class SimulatedErp:
    """What the harnesses backed by an ERP simulator share: `sim`, its counted `app`, the sources built."""

    sim: Any
    app: LoginCounter
    _built: list[Source]

    def logins(self) -> int:
        return self.app.count

    def corrupt_next(self) -> None:
        self.sim.malform_next(1)

    async def aclose(self) -> None:
        for source in self._built:
            if isinstance(source, Closeable):
                await source.aclose()


def observes(harness: SourceHarness) -> bool:
    """True when changed_at is the poll's observation time (see SourceHarness)."""
    return bool(getattr(harness, "observed", False))


def overlap_of(harness: SourceHarness) -> timedelta:
    value = getattr(harness, "overlap", OVERLAP)
    assert isinstance(value, timedelta)
    return value


def lookback_of(harness: SourceHarness) -> timedelta:
    value = getattr(harness, "lookback_window", LOOKBACK_WINDOW)
    assert isinstance(value, timedelta)
    return value
