"""Fan-out: the members of a group, page by page, each with its resolved phone.

The source lists members in pages (`MemberSource.members`), a page being one batched look-up
(e.g. one Query Access Services run returning 500 employees with their preferred phones), so
memory holds one page whatever the group's size. The poller commits each page's notifications
as it goes (without moving the watermark) and the event's own batch last: a crash in between
re-reads the event, and the idempotency keys (one per member) insert nothing twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ml_connector.core import quiet
from ml_connector.core.idempotency import notification_key
from ml_connector.core.members import MembersRecipient, member_address
from ml_connector.core.models import Record
from ml_connector.core.segments import segment_info
from ml_connector.errors import SourceError
from ml_connector.runtime.recipients import Normalised, Recipient, RecipientResolver, first_usable
from ml_connector.sources.base import Source
from ml_connector.store.port import NewNotification

if TYPE_CHECKING:
    from ml_connector.runtime.poller import FlowRuntime


@runtime_checkable
class MemberSource(Protocol):
    """Optional: a source that lists a group's members, in pages."""

    def members(self, entity: str, match: Mapping[str, str]) -> AsyncIterator[list[Record]]: ...


async def member_pages(source: Source, spec: MembersRecipient, record: Record, region: str,
                       numbers: Normalised) -> AsyncIterator[list[tuple[Record, Recipient]]]:
    look = spec.members
    if not isinstance(source, MemberSource):
        raise SourceError(f"source cannot list members of {look.entity!r} (no fan-out support)")
    match = {prompt: str(record.data.get(name) or "").strip() for prompt, name in look.match.items()}
    async for page in source.members(look.entity, match):
        yield [(member, first_usable(member.data, look.fields, f"{look.entity}.", region, numbers))
               for member in page]


async def fan_out(flow: FlowRuntime, record: Record, version: str, spec: MembersRecipient,
                  resolver: RecipientResolver, now: datetime,
                  context: Callable[[str, Record], dict[str, Any]]) -> AsyncIterator[list[NewNotification]]:
    """The event's notifications, one page of members at a time; one per member (keyed by member)."""
    base = context(flow.name, record)
    async for page in member_pages(flow.source, spec, record, flow.default_region, resolver.numbers):
        notifications: list[NewNotification] = []
        for member, recipient in page:
            body = flow.template.render({**base, "member": dict(member.data)})
            held = quiet.hold(flow.spec.business_hours, critical=flow.spec.critical,
                              data={**record.data, **member.data}, default_zone=flow.spec.timezone, now=now)
            failure = f"{spec.members.entity} {member.key}: {recipient.reason}" if recipient.reason else None
            status, reason, due = quiet.initial_state(usable=bool(recipient.phone), failure=failure, held=held,
                                                      now=now)
            notifications.append(NewNotification(
                idempotency_key=notification_key(flow.name, record.entity, record.key, version,
                                                 member_address(member.key), flow.spec.channel),
                flow=flow.name, entity=record.entity, record_key=record.key, event_version=version,
                channel=flow.spec.channel, account=flow.account, sender=flow.sender,
                recipient=recipient.phone or recipient.raw, recipient_field=recipient.field, body=body,
                status=status, reason=reason, next_attempt_at=due, max_attempts=flow.spec.retry.max_attempts,
                segments=segment_info(body).segments, record_changed_at=record.changed_at,
                write_back=flow.write_back_source,
            ))
        yield notifications
