"""The simulator's connection faults over real HTTP on uvloop, the loop `ml-connector simulate` runs.

uvloop's transports do not derive from asyncio.Transport; a dropped answer must still be a
dropped connection, not a 500 that invites a resend of an accepted message.
"""

from __future__ import annotations

import httpx
import pytest

from ml_connector.runtime.loop import LOOP_ENV, run
from ml_connector.sim.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FaultRule, TwilioSim, serve

MESSAGES = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
FORM = {"To": "+15551230001", "From": "+15005550006", "Body": "dropped"}


async def drop_once() -> tuple[str, int, int]:
    sim = TwilioSim(callback_delay=(0.0, 0.0))
    sim.set_faults([FaultRule(action="drop_after_accept", count=1)])
    try:
        async with serve(sim) as base_url, httpx.AsyncClient(
            base_url=base_url, auth=(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
        ) as api:
            try:
                response = await api.post(MESSAGES, data=FORM)
                outcome = f"answered {response.status_code}"
            except httpx.RemoteProtocolError:
                outcome = "disconnected"
            accepted = len(sim.messages())
            after = (await api.post(MESSAGES, data=FORM)).status_code
    finally:
        await sim.aclose()
    return outcome, accepted, after


def test_drop_after_accept_closes_the_connection_on_uvloop() -> None:
    pytest.importorskip("uvloop")
    assert run(drop_once(), environ={LOOP_ENV: "uvloop"}) == ("disconnected", 1, 201)


def test_drop_after_accept_closes_the_connection_on_asyncio() -> None:
    assert run(drop_once(), environ={LOOP_ENV: "asyncio"}) == ("disconnected", 1, 201)
