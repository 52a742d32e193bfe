"""Poll one flow: read changed records, judge transitions, commit notifications + watermark.

Each batch of records is committed in one transaction together with the record states and a
watermark that only covers records already judged (invariant 1): a crash anywhere re-polls from
the old watermark, and idempotency keys make the re-poll insert nothing twice (invariant 2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ml_connector.core import rules, watermark
from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.idempotency import notification_key
from ml_connector.core.models import Record, Status
from ml_connector.core.segments import segment_info
from ml_connector.core.templates import CompiledTemplate
from ml_connector.runtime.recipients import RecipientResolver
from ml_connector.sources.base import Source
from ml_connector.store.port import NewNotification, PollCommit, RecordState, Store

log = logging.getLogger(__name__)

STARTED = "started"
MAIN = "main"
LOOKBACK = "lookback"


@dataclass(frozen=True, slots=True)
class FlowRuntime:
    """Everything a poller needs about one flow, resolved from the config."""

    name: str
    spec: FlowSpec
    source: Source
    template: CompiledTemplate
    account: str
    sender: str          # From number / sender id, or MG... Messaging Service SID
    default_region: str
    write_back_source: str | None = None  # source that records final statuses, if any


@dataclass(slots=True)
class PollReport:
    flow: str
    kind: str
    since: datetime | None = None
    until: datetime | None = None
    read: int = 0
    fired: int = 0
    inserted: int = 0
    failed: int = 0
    inserted_ids: list[int] = field(default_factory=list)


class Poller:
    """Polls one flow. `poll()` is one complete poll; the runner calls it on the flow's schedule."""

    def __init__(
        self, flow: FlowRuntime, store: Store, clock: Callable[[], datetime], *, batch_size: int = 500
    ) -> None:
        self.flow = flow
        self._store = store
        self._clock = clock
        self._batch_size = batch_size

    async def _started_at(self) -> datetime:
        """When this flow first ran: records changed before it are baseline, not events."""
        started = await asyncio.to_thread(self._store.get_watermark, self.flow.name, STARTED)
        if started is None:
            # ERP clocks are whole seconds: a change stamped in this very second is an event.
            started = self._clock().replace(microsecond=0)
            await self._commit(PollCommit(self.flow.name, STARTED, started, (), (), started))
        return started

    async def poll(self, kind: str = MAIN) -> PollReport:
        spec = self.flow.spec.schedule
        started = await self._started_at()
        now = self._clock()
        if kind == LOOKBACK:
            if spec.lookback is None:
                raise ValueError(f"flow {self.flow.name} has no lookback schedule")
            window = watermark.lookback_window(now, spec.lookback.window, spec.clock_skew)
            saved = None
        else:
            saved = await asyncio.to_thread(self._store.get_watermark, self.flow.name, MAIN)
            window = watermark.poll_window(
                saved, started, now, spec.overlap, spec.clock_skew, spec.max_window, spec.baseline
            )
        report = PollReport(self.flow.name, kind, window.since, window.until)
        resolver = RecipientResolver(self.flow.source, self.flow.default_region)
        batch: list[Record] = []
        newest: datetime | None = None
        async for record in self.flow.source.fetch(self.flow.spec.entity, window.since, window.until):
            batch.append(record)
            if len(batch) >= self._batch_size:
                newest = batch[-1].changed_at
                await self._judge_and_commit(batch, started, resolver, report, kind, newest if kind == MAIN else None)
                batch = []
        if batch:
            newest = batch[-1].changed_at
        final = watermark.advance(saved, window, newest) if kind == MAIN else now
        await self._judge_and_commit(batch, started, resolver, report, kind, final)
        return report

    async def _judge_and_commit(
        self,
        batch: list[Record],
        started: datetime,
        resolver: RecipientResolver,
        report: PollReport,
        kind: str,
        new_watermark: datetime | None,
    ) -> None:
        """Judge a batch against last-seen state and commit it with the watermark, atomically."""
        flow = self.flow
        keys = [r.key for r in batch]
        previous = dict(await asyncio.to_thread(self._store.last_seen, flow.name, keys)) if keys else {}
        states: list[RecordState] = []
        notifications: list[NewNotification] = []
        now = self._clock()
        for record in batch:
            report.read += 1
            before = previous.get(record.key)
            policy = "fire" if record.changed_at >= started else flow.spec.first_sighting
            snapshot = rules.snapshot(flow.spec.trigger, record.data)
            fires = rules.evaluate(flow.spec.trigger, record.data, before, policy)
            states.append(RecordState(flow.name, record.key, snapshot, record.changed_at))
            previous[record.key] = snapshot  # a later version in this batch is judged against this one
            if fires:
                report.fired += 1
                notifications.extend(await self._notifications_for(record, snapshot, resolver, now))
        # Later versions of the same record within one batch: keep the newest state only.
        states = list({s.record_key: s for s in states}.values())
        inserted = await self._commit(
            PollCommit(flow.name, kind, new_watermark, states, notifications, now)
        )
        report.inserted += len(inserted)
        report.inserted_ids.extend(inserted)
        report.failed += sum(1 for n in notifications if n.status is Status.FAILED)

    async def _notifications_for(
        self, record: Record, snapshot: Mapping[str, Any], resolver: RecipientResolver, now: datetime
    ) -> list[NewNotification]:
        flow = self.flow
        version = rules.event_version(record.changed_at, snapshot)
        body = flow.template.render(template_context(flow.name, record))  # TemplateError stops the flow
        segments = segment_info(body).segments
        result: list[NewNotification] = []
        for recipient in await resolver.resolve(flow.spec.recipients, record):
            address = recipient.phone or f"invalid:{recipient.field}"
            result.append(
                NewNotification(
                    idempotency_key=notification_key(
                        flow.name, record.entity, record.key, version, address, flow.spec.channel
                    ),
                    flow=flow.name,
                    entity=record.entity,
                    record_key=record.key,
                    event_version=version,
                    channel=flow.spec.channel,
                    account=flow.account,
                    sender=flow.sender,
                    recipient=recipient.phone or recipient.raw,
                    recipient_field=recipient.field,
                    body=body,
                    status=Status.PENDING if recipient.phone else Status.FAILED,
                    reason=recipient.reason,
                    next_attempt_at=now,
                    max_attempts=flow.spec.retry.max_attempts,
                    segments=segments,
                    record_changed_at=record.changed_at,
                    write_back=flow.write_back_source,
                )
            )
        return result

    async def _commit(self, commit: PollCommit) -> list[int]:
        return await asyncio.to_thread(self._store.commit_poll, commit)


def template_context(flow: str, record: Record) -> dict[str, Any]:
    """What a template sees: the record's fields, plus `record` and `flow`."""
    context: dict[str, Any] = dict(record.data)
    context["record"] = {"entity": record.entity, "key": record.key, "changed_at": record.changed_at}
    context["flow"] = flow
    return context
