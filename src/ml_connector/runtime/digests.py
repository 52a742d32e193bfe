"""The digest closer: sends each flow's batched items as one message per recipient per window.

Runs with the dispatcher role, in every process that has it: closing takes the digest rows with
SKIP LOCKED, so two processes never close the same one. A closed digest becomes an ordinary
notification (its own idempotency key: flow, window, part and recipient), which the dispatcher
sends, retries and audits like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from ml_connector.core.batching import summarise
from ml_connector.core.idempotency import notification_key
from ml_connector.core.models import Status
from ml_connector.core.segments import segment_info
from ml_connector.errors import TemplateError
from ml_connector.runtime.poller import FlowRuntime
from ml_connector.store.digests import DueDigest
from ml_connector.store.port import NewNotification
from ml_connector.store.sql import SqlStore

log = logging.getLogger(__name__)

EVERY = timedelta(seconds=5)


def digest_notification(flow: FlowRuntime, digest: DueDigest, now: datetime) -> NewNotification:
    """The one message of a closed digest: the flow's digest template over its items."""
    spec = flow.spec.digest
    assert spec is not None and flow.digest_template is not None
    summary = summarise(digest.items, spec.batching())
    body = flow.digest_template.render({"count": summary.count, "items": list(summary.shown), "more": summary.more,
                                        "all_items": list(digest.items), "flow": flow.name})
    return NewNotification(
        idempotency_key=notification_key(flow.name, "digest", f"{digest.window_key}#{digest.part}", "digest",
                                         digest.recipient, flow.spec.channel),
        flow=flow.name, entity="digest", record_key=f"digest {digest.window_key}#{digest.part}",
        event_version=f"digest:{digest.id}", channel=flow.spec.channel, account=digest.account,
        sender=digest.sender, recipient=digest.recipient, recipient_field="digest", body=body,
        status=Status.PENDING, reason=None, next_attempt_at=now, max_attempts=flow.spec.retry.max_attempts,
        segments=segment_info(body).segments, record_changed_at=now, write_back=None,
    )


class DigestCloser:
    def __init__(self, store: SqlStore, flows: Mapping[str, FlowRuntime], *, clock: Callable[[], datetime],
                 every: timedelta = EVERY) -> None:
        self._store = store
        self._flows = {name: flow for name, flow in flows.items() if flow.spec.digest is not None}
        self._clock = clock
        self._every = every

    @property
    def wanted(self) -> bool:
        return bool(self._flows)

    def _render(self, digest: DueDigest) -> NewNotification | None:
        flow = self._flows.get(digest.flow)
        if flow is None:  # the flow left the config or stopped batching: its open digests wait
            return None
        return digest_notification(flow, digest, self._clock())

    async def close_due(self) -> list[int]:
        """Close every digest that is due now; the ids of the notifications made."""
        return await asyncio.to_thread(self._store.close_due_digests, self._clock(), self._render)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                made = await self.close_due()
                if made:
                    log.info("digests: %s closed into notifications", len(made))
            except TemplateError as exc:
                log.error("digests: not closed, the digest template failed: %s", exc)
            except Exception:
                log.exception("digests: closing failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._every.total_seconds())
