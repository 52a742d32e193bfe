"""The webhook app over the real SqlStore, on SQLite and PostgreSQL: what Twilio sends, as Twilio
signs it, in the orders and repetitions Twilio allows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from ml_connector.core.models import Status
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import AttemptResult, NewNotification, Outcome, PollCommit
from ml_connector.store.sql import SqlStore
from ml_connector.web.webhooks import create_webhook_app

ACCOUNT = "AC" + "1" * 32
TOKEN = "webhook-test-token"  # noqa: S105
PUBLIC = "https://connector.example.com/twilio/status"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    sqlite = f"sqlite:///{tmp_path / 'store.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    s = SqlStore(url, KeyRing(b"k" * 32))
    yield s
    s.close()


def sent_notification(store: SqlStore, sid: str) -> int:
    """One notification accepted by Twilio as `sid`."""
    note = NewNotification(
        idempotency_key=f"k-{sid}", flow="po", entity="po", record_key="4711", event_version="v1",
        channel="sms", account="main", sender="+15005550006", recipient="+13125550142",
        recipient_field="BUYER_PHONE", body="PO 4711 approved", status=Status.PENDING, reason=None,
        next_attempt_at=T0, max_attempts=3, segments=1, record_changed_at=T0,
    )
    [nid] = store.commit_poll(PollCommit("po", "main", T0, [], [note], T0))
    [claimed] = store.claim_due("w", T0, timedelta(seconds=60), 10)
    store.finish_attempt(AttemptResult(nid, claimed.attempt_no, Outcome.ACCEPTED, T0, T0,
                                       provider_id=sid, provider_status="queued"))
    return nid


def callback(sid: str, status: str, error_code: str | None = None, token: str = TOKEN) -> httpx.Request:
    params = {"AccountSid": ACCOUNT, "MessageSid": sid, "SmsSid": sid, "MessageStatus": status,
              "SmsStatus": status, "From": "+15005550006", "To": "+13125550142", "ApiVersion": "2010-04-01"}
    if error_code:
        params["ErrorCode"] = error_code
    if status in ("delivered", "undelivered"):
        params["RawDlrDoneDate"] = "2611011201"
    signature = RequestValidator(token).compute_signature(PUBLIC, params)
    return httpx.Request("POST", "http://127.0.0.1:8080/twilio/status", content=urlencode(params).encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "X-Twilio-Signature": signature})


async def post_all(store: SqlStore, *requests: httpx.Request) -> list[int]:
    app = create_webhook_app(store=store, auth_tokens={ACCOUNT: TOKEN}, status_callback_url=PUBLIC,
                             clock=lambda: T0 + timedelta(seconds=5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1:8080") as client:
        return [(await client.send(r)).status_code for r in requests]


SID = "SM" + "a" * 32


async def test_out_of_order_and_duplicate_callbacks_end_delivered(store: SqlStore) -> None:
    nid = sent_notification(store, SID)
    codes = await post_all(store, callback(SID, "delivered"), callback(SID, "sent"),
                           callback(SID, "delivered"), callback(SID, "queued"))
    assert codes == [200, 200, 200, 200]
    view = store.get_notification(nid)
    assert view is not None and view.status is Status.DELIVERED
    # every report is audited with what it did; the status moved forward exactly once
    entries = [e for e in store.audit(None, None) if e.notification_id == nid and e.kind == "status"]
    results = [e.detail.get("result") for e in entries]
    assert results == ["applied", "stale", "duplicate", "stale"]


async def test_failure_callback_keeps_twilios_code(store: SqlStore) -> None:
    nid = sent_notification(store, SID)
    assert await post_all(store, callback(SID, "sent"), callback(SID, "undelivered", "30003")) == [200, 200]
    view = store.get_notification(nid)
    assert view is not None and view.status is Status.UNDELIVERED and view.error_code == 30003


async def test_forged_callback_changes_nothing(store: SqlStore) -> None:
    nid = sent_notification(store, SID)
    before = list(store.audit(None, None))
    assert await post_all(store, callback(SID, "delivered", token="not-the-token")) == [403]
    view = store.get_notification(nid)
    assert view is not None and view.status is Status.QUEUED
    assert list(store.audit(None, None)) == before


async def test_callback_before_its_send_is_recorded_is_adopted(store: SqlStore) -> None:
    """Twilio can call back before our transaction recording the SID commits."""
    orphan_sid = "SM" + "b" * 32
    assert await post_all(store, callback(orphan_sid, "sent"), callback(orphan_sid, "delivered")) == [200, 200]
    assert any(e.kind == "orphan" for e in store.audit(None, None))
    nid = sent_notification(store, orphan_sid)
    view = store.get_notification(nid)
    assert view is not None and view.status is Status.DELIVERED


@pytest.mark.parametrize("code", ["1" * 40, "2147483648", "99999999999999999999"])
async def test_out_of_range_error_code_is_400_and_changes_nothing(store: SqlStore, code: str) -> None:
    """Such a code once reached the store's integer column: a 500 and a traceback."""
    nid = sent_notification(store, SID)
    before = list(store.audit(None, None))
    assert await post_all(store, callback(SID, "failed", code)) == [400]
    view = store.get_notification(nid)
    assert view is not None and view.status is Status.QUEUED
    assert list(store.audit(None, None)) == before


async def test_largest_accepted_error_code_fits_the_store(store: SqlStore) -> None:
    nid = sent_notification(store, SID)
    assert await post_all(store, callback(SID, "failed", "999999999")) == [200]
    view = store.get_notification(nid)
    assert view is not None and view.status is Status.FAILED and view.error_code == 999_999_999
