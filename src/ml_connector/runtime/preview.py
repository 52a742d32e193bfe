"""What a flow would send now, read from the real ERP, with nothing sent and nothing stored.

"See if we fit": the flow's source is read over a recent window, each record is judged against
the last-seen values the store holds (read, never updated: a later version of a record in the
window is judged against the earlier one, in memory), recipients are resolved and the template
rendered exactly as the poller does (`Poller.notifications_for`, `runtime.fanout`). The result
lists, per would-be notification, the record, the event, the masked recipient or why there is
none, the text with its segment count and encoding, the channel and the sender.

A flow that has never run has no start time in the store: its preview counts every change in
the window as new (the poller would treat changes before its first start by `first_sighting`).

`preview_flow` is the entry for a caller holding a built flow and a store; `preview_connector`
for one holding a running `app.Connector` (the dashboard: its sources, store and clock, any
flow of its config, enabled or not); `preview_config` builds what one flow needs from a config
without opening the store for writing (`ml-connector preview`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ml_connector.core import rules
from ml_connector.core.members import MembersRecipient
from ml_connector.core.models import Record, Status
from ml_connector.core.redact import mask_phone
from ml_connector.core.segments import segment_info
from ml_connector.errors import ConfigError, TemplateError
from ml_connector.runtime.due import due_records
from ml_connector.runtime.fanout import fan_out
from ml_connector.runtime.poller import STARTED, FlowRuntime, Poller, template_context
from ml_connector.runtime.recipients import RecipientResolver
from ml_connector.sources.base import Closeable, Source
from ml_connector.store.port import NewNotification, PollCommit

__all__ = ["DEFAULT_LIMIT", "FlowPreview", "PreviewItem", "StateReader", "preview_config", "preview_connector",
           "preview_flow"]

#: Would-be notifications listed at most, unless the caller asks for another number.
DEFAULT_LIMIT = 50


class StateReader(Protocol):
    """The two reads a preview makes of the store (SqlStore has both)."""

    def get_watermark(self, flow: str, kind: str = "main") -> datetime | None: ...
    def last_seen(self, flow: str, record_keys: Sequence[str]) -> dict[str, Mapping[str, Any]]: ...


@runtime_checkable
class KnownReader(Protocol):
    """Optional: which notifications are stored already (a poll would insert nothing for them)."""

    def known_notifications(self, idempotency_keys: Sequence[str]) -> set[str]: ...


class _NoState:
    """The state of a store that does not exist yet: nothing seen, never started, nothing sent."""

    def get_watermark(self, flow: str, kind: str = "main") -> datetime | None:
        return None

    def last_seen(self, flow: str, record_keys: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        return {}

    def known_notifications(self, idempotency_keys: Sequence[str]) -> set[str]:
        return set()


class _ReadOnly:
    """A store for the poller's `notifications_for` that refuses every write."""

    def commit_poll(self, commit: PollCommit) -> list[int]:
        raise RuntimeError("a preview never writes to the store")


@dataclass(frozen=True, slots=True)
class PreviewItem:
    """One notification the flow would create."""

    entity: str
    record_key: str
    changed_at: datetime
    event: str
    recipient: str | None       # masked; None when there is no usable number
    recipient_field: str
    reason: str | None          # why there is no recipient, or why nothing could be rendered
    already_stored: bool        # this very notification exists: a poll would not create it again
    text: str | None
    segments: int | None
    encoding: str | None
    channel: str
    account: str
    sender: str

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["changed_at"] = self.changed_at.isoformat()
        return data


@dataclass(slots=True)
class FlowPreview:
    flow: str
    entity: str
    since: datetime
    until: datetime
    read: int = 0
    fired: int = 0
    would_send: int = 0          # new items with a usable recipient (all of them, not only those listed)
    without_recipient: int = 0
    already_stored: int = 0      # events already notified (the same idempotency key is stored)
    items: list[PreviewItem] = field(default_factory=list)
    more: int = 0                # items beyond the limit, counted but not listed
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow, "entity": self.entity, "since": self.since.isoformat(),
            "until": self.until.isoformat(), "read": self.read, "fired": self.fired,
            "would_send": self.would_send, "without_recipient": self.without_recipient,
            "already_stored": self.already_stored,
            "items": [item.as_dict() for item in self.items], "more": self.more, "notes": list(self.notes),
        }


