"""Outbound webhooks: signed as Standard Webhooks says (checked by the reference package and by
the formula itself), each answer classified, a redelivery keeps its webhook-id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from ml_connector.channels.http import AsgiTransport
from ml_connector.channels.webhook import WebhookChannel, WebhookEndpoint, webhook_id
from ml_connector.core.models import OutboundMessage
from ml_connector.core.templates import compile_template
from ml_connector.core.webhook_body import EVENT_TYPE, PAYLOAD_VERSION, WebhookTemplate
from ml_connector.errors import PermanentError, TransientError
from ml_connector.sim.webhook_receiver import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NOW = datetime.now(UTC).replace(microsecond=0)
BODY = WebhookTemplate("t", compile_template("t", "PO {{ po }} approved")).render(
    {"po": "4711", "flow": "po_hook", "record": {"entity": "purchase_order", "key": "4711", "changed_at": NOW}})


def message(nid: int = 42) -> OutboundMessage:
    return OutboundMessage(nid, "main", "erp-hook", "erp-hook", BODY, channel="webhook")


def channel(receiver: WebhookReceiver, secret: str = SECRET) -> WebhookChannel:
    return WebhookChannel({"erp-hook": WebhookEndpoint("https://customer.example.com/hooks/erp", secret)},
                          transport=AsgiTransport(receiver.create_app()), clock=lambda: NOW)


async def test_a_delivery_verifies_with_the_reference_and_carries_the_versioned_payload() -> None:
    receiver = WebhookReceiver(SECRET)
    result = await channel(receiver).send(message())
    assert (result.provider_id, result.provider_status) == ("mlc_42", "delivered")
    [delivery] = receiver.received
    assert delivery.webhook_id == webhook_id(42)
    payload = delivery.payload
    assert payload["type"] == EVENT_TYPE and payload["version"] == PAYLOAD_VERSION == "1"
    assert payload["data"] == {"notification_id": 42, "flow": "po_hook", "entity": "purchase_order",
                               "record_key": "4711", "changed_at": NOW.isoformat(), "message": "PO 4711 approved"}


async def test_the_signature_is_the_specified_hmac() -> None:
    seen: dict[str, object] = {}

    async def capture(scope: dict[str, object], receive: object, send: object) -> None:
        msg = await receive()  # type: ignore[operator]
        seen["headers"] = {k.decode(): v.decode() for k, v in scope["headers"]}  # type: ignore[attr-defined]
        seen["body"] = msg["body"]
        await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    ch = WebhookChannel({"erp-hook": WebhookEndpoint("https://c.example.com/h", SECRET)},
                        transport=AsgiTransport(capture), clock=lambda: NOW)  # type: ignore[arg-type]
    await ch.send(message())
    headers = seen["headers"]
    assert isinstance(headers, dict)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + seen["body"]  # type: ignore[operator]
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == expected
    assert headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert json.loads(seen["body"])["data"]["notification_id"] == 42  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "error", "slow"), [(429, TransientError, True), (408, TransientError, False),
                                                       (500, TransientError, False), (503, TransientError, False),
                                                       (400, PermanentError, False), (410, PermanentError, False)])
async def test_answers_are_classified(status: int, error: type[Exception], slow: bool) -> None:
    receiver = WebhookReceiver(SECRET)
    receiver.fail_next(status)
    with pytest.raises(error) as info:
        await channel(receiver).send(message())
    if isinstance(info.value, TransientError):
        assert info.value.slow_down is slow


async def test_a_redelivery_keeps_its_webhook_id_so_the_receiver_drops_it() -> None:
    receiver = WebhookReceiver(SECRET)
    ch = channel(receiver)
    await ch.send(message())
    await ch.send(message())  # e.g. the first answer was lost
    assert len(receiver.received) == 1 and receiver.duplicates == 1
    assert await ch.find_sent(message(), NOW) is None  # nothing to ask: resending is the protocol's way


async def test_a_wrong_secret_is_refused_by_the_receiver_and_fails() -> None:
    receiver = WebhookReceiver(SECRET)
    other = "whsec_" + base64.b64encode(b"another secret of 32 bytes......").decode()
    with pytest.raises(PermanentError, match="401"):
        await channel(receiver, other).send(message())
    assert receiver.refused == 1 and receiver.received == []
