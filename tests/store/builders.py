"""Builders for store tests: values with defaults, overridden per test."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ml_connector.core.models import Status
from ml_connector.store.port import NewNotification, PollCommit, RecordState
from ml_connector.store.sql import SqlStore

PG_URL = os.environ.get("MLC_TEST_POSTGRES_URL")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PHONE = "+13125550142"
BODY = "PO 4711 approved by Dana Whitfield"


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def notification(i: int = 1, **overrides: Any) -> NewNotification:
    """A pending SMS notification; `i` varies the key and record."""
    base = NewNotification(
        idempotency_key=f"po-approved:PO:{i}:v1:{PHONE}:sms",
        flow="po-approved",
        entity="PO",
        record_key=str(i),
        event_version="v1",
        channel="sms",
        account="main",
        sender="+13125550100",
        recipient=PHONE,
        recipient_field="BUYER_PHONE",
        body=BODY,
        status=Status.PENDING,
        reason=None,
        next_attempt_at=T0,
        max_attempts=3,
        segments=1,
        record_changed_at=T0 - timedelta(minutes=5),
    )
    return replace(base, **overrides)


def poll(*notes: NewNotification, **overrides: Any) -> PollCommit:
    base = PollCommit(
        flow="po-approved",
        watermark_kind="main",
        watermark=T0,
        states=[RecordState("po-approved", x.record_key, {"STATUS": "APPROVED"}, T0) for x in notes],
        notifications=list(notes),
        polled_at=T0,
    )
    return replace(base, **overrides)


def enqueue(store: SqlStore, *notes: NewNotification) -> list[int]:
    return store.commit_poll(poll(*notes, watermark=None))