def _describe(trigger: rules.CompiledTrigger, before: Mapping[str, Any] | None,
              after: Mapping[str, Any]) -> str:
    """The event in words: the watched values that moved, or why it fired without a move."""
    if not trigger.stateful:
        shown = ", ".join(f"{k}={after[k]}" for k in trigger.fields)
        return f"matches the trigger ({shown})" if shown else "matches the trigger"
    if before is None:
        shown = ", ".join(f"{k}={after[k]}" for k in trigger.fields)
        return f"first sighting ({shown})"
    moved = [f"{k}: {before.get(k)} -> {after[k]}" for k in trigger.fields if before.get(k) != after[k]]
    return "; ".join(moved) if moved else "unchanged watched values"


class _Collector:
    def __init__(self, result: FlowPreview, limit: int) -> None:
        self.result = result
        self.limit = limit

    @property
    def full(self) -> bool:
        return len(self.result.items) >= self.limit

    def add(self, n: NewNotification, changed_at: datetime, event: str, stored: bool) -> None:
        usable = n.status is Status.PENDING
        if stored:
            self.result.already_stored += 1
        elif usable:
            self.result.would_send += 1
        else:
            self.result.without_recipient += 1
        if self.full:
            self.result.more += 1
            return
        info = segment_info(n.body)
        self.result.items.append(PreviewItem(
            entity=n.entity, record_key=n.record_key, changed_at=changed_at, event=event,
            recipient=mask_phone(n.recipient) if usable else None, recipient_field=n.recipient_field,
            reason=None if usable else n.reason, already_stored=stored, text=n.body, segments=info.segments,
            encoding=info.encoding,
            channel=n.channel, account=n.account, sender=n.sender,
        ))

    def failed_render(self, flow: FlowRuntime, record: Record, event: str, error: TemplateError) -> None:
        self.result.without_recipient += 1
        if self.full:
            self.result.more += 1
            return
        self.result.items.append(PreviewItem(
            entity=record.entity, record_key=record.key, changed_at=record.changed_at, event=event,
            recipient=None, recipient_field="", reason=f"template error: {error}", already_stored=False,
            text=None, segments=None,
            encoding=None, channel=flow.spec.channel, account=flow.account, sender=flow.sender,
        ))


def _records(flow: FlowRuntime, since: datetime, until: datetime) -> AsyncIterator[Record]:
    spec = flow.spec
    if spec.due is None:
        return flow.source.fetch(spec.entity, since, until)
    return due_records(flow.source, spec.entity, spec.due, spec.timezone, since, until)


async def preview_flow(flow: FlowRuntime, state: StateReader, *, since: datetime, until: datetime,
                       clock: Callable[[], datetime], limit: int = DEFAULT_LIMIT,
                       batch_size: int = 500) -> FlowPreview:
    """Judge the flow's records changed in [since, until] and collect what would be sent.

    `state` is only read. Records are judged in batches (one last-seen read per batch) in the
    order the source yields them, as the poller does; at most `limit` items are listed, all
    are counted.
    """
    if limit < 0:
        raise ValueError("limit must not be negative")
    result = FlowPreview(flow.name, flow.spec.entity, since, until)
    trigger = rules.compile_trigger(flow.spec.trigger)
    started = await asyncio.to_thread(state.get_watermark, flow.name, STARTED)
    if started is None:
        result.notes.append("this flow has not run yet: every change in the window counts as new")
        started = since
    poller = Poller(flow, _ReadOnly(), clock)  # type: ignore[arg-type]  # only notifications_for is used
    resolver = RecipientResolver(flow.source, flow.default_region)
    collect = _Collector(result, limit)
    fan_outs = [r for r in flow.spec.recipients if isinstance(r, MembersRecipient)]
    seen: dict[str, Mapping[str, Any]] = {}  # judged in this preview: later versions compare with these
    batch: list[Record] = []

    async def judge(records: list[Record]) -> None:
        unseen = [r.key for r in records if r.key not in seen]
        stored = await asyncio.to_thread(state.last_seen, flow.name, unseen) if trigger.stateful and unseen else {}
        seen.update(stored)
        for record in records:
            before = seen.get(record.key) if trigger.stateful else None
            policy = "fire" if record.changed_at >= started else flow.spec.first_sighting
            snapshot = trigger.snapshot(record.data)
            fires = trigger.evaluate(record.data, before, policy)
            if trigger.stateful:
                seen[record.key] = snapshot
            if fires:
                result.fired += 1
                await _fired(record, before, snapshot)

    async def _fired(record: Record, before: Mapping[str, Any] | None, snapshot: dict[str, Any]) -> None:
        event = _describe(trigger, before, snapshot)
        version = rules.event_version(record.changed_at, snapshot)
        now = clock()
        try:
            await add(await poller.notifications_for(record, version, resolver, now, snapshot), record, event)
            for spec in fan_outs:
                async for page in fan_out(flow, record, version, spec, resolver, now, template_context):
                    await add(page, record, event)
        except TemplateError as exc:
            collect.failed_render(flow, record, event, exc)

    async def add(made: list[NewNotification], record: Record, event: str) -> None:
        """Collect what one event makes, marking those whose idempotency key is stored already."""
        keys = [n.idempotency_key for n in made]
        known = await asyncio.to_thread(state.known_notifications, keys) \
            if made and isinstance(state, KnownReader) else set()
        for n in made:
            collect.add(n, record.changed_at, event, n.idempotency_key in known)

    async for record in _records(flow, since, until):
        result.read += 1
        batch.append(record)
        if len(batch) >= batch_size:
            await judge(batch)
            batch = []
    if batch:
        await judge(batch)
    return result


