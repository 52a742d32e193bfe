"""Poll one flow: read changed records, judge transitions, commit notifications + watermark.

Each batch of records is committed in one transaction together with the record states and a
watermark that only covers records already judged (invariant 1): a crash anywhere re-polls from
the old watermark, and idempotency keys make the re-poll insert nothing twice (invariant 2).

Hot path (a backfill reads millions of rows): the trigger is compiled once; a trigger with no
`becomes`/`changed` reads and stores no last-seen state, since nothing can depend on it; and a
batch commits while the next one is read and judged (commits still one at a time, in order).

Re-reads: every main poll reads the overlap with the window before it again (late commits,
clock skew), so a busy flow would judge each record version several times, each time resolving
recipients, rendering the body and computing keys only for the store to find them all there.
The poller remembers the events (record key, event version) of its last complete main poll
that the next one will read again (changed at most `overlap` before the watermark it saved:
a backfill remembers minutes, not its millions) and skips those. That memory is only a
shortcut: after a restart, a takeover by another process or for older events, the work is
done again and the store's keys deduplicate it (invariant 2).
So an event's recipients are those resolved when it first fired; reading the same record
version again does not add a notification because a looked-up phone number changed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ml_connector.compliance.emails import normalise_email
from ml_connector.core import dedupe, quiet, routing, rules, watermark
from ml_connector.core.baseline import Baseline
from ml_connector.core.batching import window_for
from ml_connector.core.channel_kinds import channel_kind
from ml_connector.core.email_body import EmailTemplate
from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.idempotency import notification_key
from ml_connector.core.members import MembersRecipient
from ml_connector.core.message_body import MessageTemplate
from ml_connector.core.models import Record, Status
from ml_connector.core.segments import segment_info
from ml_connector.core.templates import CompiledTemplate
from ml_connector.core.voice_body import VoiceTemplate
from ml_connector.core.webhook_body import WebhookTemplate
from ml_connector.runtime.due import due_records
from ml_connector.runtime.fanout import fan_out
from ml_connector.runtime.recipients import Recipient, RecipientResolver
from ml_connector.sources.base import Source
from ml_connector.store.port import DigestItem, NewNotification, PollCommit, RecordState, Store

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
    template: CompiledTemplate | EmailTemplate | VoiceTemplate | MessageTemplate | WebhookTemplate
    account: str
    sender: str          # From number / sender id, or MG... Messaging Service SID
    default_region: str
    write_back_source: str | None = None  # source that records final statuses, if any
    digest_template: CompiledTemplate | None = None  # flows that batch: the message of a closed digest


@dataclass(slots=True)
class PollReport:
    flow: str
    kind: str
    since: datetime | None = None
    until: datetime | None = None
    read: int = 0
    fired: int = 0
    known: int = 0       # of those fired, events this process had already stored: skipped
    inserted: int = 0
    failed: int = 0
    inserted_ids: list[int] = field(default_factory=list)


class Poller:
    """Polls one flow. `poll()` is one complete poll; the runner calls it on the flow's schedule."""

    def __init__(
        self, flow: FlowRuntime, store: Store, clock: Callable[[], datetime], *, batch_size: int = 2000
    ) -> None:
        self.flow = flow
        self._store = store
        self._clock = clock
        self._batch_size = batch_size
        self._trigger = rules.compile_trigger(flow.spec.trigger)
        self._stored_events: frozenset[tuple[str, str]] = frozenset()  # see the module docstring
        self._fan_outs = [r for r in flow.spec.recipients if isinstance(r, MembersRecipient)]

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
        saved = await asyncio.to_thread(self._store.get_watermark, self.flow.name, MAIN)
        if kind == LOOKBACK:
            if spec.lookback is None:
                raise ValueError(f"flow {self.flow.name} has no lookback schedule")
            window = watermark.lookback_window(now, spec.lookback.window, spec.clock_skew)
        else:
            window = watermark.poll_window(
                saved, started, now, spec.overlap, spec.clock_skew, spec.max_window, spec.baseline
            )
        report = PollReport(self.flow.name, kind, window.since, window.until)
        resolver = RecipientResolver(self.flow.source, self.flow.default_region,
                                     normalise_email if self.flow.spec.channel == "email" else None)
        commits = _Commits(self._commit, report, spec.overlap if kind == MAIN else None)
        records = self.flow.source.fetch(self.flow.spec.entity, window.since, window.until) \
            if self.flow.spec.due is None else due_records(self.flow.source, self.flow.spec.entity,
                                                           self.flow.spec.due, self.flow.spec.timezone,
                                                           window.since, window.until)
        try:
            if self._trigger.stateful:
                baseline = Baseline.of(started, spec.baseline, spec.overlap, saved)
                newest, last = await self._poll_transitions(records, baseline, resolver, commits, kind)
            else:
                newest, last = await self._poll_values(records, resolver, commits, kind)
            # The last batch (perhaps empty) commits with the poll's final watermark.
            final = watermark.advance(saved, window, newest) if kind == MAIN else now
            await self._commit_fired(*last, resolver, commits, kind, final)
            await commits.drain()
        finally:
            await commits.settle()
        if kind == MAIN:  # every commit succeeded (the last one pruned to the final watermark)
            self._stored_events = frozenset(commits.events)
        return report

    async def _poll_transitions(
        self, records: AsyncIterator[Record], baseline: Baseline, resolver: RecipientResolver, commits: _Commits,
        kind: str,
    ) -> tuple[datetime | None, _Judged]:
        """Batches of records judged against their last-seen state, all but the last committed.

        Returns the newest change time read, and the last batch (judged, not committed).
        """
        batch: list[Record] = []
        newest: datetime | None = None
        async for record in records:
            batch.append(record)
            if len(batch) >= self._batch_size:
                newest = record.changed_at
                await commits.drain()  # the batch before must be stored: it is the last-seen state
                fired, states = await self._judge_transitions(batch, baseline)
                await self._commit_fired(
                    len(batch), fired, states, resolver, commits, kind, newest if kind == MAIN else None
                )
                batch = []
        if not batch:
            return newest, (0, [], [])
        await commits.drain()
        fired, states = await self._judge_transitions(batch, baseline)
        return batch[-1].changed_at, (len(batch), fired, states)

    async def _poll_values(
        self, records: AsyncIterator[Record], resolver: RecipientResolver, commits: _Commits, kind: str
    ) -> tuple[datetime | None, _Judged]:
        """A trigger without `becomes`/`changed`: each record is judged as it arrives.

        The outcome depends on the record alone: neither last-seen values nor the first-sighting
        policy can change it (see `CompiledTrigger.stateful`), so none are read or stored, and a
        record that does not fire is let go at once (a backfill reads millions: holding each
        batch's records until its end only made them outlive the young garbage collections).
        Should the trigger later gain a transition, records judged here have no last-seen values
        and are first sightings for it. Batches (and their commits) are as many records as
        `batch_size`, as with transitions; the last one is returned, judged, not committed.
        """
        trigger, size = self._trigger, self._batch_size
        evaluate, snapshot = trigger.evaluate, trigger.snapshot
        fired: list[tuple[Record, dict[str, Any]]] = []
        count = 0
        newest: datetime | None = None
        record: Record | None = None
        async for record in records:
            if evaluate(record.data, None, "skip"):
                fired.append((record, snapshot(record.data)))
            count += 1
            if count >= size:
                newest = record.changed_at
                await self._commit_fired(count, fired, [], resolver, commits, kind, newest if kind == MAIN else None)
                fired, count = [], 0
        if count and record is not None:
            newest = record.changed_at
        return newest, (count, fired, [])

    async def _commit_fired(
        self,
        read: int,
        fired: list[tuple[Record, dict[str, Any]]],
        states: list[RecordState],
        resolver: RecipientResolver,
        commits: _Commits,
        kind: str,
        new_watermark: datetime | None,
    ) -> None:
        """Commit a judged batch (`read` records) with the watermark, atomically.

        The commit runs on while the next batch is read and judged; commits stay in order.
        """
        flow, report = self.flow, commits.report
        now = self._clock()
        report.read += read
        report.fired += len(fired)
        notifications: list[NewNotification] = []
        items: list[DigestItem] = []
        for record, snapshot in fired:
            event = (record.key, rules.event_version(record.changed_at, snapshot))
            commits.events[event] = record.changed_at
            if event in self._stored_events:
                report.known += 1
                continue
            made = await self.notifications_for(record, event[1], resolver, now, snapshot)
            if flow.spec.digest is not None:  # batched: the sendable ones become items of their digest
                made, batched = digest_items(flow, record, made, now)
                items.extend(batched)
            notifications.extend(made)
            for spec in self._fan_outs:
                async for page in fan_out(flow, record, event[1], spec, resolver, now, template_context):
                    await commits.drain()  # one page at a time: memory holds one page
                    commits.start(PollCommit(flow.name, kind, None, [], page, now))
        await commits.drain()
        commits.start(PollCommit(flow.name, kind, new_watermark, states, notifications, now, items))
        if new_watermark is not None:
            commits.forget_before(new_watermark)

    async def _judge_transitions(
        self, batch: list[Record], baseline: Baseline
    ) -> tuple[list[tuple[Record, dict[str, Any]]], list[RecordState]]:
        """Each record against its last-seen values (stored, or an earlier version in this batch).

        A record with none follows `baseline`: history while the baseline reads it for the first
        time, a late commit (judged as new) if an earlier poll read its change time without it.

        Returns the records that fire and the states to store: the newest per record, and only
        where the watched values differ from the stored ones (an equal row is already there).
        """
        flow, trigger = self.flow, self._trigger
        stored = await asyncio.to_thread(self._store.last_seen, flow.name, [r.key for r in batch]) if batch else {}
        previous: dict[str, Mapping[str, Any]] = dict(stored)
        fired: list[tuple[Record, dict[str, Any]]] = []
        for record in batch:
            before = previous.get(record.key)
            policy = baseline.policy(record.changed_at, flow.spec.first_sighting)
            snapshot = trigger.snapshot(record.data)
            if trigger.evaluate(record.data, before, policy):
                fired.append((record, snapshot))
            previous[record.key] = snapshot  # a later version in this batch is judged against this one
        # Later versions of the same record within one batch: keep the newest state only.
        newest = {r.key: r for r in batch}
        states = [
            RecordState(flow.name, key, previous[key], record.changed_at)
            for key, record in newest.items()
            if stored.get(key) != previous[key]
        ]
        return fired, states

    async def notifications_for(
        self, record: Record, version: str, resolver: RecipientResolver, now: datetime,
        snapshot: Mapping[str, Any] | None = None,
    ) -> list[NewNotification]:
        """The notifications one fired event makes for its own and routed recipients (fan-out
        members are paged apart); `runtime.preview` shows these without storing them."""
        flow = self.flow
        if flow.spec.channel == "webhook":  # the endpoint is the recipient (core.channel_kinds)
            recipients = [Recipient(field="endpoint", phone=flow.sender, raw=flow.sender)]
        else:
            specs = routing.recipients_for(flow.spec.recipients, flow.spec.routing_table, record.data)
            recipients = await resolver.resolve(specs, record)
        if not recipients:  # only fan-out recipients: their bodies are rendered per member
            return []
        body = flow.template.render(template_context(flow.name, record))  # TemplateError stops the flow
        segments = segment_info(body).segments if channel_kind(flow.spec.channel).segments else 1
        held = quiet.hold(flow.spec.business_hours, critical=flow.spec.critical, data=record.data,
                          default_zone=flow.spec.timezone, now=now)
        result: list[NewNotification] = []
        # dedupe_on: the business document, not the record, names the notification (core.dedupe)
        key_part, version_part = dedupe.key_parts(flow.spec.dedupe_on, record.key, version, record.data,
                                                  snapshot or {})
        for recipient in recipients:
            address = recipient.phone or f"invalid:{recipient.field}"
            status, reason, due = quiet.initial_state(usable=bool(recipient.phone), failure=recipient.reason,
                                                      held=held, now=now)
            result.append(
                NewNotification(
                    idempotency_key=notification_key(
                        flow.name, record.entity, key_part, version_part, address, flow.spec.channel
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
                    status=status,
                    reason=reason,
                    next_attempt_at=due,
                    max_attempts=flow.spec.retry.max_attempts,
                    segments=segments,
                    record_changed_at=record.changed_at,
                    write_back=flow.write_back_source,
                    reply_reference=reply_reference(flow.spec, record.data),
                )
            )
        return result

    async def _commit(self, commit: PollCommit) -> list[int]:
        return await asyncio.to_thread(self._store.commit_poll, commit)


def digest_items(flow: FlowRuntime, record: Record, made: list[NewNotification],
                 now: datetime) -> tuple[list[NewNotification], list[DigestItem]]:
    """Split a batching flow's notifications: those that could be sent join their recipient's
    digest window (the recipient's zone, for windows at local times); failures stay notifications."""
    spec = flow.spec.digest
    assert spec is not None
    batching = spec.batching()
    zone = (quiet.recipient_zone(flow.spec.business_hours, record.data, flow.spec.timezone)[0]
            if flow.spec.business_hours else ZoneInfo(flow.spec.timezone))
    window = window_for(now, batching, zone)
    kept: list[NewNotification] = []
    items: list[DigestItem] = []
    for x in made:
        if x.status not in (Status.PENDING, Status.DEFERRED):
            kept.append(x)
            continue
        items.append(DigestItem(item_key=x.idempotency_key, flow=x.flow, recipient=x.recipient, account=x.account,
                                sender=x.sender, window_key=window.key, closes_at=window.closes_at,
                                max_items=batching.max_items, text=x.body, record_key=x.record_key))
    return kept, items


def reply_reference(spec: FlowSpec, data: Mapping[str, Any]) -> str | None:
    """The short reference a reply may quote (the flow's `replies.reference` field), if any."""
    field = spec.replies.reference if spec.replies else None
    value = data.get(field) if field else None
    text = str(value).strip() if value is not None else ""
    return text[:64] or None


def template_context(flow: str, record: Record) -> dict[str, Any]:
    """What a template sees: the record's fields, plus `record` and `flow`."""
    context: dict[str, Any] = dict(record.data)
    context["record"] = {"entity": record.entity, "key": record.key, "changed_at": record.changed_at}
    context["flow"] = flow
    return context


#: A judged batch: records read, the records that fire (with their snapshots), states to store.
_Judged = tuple[int, list[tuple[Record, dict[str, Any]]], list[RecordState]]


class _Commits:
    """A poll's batch commits, run one at a time, in order, each overlapping the next batch's work.

    Reading and judging batch N+1 happens while batch N commits in a worker thread: SQLite and
    the source's driver do their work without the GIL, so a second core gets used. Nothing is
    lost by it: each commit is still one transaction whose watermark covers only its own batch,
    and a commit starts only after the one before it succeeded.
    """

    def __init__(self, commit: Callable[[PollCommit], Awaitable[list[int]]], report: PollReport,
                 overlap: timedelta | None) -> None:
        self.report = report
        #: (record key, event version) -> changed_at, of this poll's events the next main poll
        #: reads again (None: a lookback poll, remembered by nobody).
        self.events: dict[tuple[str, str], datetime] = {}
        self._overlap = overlap
        self._commit = commit
        self._running: asyncio.Task[None] | None = None

    def start(self, commit: PollCommit) -> None:
        if self._running is not None:
            raise RuntimeError("a commit is already running: drain() first")
        self._running = asyncio.create_task(self._run(commit))

    async def _run(self, commit: PollCommit) -> None:
        inserted = await self._commit(commit)
        self.report.inserted += len(inserted)
        self.report.inserted_ids.extend(inserted)
        self.report.failed += sum(1 for n in commit.notifications if n.status is Status.FAILED)

    def forget_before(self, watermark: datetime) -> None:
        """Drop events the next main poll will not read: it starts `overlap` before `watermark`."""
        if self._overlap is None:
            self.events.clear()
            return
        cutoff = watermark - self._overlap
        self.events = {event: at for event, at in self.events.items() if at >= cutoff}

    async def drain(self) -> None:
        """Wait for the commit in flight; its error (if any) is raised here."""
        running, self._running = self._running, None
        if running is not None:
            await running

    async def settle(self) -> None:
        """After an error elsewhere: let the commit in flight end (it is atomic) without masking that error."""
        running, self._running = self._running, None
        if running is not None:
            await asyncio.wait([running])
            if not running.cancelled() and running.exception() is not None:
                log.warning("poll %s: a batch commit failed too: %r", self.report.flow, running.exception())
