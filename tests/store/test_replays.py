"""Replays in the store: re-addressed rows take the new recipient, body and key; a taken key is refused."""

from __future__ import annotations

from datetime import timedelta

from ml_connector.core.models import Status
from ml_connector.store.port import NotificationFilter, Revision
from ml_connector.store.sql import SqlStore

from .builders import PHONE, T0, enqueue, notification

NEW = "+13125550161"


def _failed(store: SqlStore) -> list[int]:
    return enqueue(store, notification(1, status=Status.FAILED, recipient="n/a", reason="no usable phone number"),
                   notification(2))


def test_revision_re_addresses_and_audits_both_versions(store: SqlStore) -> None:
    one, _ = _failed(store)
    revision = Revision(idempotency_key=f"po-approved:PO:1:v1:{NEW}:sms", recipient=NEW,
                        recipient_field="person.mobile_phone", body="PO 1 approved (again)", segments=1)
    assert store.replay([one], T0 + timedelta(minutes=1), "alice", revisions={one: revision}) == [one]
    view = store.get_notification(one)
    assert view is not None and view.status is Status.PENDING and view.recipient == NEW
    assert view.body == "PO 1 approved (again)" and view.recipient_field == "person.mobile_phone"
    assert [v.id for v in store.list_notifications(NotificationFilter(recipient=NEW))] == [one]
    (entry,) = [e for e in store.audit(None, None) if e.kind == "replay"]
    assert entry.detail["before"]["recipient"] == "(none)" and entry.detail["after"]["recipient"] == "+1312•••0161"
    assert entry.detail["previous_reason"] == "no usable phone number" and entry.detail["re_resolved"] is True
    assert NEW not in str(entry.detail) and "again" not in str(entry.detail)


def test_revision_whose_key_is_taken_is_refused(store: SqlStore) -> None:
    one, two = _failed(store)
    taken = Revision(idempotency_key=f"po-approved:PO:2:v1:{PHONE}:sms", recipient=PHONE,
                     recipient_field="BUYER_PHONE", body="x", segments=1)
    assert store.replay([one], T0 + timedelta(minutes=1), "alice", revisions={one: taken}) == []
    view = store.get_notification(one)
    assert view is not None and view.status is Status.FAILED
    refused = [e for e in store.audit(None, None) if e.kind == "replay_refused"]
    assert refused and f"notification {two}" in refused[0].detail["reason"]
