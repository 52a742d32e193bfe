"""The email channel against the SendGrid simulator, in-process: what it sends, how each answer
becomes a delivery error, and the at-most-once choice for sends of unknown outcome."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from ml_connector.channels.email import AT_MOST_ONCE, NOTIFICATION_ARG, EmailChannel, EmailSenderRef
from ml_connector.channels.http import AsgiTransport
from ml_connector.channels.sendgrid_api import SendGridClient, parse_rate_limit_reset
from ml_connector.core.email_body import EmailContent, compile_email
from ml_connector.core.models import OutboundMessage
from ml_connector.errors import NotResent, PermanentError, TransientError
from ml_connector.sim.sendgrid import DEFAULT_API_KEY, SendGridSim

TEMPLATE = compile_email("flows.vendor.template", subject="PO {{ PO }} approved", text="PO {{ PO }} approved",
                         html="<p>PO {{ PO }} for {{ VENDOR }}</p>")
BODY = TEMPLATE.render({"PO": "4711", "VENDOR": "Smith & Sons"})


def message(body: str = BODY, sender: str = "alerts", nid: int = 17) -> OutboundMessage:
    return OutboundMessage(notification_id=nid, account="main", to="dana@example.com", sender=sender, body=body,
                           channel="email")


@pytest.fixture
async def sim() -> AsyncIterator[SendGridSim]:
    s = SendGridSim()
    yield s
    await s.aclose()


def channel_for(sim: SendGridSim, api_key: str = DEFAULT_API_KEY) -> EmailChannel:
    client = SendGridClient(api_key, base_url="https://api.sendgrid.com", transport=AsgiTransport(sim.create_app()))
    return EmailChannel({"alerts": EmailSenderRef(client, "alerts@erp.example.com", "ERP alerts",
                                                  "buyers@example.com", ("ml-connector", "po"))})


async def test_a_mail_is_queued_with_its_parts_and_our_id(sim: SendGridSim) -> None:
    result = await channel_for(sim).send(message())
    assert result.provider_status == "queued"
    [mail] = sim.sent
    assert result.provider_id == mail.message_id
    assert mail.to == "dana@example.com" and mail.from_email == "alerts@erp.example.com"
    assert mail.subject == "PO 4711 approved"
    assert mail.contents == {"text/plain": "PO 4711 approved", "text/html": "<p>PO 4711 for Smith &amp; Sons</p>"}
    assert mail.categories == ["ml-connector", "po"]
    assert mail.custom_args == {NOTIFICATION_ARG: "17"}


async def test_a_bad_api_key_fails_the_message_with_the_reason_not_the_key(sim: SendGridSim) -> None:
    with pytest.raises(PermanentError, match="API key") as info:
        await channel_for(sim, "SG.wrong-key").send(message())
    assert "SG.wrong-key" not in str(info.value)
    assert not isinstance(info.value, NotResent)
    assert sim.sent == []


async def test_429_is_transient_slows_down_and_honours_the_reset(sim: SendGridSim) -> None:
    sim.fail_next(429, reset_in=30)
    with pytest.raises(TransientError) as info:
        await channel_for(sim).send(message())
    assert info.value.slow_down
    assert info.value.retry_after is not None and 25 <= info.value.retry_after <= 32
    assert (await channel_for(sim).send(message())).provider_status == "queued"  # the next one goes


@pytest.mark.parametrize("status", [500, 503])
async def test_a_server_error_is_not_resent(sim: SendGridSim, status: int) -> None:
    sim.fail_next(status)
    with pytest.raises(NotResent, match="at most once"):
        await channel_for(sim).send(message())


async def test_a_lost_response_is_not_resent_although_the_mail_was_queued(sim: SendGridSim) -> None:
    sim.drop_next()
    with pytest.raises(NotResent, match="at most once"):
        await channel_for(sim).send(message())
    assert len(sim.sent) == 1  # SendGrid did queue it: sending again would deliver it twice


async def test_an_in_doubt_send_cannot_be_looked_up_so_it_is_never_resent(sim: SendGridSim) -> None:
    with pytest.raises(NotResent) as info:
        await channel_for(sim).find_sent(message(), datetime(2026, 1, 1, tzinfo=UTC))
    assert info.value.reason == AT_MOST_ONCE
    assert sim.sent == []


async def test_a_body_that_is_not_an_email_and_an_unknown_sender_fail_without_a_request(sim: SendGridSim) -> None:
    with pytest.raises(PermanentError, match="not an email"):
        await channel_for(sim).send(message(body="PO 4711 approved"))
    with pytest.raises(PermanentError, match="not configured"):
        await channel_for(sim).send(message(sender="billing"))
    assert sim.sent == []


def test_stored_bodies_round_trip_and_subjects_stay_one_line() -> None:
    content = compile_email("t", subject="PO {{ PO }}\nBcc: x@example.com", text="t", html=None).content({"PO": 1})
    assert content.subject == "PO 1 Bcc: x@example.com"
    assert EmailContent.parse(content.dumps()) == content
    assert json.loads(content.dumps())["html"] is None


@pytest.mark.parametrize(("header", "expected"), [("1600000030", 30.0), ("1599999990", 0.0), ("soon", None),
                                                   (None, None), ("nan", None)])
def test_rate_limit_reset_is_seconds_from_now(header: str | None, expected: float | None) -> None:
    assert parse_rate_limit_reset(header, datetime.fromtimestamp(1600000000, UTC)) == expected
