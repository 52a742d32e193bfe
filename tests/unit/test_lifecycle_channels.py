"""core.lifecycle per channel: each channel's provider statuses fold forward like messages do."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_connector.core.lifecycle import (
    CALL_STATUS,
    RANK,
    SENDGRID_EVENTS,
    STATUS_TABLES,
    advances,
    from_provider,
)
from ml_connector.core.models import Status

#: Status sequences a call really goes through (twilio.md §8), with our "acknowledged" last.
CALL_PATHS: tuple[tuple[str, ...], ...] = (
    ("queued", "initiated", "ringing", "answered", "in-progress", "completed"),
    ("queued", "initiated", "ringing", "in-progress", "completed", "acknowledged"),
    ("queued", "initiated", "ringing", "busy"),
    ("queued", "initiated", "ringing", "no-answer"),
    ("queued", "failed"),
    ("queued", "canceled"),
)

#: Event sequences SendGrid reports for one message (twilio.md §10); "queued" is the 202.
EMAIL_PATHS: tuple[tuple[str, ...], ...] = (
    ("queued", "processed", "delivered"),
    ("queued", "processed", "deferred", "deferred", "delivered"),
    ("queued", "processed", "deferred", "bounce"),
    ("queued", "processed", "bounce"),
    ("queued", "dropped"),
)

PATHS = [("voice", p) for p in CALL_PATHS] + [("email", p) for p in EMAIL_PATHS]


def fold(reports: Iterable[Status], start: Status = Status.SENDING) -> Status:
    state = start
    for report in reports:
        if advances(state, report):
            state = report
    return state


@given(st.data())
def test_any_order_and_repeats_end_at_the_highest_report(data: st.DataObject) -> None:
    channel, path = data.draw(st.sampled_from(PATHS))
    reports = data.draw(st.lists(st.sampled_from(path), min_size=1, max_size=20))
    ours = [from_provider(r, channel) for r in reports]
    assert all(s is not None for s in ours)
    mapped = [s for s in ours if s is not None]
    assert fold(mapped) == max(mapped, key=lambda s: RANK[s])


@pytest.mark.parametrize(("channel", "path"), PATHS)
def test_path_in_order_ends_at_its_last_status(channel: str, path: tuple[str, ...]) -> None:
    ours = [from_provider(p, channel) for p in path]
    assert fold(s for s in ours if s is not None) == ours[-1]


def test_acknowledged_follows_delivered_and_nothing_undoes_it() -> None:
    assert advances(Status.DELIVERED, Status.ACKNOWLEDGED)
    assert not advances(Status.ACKNOWLEDGED, Status.DELIVERED)
    assert not advances(Status.UNDELIVERED, Status.ACKNOWLEDGED)
    assert fold([Status.ACKNOWLEDGED, Status.DELIVERED, Status.SENT]) is Status.ACKNOWLEDGED


@pytest.mark.parametrize(
    ("channel", "provider", "ours"),
    [
        ("voice", "completed", Status.DELIVERED),
        ("voice", "busy", Status.UNDELIVERED),
        ("voice", "no-answer", Status.UNDELIVERED),
        ("voice", "delivered", None),  # a message word, not a call status
        ("email", "delivered", Status.DELIVERED),
        ("email", "bounce", Status.UNDELIVERED),
        ("email", "dropped", Status.FAILED),
        ("email", "open", None),  # kept in the audit only
        ("email", "click", None),
        ("email", "completed", None),
        ("sms", "completed", None),
        ("fax", "delivered", None),  # unknown channel: nothing is mapped
    ],
)
def test_a_word_is_read_in_its_own_channel_table(channel: str, provider: str, ours: Status | None) -> None:
    assert from_provider(provider, channel) is ours


def test_every_channel_table_is_complete() -> None:
    assert {s for p in CALL_PATHS for s in p} <= set(CALL_STATUS)
    assert {s for p in EMAIL_PATHS for s in p} <= set(SENDGRID_EVENTS)
    assert {"sms", "voice", "email"} <= set(STATUS_TABLES)
