"""core.lifecycle: folding provider reports (any order, repeated) only ever moves forward."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.core.lifecycle import FINAL, RANK, REPLAYABLE, TWILIO_STATUS, advances, from_provider
from ml_connector.core.models import Status

#: Status sequences Twilio really reports for one outbound message.
TWILIO_PATHS: tuple[tuple[str, ...], ...] = (
    ("accepted", "queued", "sending", "sent", "delivered"),
    ("accepted", "queued", "sending", "sent", "delivered", "read"),
    ("queued", "sending", "sent", "delivered"),
    ("queued", "sending", "sent", "undelivered"),
    ("queued", "sent", "undelivered"),
    ("queued", "failed"),
    ("accepted", "failed"),
    ("scheduled", "canceled"),
    ("scheduled", "queued", "sending", "sent", "delivered"),
    ("queued", "sending", "sent", "partially_delivered"),
)


def fold(reports: Iterable[Status], start: Status = Status.SENDING) -> list[Status]:
    """Apply reports the way the store does; return every state visited (start included)."""
    states = [start]
    for report in reports:
        if advances(states[-1], report):
            states.append(report)
        else:
            states.append(states[-1])
    return states


statuses = st.sampled_from(list(Status))


@given(st.lists(statuses, max_size=30), statuses)
def test_rank_never_moves_backwards(reports: list[Status], start: Status) -> None:
    states = fold(reports, start)
    assert all(RANK[a] <= RANK[b] for a, b in zip(states, states[1:], strict=False))


@given(st.lists(statuses, max_size=30), statuses)
def test_final_stays_final_and_only_read_or_acknowledged_may_follow_delivered(
    reports: list[Status], start: Status
) -> None:
    states = fold(reports, start)
    after_delivery = {(Status.DELIVERED, Status.READ), (Status.DELIVERED, Status.ACKNOWLEDGED),
                      (Status.READ, Status.ACKNOWLEDGED)}
    for before, after in zip(states, states[1:], strict=False):
        if before in FINAL:
            assert after in FINAL
            assert after == before or (before, after) in after_delivery


@given(st.lists(statuses, max_size=30), statuses)
def test_duplicates_change_nothing(reports: list[Status], start: Status) -> None:
    doubled = [r for report in reports for r in (report, report)]
    assert fold(doubled, start)[-1] == fold(reports, start)[-1]


@given(st.data())
def test_end_state_is_the_highest_report_of_a_real_path(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(TWILIO_PATHS))
    reports = data.draw(st.lists(st.sampled_from(path), min_size=1, max_size=20))  # any order, repeats
    mapped = [from_provider(r) for r in reports]
    assert all(m is not None for m in mapped)
    ours = [m for m in mapped if m is not None]
    expected = max(ours, key=lambda s: RANK[s])
    assert fold(ours)[-1] == expected


@pytest.mark.parametrize("path", TWILIO_PATHS)
def test_path_in_order_ends_at_its_last_status(path: tuple[str, ...]) -> None:
    ours = [from_provider(p) for p in path]
    assert fold(s for s in ours if s is not None)[-1] == ours[-1]


@pytest.mark.parametrize("path", TWILIO_PATHS)
def test_path_reversed_ends_at_its_highest_status(path: tuple[str, ...]) -> None:
    ours = [s for s in (from_provider(p) for p in reversed(path)) if s is not None]
    assert fold(ours)[-1] == max(ours, key=lambda s: RANK[s])


def test_delivered_is_never_overturned_by_a_late_failure() -> None:
    assert fold([Status.DELIVERED, Status.UNDELIVERED, Status.FAILED])[-1] is Status.DELIVERED
    assert fold([Status.FAILED, Status.DELIVERED, Status.SENT])[-1] is Status.FAILED


@pytest.mark.parametrize(
    ("provider", "ours"),
    [("queued", Status.QUEUED), ("Delivered", Status.DELIVERED), ("FAILED", Status.FAILED),
     ("canceled", Status.FAILED), ("received", None), ("receiving", None), ("", None)],
)
def test_from_provider(provider: str, ours: Status | None) -> None:
    assert from_provider(provider) is ours


def test_tables_are_complete() -> None:
    assert set(RANK) == set(Status)
    assert REPLAYABLE <= FINAL
    assert {s for p in TWILIO_PATHS for s in p} <= set(TWILIO_STATUS)
