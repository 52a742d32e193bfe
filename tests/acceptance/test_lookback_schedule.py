"""The app's poll loop runs a flow's lookback poll on its schedule: first at start, then every `every`.

The clock here moves on every reading, as a real one does; a decision that reads it twice and
compares the readings never sees a lookback due.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ml_connector.demo import DEMO_TZ
from ml_connector.runtime.poller import PollReport
from tests.support.pipeline import LOOKBACK, MAIN, FakeClock, Pipeline, pipeline

FLOW = "invoice_validated"


class MovingClock(FakeClock):
    """A hand clock that also moves one microsecond each time it is read."""

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


def with_lookback(config: dict[str, Any]) -> None:
    config["flows"][FLOW]["schedule"]["lookback"] = {"every": "PT1M", "window": "P1D"}


class CountingPoller:
    """The flow's real poller, counting the polls of each kind the app asks for."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.flow = inner.flow
        self.kinds: list[str] = []

    async def poll(self, kind: str = MAIN) -> PollReport:
        self.kinds.append(kind)
        report: PollReport = await self.inner.poll(kind)
        return report


async def poll_for(p: Pipeline, poller: CountingPoller, seconds: int, step: int = 1) -> None:
    """Poll as the app does, once a `step` for `seconds`, past the clock-skew margin of the seed."""
    for _ in range(seconds // step):
        p.clock.advance(step)
        assert await p.connector._poll_once(poller)  # type: ignore[arg-type]


async def test_the_lookback_runs_at_start_then_at_its_every(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=with_lookback, clock=MovingClock()) as p:
        poller = CountingPoller(p.connector.pollers[FLOW])
        await poll_for(p, poller, 300)
        assert poller.kinds[0] == MAIN
        assert poller.kinds[1] == LOOKBACK  # first at start
        assert poller.kinds.count(MAIN) == 300
        assert poller.kinds.count(LOOKBACK) == 5  # at 0 s, 60 s, 120 s, 180 s, 240 s


async def test_a_back_dated_status_change_is_caught_by_the_scheduled_lookback(tmp_path: Path) -> None:
    async with pipeline(tmp_path, tweak=with_lookback, clock=MovingClock()) as p:
        poller = CountingPoller(p.connector.pollers[FLOW])
        await poll_for(p, poller, 5)  # baseline, and the lookback at start
        assert p.notifications(flow=FLOW) == []

        # Validated now, but stamped three hours back (beyond the two-minute overlap): only a
        # lookback window reaches it.
        back_dated = (p.clock.now - timedelta(hours=3)).astimezone(ZoneInfo(DEMO_TZ))
        with sqlite3.connect(p.erp.path) as db:
            db.execute("UPDATE ap_invoices SET approval_status = 'APPROVED', last_update_date = ?"
                       " WHERE invoice_id = 5001", (back_dated.strftime("%Y-%m-%d %H:%M:%S"),))

        await poll_for(p, poller, 40)  # main polls only: the next lookback is due at 60 s
        assert p.notifications(flow=FLOW) == []
        await poll_for(p, poller, 20)
        (caught,) = p.notifications(flow=FLOW)
        assert caught.record_key == "5001"
        assert poller.kinds.count(LOOKBACK) == 2
