"""A small bar chart as SVG geometry, computed here and drawn by the overview template.

Pure: hourly counts in, rectangles out. No JavaScript, no chart library: the page is readable
with scripts off and the picture scales with the viewBox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Bar", "Chart", "hourly_chart"]

WIDTH, HEIGHT, TOP, BOTTOM = 720, 160, 10, 20


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    y: float
    height: float
    kind: str   # delivered, failed, other
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: Sequence[Bar]
    labels: Sequence[tuple[float, str]]  # x, text (every few hours)
    peak: int


def hourly_chart(hourly: Sequence[tuple[datetime, int, int, int]]) -> Chart:
    """Stacked bars per hour: delivered, failed, and the rest (in flight, suppressed)."""
    peak = max((created for _, created, _, _ in hourly), default=0)
    scale = (HEIGHT - TOP - BOTTOM) / peak if peak else 0.0
    slot = WIDTH / max(1, len(hourly))
    bars: list[Bar] = []
    labels: list[tuple[float, str]] = []
    for i, (hour, created, delivered, failed) in enumerate(hourly):
        x, base = i * slot + 2, float(HEIGHT - BOTTOM)
        other = max(0, created - delivered - failed)
        for kind, count in (("delivered", delivered), ("failed", failed), ("other", other)):
            if count:
                height = count * scale
                base -= height
                bars.append(Bar(x=round(x, 1), width=round(slot - 4, 1), y=round(base, 1), height=round(height, 1),
                                kind=kind, title=f"{hour:%H}:00 UTC: {count} {kind}"))
        if i % 4 == 0:
            labels.append((round(x, 1), f"{hour:%H}:00"))
    return Chart(width=WIDTH, height=HEIGHT, bars=bars, labels=labels, peak=peak)
