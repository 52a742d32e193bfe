"""Which first sightings are history and which are late commits. Pure.

A flow that keeps last-seen values starts with a baseline: its first main polls read from
`baseline` (plus `overlap`) before the flow's first start, and every record they see is stored
as last seen without firing (unless `first_sighting: fire`). The baseline is what those polls
*saw*, not a time range: a record with no last-seen values whose change time lies in a range an
earlier main poll already read was not there when that poll read it. It was committed late (an
EBS concurrent program running across go-live stamps rows with its start time and commits them
minutes or hours later), so it is judged as new and fires like any record changed after the start.

A first sighting is history (the flow's `first_sighting` policy) only while it is read for the
first time: its change time is before the first start and beyond what the main watermark
covered, or before the baseline's own range (a lookback window reaching further back than the
baseline: nobody saw that range at go-live, so it cannot tell a late commit from history).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ml_connector.core.models import require_aware
from ml_connector.core.rules import FirstSighting


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a flow's baseline read: [start - baseline - overlap, min(main watermark, start))."""

    started: datetime
    read_from: datetime
    #: Up to where earlier main polls read before the start (None: no main poll completed yet).
    read_until: datetime | None

    @classmethod
    def of(cls, started: datetime, baseline: timedelta, overlap: timedelta,
           main_watermark: datetime | None) -> Baseline:
        require_aware(started, "started")
        until = None if main_watermark is None else min(require_aware(main_watermark, "main watermark"), started)
        return cls(started, started - baseline - overlap, until)

    def policy(self, changed_at: datetime, first_sighting: FirstSighting) -> FirstSighting:
        """The first-sighting policy for a record changed at `changed_at` with no last-seen values.

        The watermark instant itself counts as not yet read: a source may read `until` exclusively.
        """
        if changed_at >= self.started:
            return "fire"
        if self.read_until is not None and self.read_from <= changed_at < self.read_until:
            return "fire"  # a late commit: an earlier poll read this range and did not see it
        return first_sighting
