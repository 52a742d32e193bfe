"""While the store is away: callbacks get 503 (Twilio retries them), /readyz says not ready,
/healthz stays up, and the outage is logged once, not once per request."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
import pytest

from ml_connector.core.models import StatusEvent
from ml_connector.errors import StoreUnavailable
from ml_connector.store.engine import health, make_engine, reading, writing
from ml_connector.store.port import ApplyResult
from ml_connector.web.webhooks import create_webhook_app
from tests.web.test_webhooks import FORM, INTERNAL_BASE, PUBLIC_URL, TOKENS, callback_params, sign


class AwayStore:
    """A store whose database is away until `back` is set."""

    def __init__(self) -> None:
        self.back = False

    def outage(self) -> str | None:
        return None if self.back else "OperationalError: connection refused"

    def apply_statuses(self, events: Sequence[StatusEvent]) -> list[ApplyResult]:
        if not self.back:
            raise StoreUnavailable("store unavailable: connection refused")
        return [ApplyResult.APPLIED for _ in events]

    def apply_status(self, event: StatusEvent) -> ApplyResult:
        return self.apply_statuses([event])[0]


async def test_callbacks_get_503_and_readyz_is_not_ready_while_the_store_is_away() -> None:
    store = AwayStore()
    app = create_webhook_app(store=store, auth_tokens=TOKENS, status_callback_url=PUBLIC_URL)  # type: ignore[arg-type]
    pairs = callback_params()
    headers = {"content-type": FORM, "x-twilio-signature": sign(PUBLIC_URL, pairs)}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=INTERNAL_BASE) as client:
        path = httpx.URL(PUBLIC_URL).path
        away = await client.post(path, data=dict(pairs), headers=headers)
        assert away.status_code == 503
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "store unavailable" in ready.text
        assert (await client.get("/healthz")).status_code == 200

        store.back = True
        assert (await client.post(path, data=dict(pairs), headers=headers)).status_code == 200
        assert (await client.get("/readyz")).status_code == 200


def test_an_unreachable_postgresql_is_store_unavailable_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:9/nowhere")  # port 9: nothing listens
    caplog.set_level(logging.WARNING, logger="ml_connector.store.outage")
    try:
        for _ in range(3):
            with pytest.raises(StoreUnavailable), writing(engine):
                pass
            with pytest.raises(StoreUnavailable), reading(engine):
                pass
        assert not health(engine).available
        assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    finally:
        engine.dispose()


def test_a_wrong_statement_is_not_an_outage(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    try:
        with pytest.raises(Exception, match="no such table") as info, reading(engine) as conn:
            conn.exec_driver_sql("SELECT * FROM missing")
        assert not isinstance(info.value, StoreUnavailable) and health(engine).available
    finally:
        engine.dispose()
