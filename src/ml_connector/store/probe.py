"""Cheap reads for readiness checks and metrics: schema revision, outbox depth and ages.

Its own small engine, apart from the store's pool, so a scrape or a probe never waits behind
the dispatcher's connections, and a probe's failure is not counted as the store's outage. Only
indexed columns are read: (status, next_attempt_at) for the outbox, created_at for the last
day's counts. Each call is one short read transaction; none writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from ml_connector.core.models import Status
from ml_connector.store import migrate
from ml_connector.store.engine import make_engine, reading
from ml_connector.store.tables import delivery_events, notifications

__all__ = ["OutboxStats", "StoreProbe"]

n = notifications
_DUE = (Status.PENDING.value, Status.DEFERRED.value)
#: Accepted by Twilio, no status callback yet (the first one, "sent", comes within seconds).
_AWAITING_CALLBACK = (Status.QUEUED.value,)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What waits: notifications due now, the oldest of them, and sends awaiting a callback."""

    due: int
    oldest_due: datetime | None
    oldest_awaiting_callback: datetime | None
    by_status_channel: dict[tuple[str, str], int]   # created within the last `recent` window
    delivery_errors: dict[int, int]                 # status-callback error codes within `recent`


class StoreProbe:
    """Read-only probes of one store database."""

    def __init__(self, url: str) -> None:
        self._engine: Engine = make_engine(url)

    def revision(self) -> str | None:
        """The schema revision the database is at (None: empty)."""
        return migrate.current_engine(self._engine)

    @staticmethod
    def expected_revision() -> str:
        return migrate.head()

    def outbox(self, now: datetime, recent: timedelta, *, counts: bool = True) -> OutboxStats:
        """The outbox now; `counts=False` skips the last day's counts (readiness needs only the ages)."""
        since = now - recent
        due_filter = (n.c.status.in_(_DUE), n.c.next_attempt_at <= now)
        with reading(self._engine) as conn:
            due, oldest = conn.execute(
                select(func.count(), func.min(n.c.next_attempt_at)).where(*due_filter)).one()
            awaiting = conn.execute(
                select(func.min(n.c.updated_at)).where(n.c.status.in_(_AWAITING_CALLBACK))).scalar()
            by_status = conn.execute(
                select(n.c.status, n.c.channel, func.count()).where(n.c.created_at >= since)
                .group_by(n.c.status, n.c.channel)).all() if counts else []
            errors = conn.execute(
                select(delivery_events.c.error_code, func.count())
                .where(delivery_events.c.error_code.is_not(None), delivery_events.c.received_at >= since)
                .group_by(delivery_events.c.error_code)).all() if counts else []
        return OutboxStats(
            due=int(due), oldest_due=oldest, oldest_awaiting_callback=awaiting,
            by_status_channel={(str(s), str(c)): int(k) for s, c, k in by_status},
            delivery_errors={int(code): int(k) for code, k in errors if code},
        )

    def close(self) -> None:
        self._engine.dispose()
