"""A Twilio account whose credentials are refused holds its sending; nothing fails, nothing is lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ml_connector.core.models import Status
from ml_connector.demo import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN
from tests.runtime.support import enqueue, notification, outcomes, view
from tests.support.pipeline import Pipeline, pipeline


async def _metrics(p: Pipeline) -> str:
    app = p.connector.webhook_app()  # the same dispatcher's holds, as `run` serves them
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        return (await client.get("/metrics")).text


@pytest.fixture(params=[pytest.param(None, id="sqlite"),
                        pytest.param("postgres", id="postgresql", marks=pytest.mark.postgres)])
async def p(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Pipeline]:
    url = None if request.param is None else str(request.getfixturevalue("pg_schema_url"))
    async with pipeline(tmp_path, store_url=url) as running:
        yield running


async def test_a_refused_token_holds_sending_and_a_fixed_one_delivers_everything(p: Pipeline) -> None:
    d = p.connector.dispatcher
    p.sim.update_account(DEMO_ACCOUNT_SID, auth_token="rotated-in-the-console")  # ours is now wrong
    nids = enqueue(p, *(notification(p.clock()) for _ in range(3)))
    await p.dispatch()

    first = [view(p, nid) for nid in nids]
    assert [v.status for v in first] == [Status.PENDING] * 3, "refused credentials fail nothing"
    assert all(v.error_code == 20003 and "account held" in (v.error_message or "") for v in first)
    assert all(v.max_attempts - v.attempts_made == 4 for v in first), "no retry was used"
    held = d.holds.get("main")
    assert held is not None and held.code == 20003
    assert "main" in p.connector.store.account_holds()
    assert 'mlc_twilio_account_held{account="main"} 1.0' in await _metrics(p)

    # still refused: the rows wait, no new request per row goes to Twilio
    p.clock.advance(31)
    assert not await d.probe_account("main")
    await p.dispatch()
    assert [view(p, nid).status for nid in nids] == [Status.PENDING] * 3

    p.sim.update_account(DEMO_ACCOUNT_SID, auth_token=DEMO_AUTH_TOKEN)
    p.clock.advance(31)
    assert await d.probe_account("main")
    assert d.holds.get("main") is None and p.connector.store.account_holds() == {}
    assert 'mlc_twilio_account_held{account="main"} 0.0' in await _metrics(p)
    p.clock.advance(31)
    await p.dispatch()

    done = [view(p, nid) for nid in nids]
    assert [v.status for v in done] == [Status.DELIVERED] * 3
    assert all(outcomes(v) == ["accepted"] for v in done), "holding was never an attempt"
    assert len(p.sim.messages()) == 3
    kinds = [e.kind for e in p.audit()]
    assert kinds.count("account_held") == 1 and kinds.count("account_resumed") == 1
