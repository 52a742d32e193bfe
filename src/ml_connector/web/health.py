"""What the web role reports about the process beside callbacks: held Twilio accounts (metrics)
and whether the store can be reached (`/readyz`).

`/healthz` says the process is up; `/readyz` says it can do its work now: a load balancer or
Kubernetes stops routing callbacks to it while the store is away, and Twilio's retries land
elsewhere or later. Both read state the runtime keeps; neither touches the database itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ml_connector.runtime.account_hold import AccountHolds

__all__ = ["AccountHoldCollector", "readiness_endpoint", "store_problem"]


class AccountHoldCollector(Collector):
    """`mlc_twilio_account_held{account}` (1 while held) and `mlc_twilio_account_holds_total`."""

    def __init__(self, holds: AccountHolds, accounts: Sequence[str]) -> None:
        self._holds = holds
        self._accounts = tuple(accounts)

    def collect(self) -> Iterator[Metric]:
        held = GaugeMetricFamily("mlc_twilio_account_held",
                                 "1 while Twilio refuses the account and its sending is held.", labels=["account"])
        times = CounterMetricFamily("mlc_twilio_account_holds",
                                    "Times the account's sending was held since the process started.",
                                    labels=["account"])
        current = self._holds.snapshot()
        for account in self._accounts:
            held.add_metric([account], 1.0 if account in current else 0.0)
            times.add_metric([account], float(self._holds.times_held.get(account, 0)))
        yield held
        yield times


def store_problem(store: object) -> Callable[[], str | None]:
    """What keeps the store from working now (Store.outage), for stores that can tell."""
    if not callable(getattr(type(store), "outage", None)):  # looked up on the class: strict fakes raise
        return lambda: None
    outage = store.outage  # type: ignore[attr-defined]

    def problem() -> str | None:
        found = outage()
        return None if found is None else f"store unavailable ({found})"

    return problem


def readiness_endpoint(problem: Callable[[], str | None]) -> Callable[[Request], Awaitable[Response]]:
    """GET /readyz: 200 "ready", or 503 with what is wrong (`problem()` returns None when all is well)."""

    async def readyz(request: Request) -> Response:
        why = problem()
        if why is None:
            return PlainTextResponse("ready\n")
        return PlainTextResponse(f"not ready: {why}\n", status_code=503)

    return readyz
