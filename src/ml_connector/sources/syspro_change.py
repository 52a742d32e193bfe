"""Which SYSPRO rows a poll reads, and the change time they are given. Pure.

SYSPRO has no update timestamp to trust on every table, so no row carries the instant it
changed. Each row a poll reads is therefore *observed* at the poll's fetch time, clamped into
the poll's window [since, until): `observed_at`. Whether the row changed is decided by the
poller's stored last-seen values (a flow's `becomes`/`changed` trigger), and its idempotency keys
keep re-reads from sending twice. Rows read by a window that ended in the past are stamped at
its end; the poller takes rows stamped before the flow's first start as history, so a flow's
first poll must be a single window (`schedule.max_window` at least `baseline` + `overlap`), or
what changes during the catch-up windows is learned silently. The change mode only narrows what
is read:

* ``snapshot``: every row (or the configured `where` subset, e.g. open orders).
* ``date``: rows whose business date (InvoiceDate, OrderEntryDate, PostDate; DATE only) is on
  or after the site-local date of `since`. A posting back-dated before that is read by the slower
  lookback poll, whose `since` lies further back. Business dates are not change times: a
  back-dated invoice seen today must look new, not old, or it would be taken for history.
* ``timestamp``: rows whose SQL Server rowversion (`TimeStamp`) is above a floor. A rowversion
  is a database-wide counter, not a time, so the source remembers, per entity, the highest value
  each complete scan returned and when that scan *finished* (`RowversionHistory`): every value
  handed out before that instant is at most that mark, so a row changed after `since` has a
  rowversion above the newest mark finished at or before `since`. Without such a mark (first
  poll, restart, `since` older than the memory) the table is scanned in full, which is always
  safe. A transaction committing long after it wrote has a lower rowversion than marks taken
  meanwhile; like late commits elsewhere, the lookback poll (older `since`, older mark) reads it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ml_connector.core.models import require_aware

_TICK = timedelta(microseconds=1)
_HEX = re.compile(r"^(0x)?([0-9A-Fa-f]{16})$")
_PREFIXED_HEX = re.compile(r"^0x[0-9A-Fa-f]+$")


def observed_at(now: datetime, since: datetime, until: datetime) -> datetime | None:
    """The change time of every row of this poll: `now` clamped into [since, until); None if empty."""
    require_aware(now, "now")
    if require_aware(until, "until") <= require_aware(since, "since"):
        return None
    return min(max(now, since), until - _TICK)


def rowversion(value: object) -> int | None:
    """A rowversion as a number: "0x00000000000007D1", 16 hex digits, decimal digits, or the
    base64 of its 8 bytes (OData's Edm.Binary). None when it is none of these."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    hexed = _HEX.match(text)
    if hexed or _PREFIXED_HEX.match(text):
        return int(text[2:] if text.lower().startswith("0x") else text, 16)
    if text.isdigit():
        return int(text)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big") if len(raw) == 8 else None


@dataclass(frozen=True, slots=True)
class Mark:
    """A complete scan finished at `finished_at` had seen rowversions up to `value` (`raw` as served)."""

    finished_at: datetime
    value: int
    raw: str

    def __post_init__(self) -> None:
        require_aware(self.finished_at, "Mark.finished_at")


class RowversionHistory:
    """Marks of one entity, oldest first; marks older than `keep` are dropped but the newest of them."""

    def __init__(self, keep: timedelta) -> None:
        self._keep = keep
        self._marks: list[Mark] = []

    def floor(self, since: datetime) -> Mark | None:
        """The newest mark finished at or before `since`: rows changed later are above it."""
        require_aware(since, "since")
        return next((m for m in reversed(self._marks) if m.finished_at <= since), None)

    def record(self, mark: Mark) -> None:
        latest = self._marks[-1] if self._marks else None
        if latest is not None and (mark.value < latest.value or mark.finished_at < latest.finished_at):
            self._marks = []  # the counter went back (database restored) or the clock did: start over
        self._marks.append(mark)
        cutoff = mark.finished_at - self._keep
        old = [m for m in self._marks if m.finished_at < cutoff]
        self._marks = old[-1:] + [m for m in self._marks if m.finished_at >= cutoff]

    def __len__(self) -> int:
        return len(self._marks)
