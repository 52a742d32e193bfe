"""Is this process alive, and can it do its work now? The checks behind `/readyz`.

Each check is a name, whether it passed, and a short detail an operator can act on:

- `store`: the database answers a read (and the store has not met an outage since);
- `migrations`: the schema is at the revision this version expects;
- `pollers` (processes with the poller role): every flow this process polls completed a poll
  within `stuck_after` schedule intervals, and none stopped (a template error stops a flow);
  flows another process polls are on standby here, which is fine;
- `queue` (processes with the dispatcher role): the oldest notification due now waits for less
  than `max_pending_age`.

The poll loop reports to `PollerHealth`; the checks only read it, so they are cheap and never
touch the ERP. The store reads run in a worker thread with a time limit: a database that hangs
makes `/readyz` answer 503 in `timeout`, not hang with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ml_connector.runtime.metrics import RECENT
from ml_connector.store.probe import StoreProbe

__all__ = ["Check", "HealthSettings", "PollerHealth", "Readiness"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class HealthSettings:
    stuck_after: int = 3                      # schedule intervals without a completed poll
    max_pending_age: timedelta = timedelta(minutes=15)
    timeout: timedelta = timedelta(seconds=3)


@dataclass(slots=True)
class _Flow:
    every: timedelta
    since: datetime                          # when this process began polling it (or started)
    leading: bool = False
    last_ok: datetime | None = None
    last_error: str | None = None
    stopped: str | None = None


@dataclass(slots=True)
class PollerHealth:
    """What the poll loops of this process report: who leads which flow, when it last polled."""

    clock: Callable[[], datetime]
    flows: dict[str, _Flow] = field(default_factory=dict)

    def watch(self, flow: str, every: timedelta) -> None:
        self.flows[flow] = _Flow(every=every, since=self.clock())

    def leading(self, flow: str, leads: bool) -> None:
        state = self.flows[flow]
        if leads and not state.leading:
            state.since = self.clock()
        state.leading = leads

    def polled(self, flow: str) -> None:
        state = self.flows[flow]
        state.last_ok, state.last_error = self.clock(), None

    def failed(self, flow: str, error: str) -> None:
        self.flows[flow].last_error = error

    def stopped(self, flow: str, why: str) -> None:
        self.flows[flow].stopped = why

    def check(self, stuck_after: int) -> Check:
        now = self.clock()
        problems: list[str] = []
        polled = standby = 0
        for name, state in sorted(self.flows.items()):
            if state.stopped:
                problems.append(f"{name} stopped: {state.stopped}")
                continue
            if not state.leading:
                standby += 1
                continue
            polled += 1
            last = state.last_ok or state.since
            limit = state.every * stuck_after
            if now - last > limit:
                seen = f"last poll {_ago(now - last)} ago" if state.last_ok else "no poll completed yet"
                error = f" ({state.last_error})" if state.last_error else ""
                problems.append(f"{name}: {seen}, more than {stuck_after} intervals of {_ago(state.every)}{error}")
        if problems:
            return Check("pollers", False, "; ".join(problems))
        return Check("pollers", True, f"{polled} flow(s) polled here, {standby} on standby")


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


class Readiness:
    """The checks of one process, by its roles."""

    def __init__(self, *, probe: StoreProbe, store_problem: Callable[[], str | None], pollers: PollerHealth,
                 roles: Collection[str], clock: Callable[[], datetime], settings: HealthSettings) -> None:
        self._probe = probe
        self._store_problem = store_problem
        self._pollers = pollers
        self._roles = roles  # read at each check: the roles may be added to while serving
        self._clock = clock
        self._settings = settings

    async def checks(self) -> list[Check]:
        found = [*await self._store_checks()]
        if "poller" in self._roles:
            found.append(self._pollers.check(self._settings.stuck_after))
        return found

    async def _store_checks(self) -> list[Check]:
        wants_queue = "dispatcher" in self._roles
        try:
            revision, stats = await asyncio.wait_for(
                asyncio.to_thread(self._read, wants_queue), self._settings.timeout.total_seconds())
        except TimeoutError:
            return [Check("store", False, f"no answer within {self._settings.timeout.total_seconds():g}s")]
        except Exception as exc:
            return [Check("store", False, f"unreachable ({type(exc).__name__})")]
        outage = self._store_problem()
        checks = [Check("store", outage is None, outage or "reachable")]
        expected = self._probe.expected_revision()
        checks.append(Check("migrations", revision == expected,
                            f"at {revision}" if revision == expected else
                            f"database at {revision or 'none'}, this version needs {expected}: "
                            "run `ml-connector db upgrade`"))
        if stats is not None:
            now = self._clock()
            age = now - stats.oldest_due if stats.oldest_due else timedelta(0)
            limit = self._settings.max_pending_age
            checks.append(Check("queue", age <= limit,
                                f"{stats.due} due, oldest waiting {_ago(age)}" + (
                                    "" if age <= limit else f" (more than {_ago(limit)})")))
        return checks

    def _read(self, wants_queue: bool) -> tuple[str | None, Any]:
        revision = self._probe.revision()
        stats = self._probe.outbox(self._clock(), RECENT, counts=False) if wants_queue else None
        return revision, stats


def summary(checks: list[Check]) -> tuple[bool, Mapping[str, Any]]:
    """Ready when every check passed; the JSON body `/readyz` answers."""
    ready = all(c.ok for c in checks)
    return ready, {"ready": ready, "checks": {c.name: c.as_dict() for c in checks}}