# -- from a config (the CLI) ---------------------------------------------------------------------


def flow_runtime(config: Any, name: str, sources: Mapping[str, Source]) -> FlowRuntime:
    """One flow as the poller gets it (`Connector._flow_runtimes`), enabled or not."""
    from ml_connector.app import compile_flows, sender_value

    spec = config.flows.get(name)
    if spec is None:
        raise ConfigError(f"no flow {name!r}; flows: {', '.join(config.flows)}")
    account, sender = sender_value(config, spec.sender)
    template = compile_flows(config)[name]
    return FlowRuntime(
        name=name, spec=spec, source=sources[spec.source], template=template, account=account, sender=sender,
        default_region=getattr(config.sources[spec.source], "default_region", "US"),
    )


async def preview_connector(connector: Any, flow: str, *, since: timedelta,
                            limit: int = DEFAULT_LIMIT) -> FlowPreview:
    """Preview one flow of a built `app.Connector` with its own sources, store and clock."""
    runtime = connector.flows.get(flow) or flow_runtime(connector.config, flow, connector.sources)
    now = connector.clock()
    return await preview_flow(runtime, connector.store, since=now - since, until=now, clock=connector.clock,
                              limit=limit)


def _sqlite_file(url: str) -> Path | None:
    from ml_connector.store.engine import parse_url

    parsed = parse_url(url)
    return Path(parsed.database) if parsed.drivername == "sqlite" and parsed.database else None


def open_state(config: Any, env: Mapping[str, str]) -> tuple[StateReader, Callable[[], None]]:
    """The store's last-seen state, opened without migrating; a SQLite file not created yet is empty."""
    from ml_connector.store.crypto import load_keyring
    from ml_connector.store.sql import SqlStore

    url = config.store.url
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        return _NoState(), lambda: None
    store = SqlStore(url, load_keyring(config.store.key_file, env), migrate=False)
    return store, store.close


async def preview_config(config: Any, flow: str, *, since: timedelta, limit: int = DEFAULT_LIMIT,
                         env: Mapping[str, str] | None = None, source_context: Mapping[str, Any] | None = None,
                         clock: Callable[[], datetime] | None = None) -> FlowPreview:
    """Preview one flow of `config` against its configured source (`ml-connector preview`)."""
    from ml_connector.sources import registry

    env = os.environ if env is None else env
    clock = clock or (lambda: datetime.now(UTC))
    spec = config.flows.get(flow)
    if spec is None:
        raise ConfigError(f"no flow {flow!r}; flows: {', '.join(config.flows)}")
    section = config.sources[spec.source]
    source = registry.factory(section.type)(section, {"clock": clock, **(source_context or {}), "name": spec.source})
    state, close = open_state(config, env)
    try:
        runtime = flow_runtime(config, flow, {spec.source: source})
        now = clock()
        return await preview_flow(runtime, state, since=now - since, until=now, clock=clock, limit=limit)
    finally:
        close()
        if isinstance(source, Closeable):
            await source.aclose()
