"""What the dashboard and the REST API work with, built once from a Connector.

One object, so pages and API handlers share the same store, queries, clock and flow
settings; `pause`/`resume` go through the store's persisted flow pause when it has one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ml_connector.config_dashboard import DashboardConfig
from ml_connector.runtime.flow_activity import FlowActivity, FlowActivityLog
from ml_connector.store.insights import FlowFigures, Insights, PageQuery
from ml_connector.store.users import Principal, UserStore, engine_of

__all__ = ["FlowRow", "PauseUnsupported", "Surface", "surface_of"]

#: At most this many notifications are replayed by one filter (the dry run says when more match).
REPLAY_CAP = 1000


class PauseUnsupported(Exception):
    """This store cannot persist a flow pause."""


@dataclass(frozen=True, slots=True)
class FlowRow:
    name: str
    source: str
    entity: str
    enabled: bool
    every: float
    paused: bool
    figures: FlowFigures
    activity: FlowActivity | None
    state: Any = None  # store.flows.FlowState when the store keeps one (last poll and error of any process)

    @property
    def last_poll_at(self) -> datetime | None:
        mine = self.activity.last_poll_at if self.activity else None
        theirs = getattr(self.state, "last_poll_at", None)
        return max((t for t in (mine, theirs) if t is not None), default=self.figures.last_commit)

    @property
    def last_error(self) -> str | None:
        if self.activity and self.activity.last_error:
            return self.activity.last_error
        return getattr(self.state, "last_error", None)

    @property
    def paused_by(self) -> str | None:
        return getattr(self.state, "paused_by", None)


@dataclass
class Surface:
    store: Any                      # SqlStore: the Store port plus replay and flow pause
    insights: Insights
    users: UserStore
    settings: DashboardConfig
    flows: Mapping[str, Any]        # name -> FlowSpec
    sources: Mapping[str, Any]      # name -> source section
    activity: FlowActivityLog
    clock: Callable[[], datetime]

    @property
    def region(self) -> str:
        """The region a phone typed without country code is read in (the first source's)."""
        for section in self.sources.values():
            return str(getattr(section, "default_region", "US"))
        return "US"

    def console_link(self, sid: str | None) -> str | None:
        return self.settings.twilio_console_url.replace("{sid}", sid) if sid else None

    # -- flows -------------------------------------------------------------------------------

    def paused_flows(self) -> set[str]:
        paused = getattr(self.store, "paused_flows", None)
        return set(paused()) if callable(paused) else set()

    async def set_paused(self, flow: str, paused: bool, who: Principal) -> None:
        setter = getattr(self.store, "set_flow_paused", None)
        if not callable(setter):
            raise PauseUnsupported("this version of the store cannot pause flows")
        await asyncio.to_thread(setter, flow, paused, who.actor)

    def flow_rows(self, names: Sequence[str] | None = None) -> list[FlowRow]:
        chosen = list(self.flows) if names is None else list(names)
        now = self.clock()
        figures = self.insights.flow_figures(chosen, now)
        paused = self.paused_flows()
        states_of = getattr(self.store, "flow_states", None)
        states = states_of(chosen, now - timedelta(days=1)) if callable(states_of) else {}
        return [
            FlowRow(name=name, source=spec.source, entity=spec.entity, enabled=spec.enabled,
                    every=spec.schedule.every.total_seconds(), paused=name in paused, figures=figures[name],
                    activity=self.activity.get(name), state=states.get(name))
            for name in chosen
            for spec in (self.flows[name],)
        ]

    # -- replay ------------------------------------------------------------------------------

    async def replay_ids(self, ids: Sequence[int], who: Principal) -> list[int]:
        """Reopen these notifications (the store audits each with who did it)."""
        replayed: list[int] = await asyncio.to_thread(self.store.replay, list(ids), self.clock(), who.actor)
        return replayed

    async def replay_candidates(self, query: PageQuery) -> list[int]:
        found: list[int] = await asyncio.to_thread(self.insights.replayable_ids, query, REPLAY_CAP + 1)
        return found


def surface_of(connector: Any) -> Surface:
    """The surface of a built Connector (app.py)."""
    config = connector.config
    settings = config.dashboard or DashboardConfig()
    engine = engine_of(connector.store)
    return Surface(
        store=connector.store, insights=Insights(engine, connector.keyring), users=UserStore(engine),
        settings=settings, flows=config.flows, sources=config.sources, activity=connector.activity,
        clock=connector.clock,
    )
