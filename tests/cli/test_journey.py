"""`notifications show ID`: the whole journey in one place, for people and as JSON."""

from __future__ import annotations

import json

from tests.cli.conftest import Invoke
from tests.cli.test_notifications import LUIS, filled, ids  # noqa: F401 - the fixture
from tests.support.pipeline import Pipeline


async def test_show_undelivered_tells_the_whole_story(filled: Pipeline, invoke: Invoke) -> None:  # noqa: F811
    nid = ids(filled)["1002"]
    result = invoke(["-c", str(filled.config_path), "notifications", "show", str(nid)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    print(out)
    assert "record: purchase_order 1002" in out and "from source erp" in out
    assert "poll: " in out and "main poll, 4 new" in out
    assert "rule: status becomes APPROVED" in out
    assert "https://www.twilio.com/docs/api/errors/30006" in out
    assert "callback delivered" not in out and "callback undelivered [30006]" in out and ": applied" in out
    assert "attempt 1: accepted SM" in out
    assert LUIS not in out, out[out.find(LUIS) - 80: out.find(LUIS) + 20]


async def test_show_json_has_attempts_callbacks_and_poll(filled: Pipeline, invoke: Invoke) -> None:  # noqa: F811
    nid = ids(filled)["1003"]
    result = invoke(["-c", str(filled.config_path), "notifications", "show", str(nid), "--json"])
    data = json.loads(result.stdout)
    assert data["error_code"] == 21211 and data["error_docs"] == "https://www.twilio.com/docs/api/errors/21211"
    assert data["attempt_history"][0]["error_docs"] == data["error_docs"]
    j = data["journey"]
    assert j["record"]["key"] == "1003" and j["poll"]["inserted"] == 4 and j["rule"] == "status becomes APPROVED"
    kinds = [s["kind"] for s in j["timeline"]]
    assert kinds[:3] == ["created", "claimed", "attempt"]
    assert "+15005550001" not in result.stdout


async def test_show_a_recipient_never_found(filled: Pipeline, invoke: Invoke) -> None:  # noqa: F811
    nid = ids(filled)["1006"]
    result = invoke(["-c", str(filled.config_path), "notifications", "show", str(nid)])
    assert "failed before sending: no usable phone number" in result.stdout


async def test_show_callbacks_with_duplicates(filled: Pipeline, invoke: Invoke) -> None:  # noqa: F811
    p = filled
    nid = ids(p)["1001"]
    view = p.connector.store.get_notification(nid)
    assert view is not None and view.provider_id
    from datetime import UTC, datetime

    from ml_connector.core.models import StatusEvent

    event = StatusEvent(provider_id=view.provider_id, provider_status="delivered", error_code=None,
                        received_at=datetime.now(UTC), raw={"MessageStatus": "delivered"})
    p.connector.store.apply_status(event)  # a report of a status it has: stale
    p.connector.store.apply_status(event)  # the same report again: duplicate
    data = json.loads(invoke(["-c", str(p.config_path), "notifications", "show", str(nid), "--json"]).stdout)
    results = [c["result"] for c in data["journey"]["callbacks"]]
    assert results[-2:] == ["stale", "duplicate"] and "applied" in results
