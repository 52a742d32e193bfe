"""SendGrid's signed Event Webhook over the real store, on SQLite and PostgreSQL: the simulator
sends, signs and posts events as SendGrid does; forged and unsigned posts change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ml_connector.channels.email import EmailChannel, EmailSenderRef
from ml_connector.channels.http import AsgiTransport
from ml_connector.channels.sendgrid_api import SendGridClient
from ml_connector.channels.sendgrid_signature import load_public_key
from ml_connector.core.email_body import compile_email
from ml_connector.core.models import OutboundMessage, Status
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import AttemptResult, NewNotification, Outcome, PollCommit
from ml_connector.store.sql import SqlStore
from ml_connector.web.email_events import email_event_route
from ml_connector.web.webhooks import create_webhook_app

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TO = "dana.whitfield@example.com"
BODY = compile_email("flows.f.template", subject="PO 4711", text="PO 4711 approved", html="<p>PO 4711</p>").render({})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue(
        "pg_schema_url")
    s = SqlStore(url, KeyRing(b"k" * 32))
    yield s
    s.close()


class Rig:
    def __init__(self, store: SqlStore, sim_kwargs: dict[str, object]) -> None:
        from ml_connector.sim.sendgrid import SendGridSim

        self.store = store
        self.sim = SendGridSim(events_to="http://127.0.0.1:8080/sendgrid/events", **sim_kwargs)  # type: ignore[arg-type]
        route = email_event_route(store=store, public_keys=[load_public_key(self.sim.public_key)],
                                  clock=lambda: T0 + timedelta(seconds=5))
        self.app = create_webhook_app(store=store, auth_tokens={"AC" + "1" * 32: "t"},
                                      status_callback_url="https://c.example.com/twilio/status",
                                      extra_routes=[route])
        self.sim.event_transport = httpx.ASGITransport(self.app)
        client = SendGridClient("SG.simulator-key.0123456789", transport=AsgiTransport(self.sim.create_app()))
        self.channel = EmailChannel({"alerts": EmailSenderRef(client, "alerts@erp.example.com")})

    async def send(self, to: str = TO) -> int:
        note = NewNotification(
            idempotency_key=f"k-{to}", flow="vendor", entity="po", record_key="4711", event_version="v1",
            channel="email", account="main", sender="alerts", recipient=to, recipient_field="VENDOR_EMAIL",
            body=BODY, status=Status.PENDING, reason=None, next_attempt_at=T0, max_attempts=3, segments=1,
            record_changed_at=T0,
        )
        [nid] = self.store.commit_poll(PollCommit("vendor", "main", T0, [], [note], T0))
        [claimed] = self.store.claim_due("w", T0, timedelta(seconds=60), 10)
        assert claimed.channel == "email" and claimed.recipient == to
        result = await self.channel.send(OutboundMessage(nid, "main", to, "alerts", claimed.body, channel="email"))
        self.store.finish_attempt(AttemptResult(nid, claimed.attempt_no, Outcome.ACCEPTED, T0, T0,
                                                provider_id=result.provider_id, provider_status="queued"))
        return nid

    def status(self, nid: int) -> Status:
        view = self.store.get_notification(nid)
        assert view is not None
        return view.status

    def audited(self, nid: int) -> list[str]:
        return [str(e.detail.get("provider_status")) for e in self.store.audit(None, None)
                if e.notification_id == nid and e.kind == "status"]


@pytest.fixture
async def rig(store: SqlStore) -> AsyncIterator[Rig]:
    r = Rig(store, {})
    yield r
    await r.sim.aclose()


async def test_a_delivered_email_is_delivered_and_its_address_is_encrypted(rig: Rig, tmp_path: Path) -> None:
    nid = await rig.send()
    await rig.sim.drain()
    assert rig.status(nid) is Status.DELIVERED
    assert rig.audited(nid) == ["processed", "delivered"]
    assert rig.sim.rejected_events == 0
    db = tmp_path / "store.db"
    if db.exists():  # SQLite: neither the address nor the subject is on disk in the clear
        raw = db.read_bytes()
        assert TO.encode() not in raw and b"PO 4711 approved" not in raw


async def test_bounce_is_undelivered_with_the_address_masked(rig: Rig) -> None:
    rig.sim.outcomes[TO] = "bounce"
    nid = await rig.send()
    await rig.sim.drain()
    view = rig.store.get_notification(nid)
    assert view is not None and view.status is Status.UNDELIVERED
    assert view.error_message is not None and "550 5.1.1" in view.error_message and TO not in view.error_message


async def test_opens_are_kept_in_the_audit_only(rig: Rig) -> None:
    rig.sim.outcomes[TO] = "open"
    nid = await rig.send()
    await rig.sim.drain()
    assert rig.status(nid) is Status.DELIVERED
    assert rig.audited(nid) == ["processed", "delivered", "open"]


async def test_dropped_fails(rig: Rig) -> None:
    rig.sim.outcomes[TO] = "dropped"
    nid = await rig.send()
    await rig.sim.drain()
    assert rig.status(nid) is Status.FAILED


@pytest.mark.parametrize("kwargs", [{"reverse_events": True}, {"repeat_events": True},
                                    {"reverse_events": True, "repeat_events": True}])
async def test_events_out_of_order_and_repeated_end_delivered(store: SqlStore, kwargs: dict[str, object]) -> None:
    r = Rig(store, kwargs)
    try:
        nid = await r.send()
        await r.sim.drain()
        assert r.status(nid) is Status.DELIVERED
    finally:
        await r.sim.aclose()


async def post(app: object, body: bytes, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://127.0.0.1:8080") as client:  # type: ignore[arg-type]
        return (await client.post("/sendgrid/events", content=body, headers=headers)).status_code


async def test_forged_and_unsigned_events_get_403_and_change_nothing(rig: Rig) -> None:
    rig.sim.events_to = None  # the real events never come
    nid = await rig.send()
    [mail] = rig.sim.sent
    body = (b'[{"email":"%s","event":"delivered","timestamp":1,"sg_event_id":"e1","sg_message_id":"%s.x"}]\r\n'
            % (TO.encode(), mail.message_id.encode()))
    stamp = "1793000000"
    good = rig.sim.sign(body, stamp)
    from ml_connector.sim.sendgrid import SendGridSim

    forger = SendGridSim()
    cases = [
        {},  # unsigned
        {"X-Twilio-Email-Event-Webhook-Signature": good},  # no timestamp
        {"X-Twilio-Email-Event-Webhook-Signature": forger.sign(body, stamp),
         "X-Twilio-Email-Event-Webhook-Timestamp": stamp},  # another key
        {"X-Twilio-Email-Event-Webhook-Signature": good, "X-Twilio-Email-Event-Webhook-Timestamp": "1793000001"},
    ]
    for headers in cases:
        assert await post(rig.app, body, {"Content-Type": "application/json", **headers}) == 403
    assert rig.status(nid) is Status.QUEUED and rig.audited(nid) == []
    tampered = body.replace(b"delivered", b"bounce\x20\x20\x20")
    assert await post(rig.app, tampered, {"X-Twilio-Email-Event-Webhook-Signature": good,
                                          "X-Twilio-Email-Event-Webhook-Timestamp": stamp}) == 403
    signed = {"X-Twilio-Email-Event-Webhook-Signature": good, "X-Twilio-Email-Event-Webhook-Timestamp": stamp}
    assert await post(rig.app, body, signed) == 200
    assert rig.status(nid) is Status.DELIVERED
    await forger.aclose()


async def test_signed_but_malformed_is_400(rig: Rig) -> None:
    body = b'{"event":"delivered"}'
    stamp = "1793000000"
    headers = {"X-Twilio-Email-Event-Webhook-Signature": rig.sim.sign(body, stamp),
               "X-Twilio-Email-Event-Webhook-Timestamp": stamp}
    assert await post(rig.app, body, headers) == 400
