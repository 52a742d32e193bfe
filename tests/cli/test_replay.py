"""`replay`: --re-resolve reads the ERP again; permanent Twilio failures need a fix or --force; --json never asks."""

from __future__ import annotations

import asyncio
import json

from ml_connector.core.models import Status
from ml_connector.core.remedies import permanent_failure
from ml_connector.sim.demo_erp import INVALID_PHONE
from tests.cli.conftest import Invoke
from tests.cli.test_notifications import filled, ids  # noqa: F401 - the fixture
from tests.support.pipeline import Pipeline

ANA, TOM = 105, 104      # buyers of PO 1006 (no phone at all) and PO 1003 (21211)
FIXED = "(312) 555-0161"


def replays(p: Pipeline) -> list[dict[str, object]]:
    return [dict(e.detail) for e in p.audit() if e.kind == "replay"]


async def test_never_addressed_needs_re_resolve_then_ends_delivered(filled: Pipeline, invoke: Invoke) -> None:  # noqa: F811
    p = filled
    nid = ids(p)["1006"]
    plain = invoke(["-c", str(p.config_path), "replay", str(nid)])
    assert plain.exit_code == 1 and "never had a usable recipient" in plain.stderr and "--re-resolve" in plain.stderr
    unfixed = await asyncio.to_thread(invoke, ["-c", str(p.config_path), "replay", str(nid), "--re-resolve"])
    assert unfixed.exit_code == 1 and "still no usable phone number" in unfixed.stderr
    assert replays(p) == []
    p.erp.set_mobile_phone(ANA, FIXED)
    result = await asyncio.to_thread(invoke, ["-c", str(p.config_path), "replay", str(nid), "--re-resolve"])
    assert result.exit_code == 0, result.output
    assert "re-resolved from the ERP (recipient changed" in result.stdout and "+1312•••0161" in result.stdout
    p.clock.advance(60)
    await p.dispatch()
    view = p.connector.store.get_notification(nid)
    assert view is not None and view.status is Status.DELIVERED and view.recipient == "+13125550161"
    assert [m.to for m in p.sim.messages()].count("+13125550161") == 1
    (entry,) = replays(p)
    assert entry["re_resolved"] is True and entry["changed"] == ["recipient", "recipient_field"]
    assert entry["before"]["recipient"] == "(none)" and entry["after"]["recipient"] == "+1312•••0161"  # type: ignore[index]
    assert "no usable phone number" in str(entry["previous_reason"])
    shown = invoke(["-c", str(p.config_path), "notifications", "show", str(nid)]).stdout
    assert "failed before sending: no usable phone number" in shown and "re-resolved" in shown
    assert "5550161" not in "".join(str(e.detail) for e in p.audit())


async def test_permanent_failure_is_refused_with_the_fix_unless_forced(filled: Pipeline, invoke: Invoke) -> None:  # noqa: F811
    p = filled
    nid = ids(p)["1003"]
    refused = invoke(["-c", str(p.config_path), "replay", str(nid)])
    assert refused.exit_code == 1
    assert "[21211] invalid 'To' phone number" in refused.stderr
    assert "fix first: correct the phone number in the ERP" in refused.stderr
    assert "https://www.twilio.com/docs/api/errors/21211" in refused.stderr
    # the same number again is no fix
    same = await asyncio.to_thread(invoke, ["-c", str(p.config_path), "replay", str(nid), "--re-resolve"])
    assert same.exit_code == 1 and "[21211]" in same.stderr
    forced = invoke(["-c", str(p.config_path), "replay", str(nid), "--force"])
    assert forced.exit_code == 0, forced.output
    (entry,) = replays(p)
    assert entry["forced"] is True and entry["previous_error_code"] == 21211 and entry["re_resolved"] is False


async def test_permanent_failure_fixed_in_the_erp_replays_without_force(filled: Pipeline, invoke: Invoke) -> None:  # noqa: F811
    p = filled
    nid = ids(p)["1003"]
    p.erp.set_mobile_phone(TOM, FIXED)
    result = await asyncio.to_thread(invoke, ["-c", str(p.config_path), "replay", str(nid), "--re-resolve"])
    assert result.exit_code == 0, result.output
    p.clock.advance(60)
    await p.dispatch()
    view = p.connector.store.get_notification(nid)
    assert view is not None and view.status is Status.DELIVERED
    assert [a.error_code for a in view.attempts] == [21211, None]  # the original failure stays
    assert view.recipient == "+13125550161" and INVALID_PHONE not in [m.to for m in p.sim.messages()]


async def test_json_never_asks(filled: Pipeline, invoke: Invoke) -> None:  # noqa: F811
    p = filled
    result = invoke(["-c", str(p.config_path), "replay", "--flow", "po_approved", "--json", "--force"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert sorted(d["id"] for d in data["would_replay"]) == sorted([ids(p)["1002"], ids(p)["1003"]])
    assert [d["id"] for d in data["refused"]] == [ids(p)["1006"]] and data["replayed"] == []
    assert "?" not in result.stdout and replays(p) == []
    done = invoke(["-c", str(p.config_path), "replay", "--flow", "po_approved", "--json", "--yes", "--force"])
    assert done.exit_code == 1, done.output  # 1006 was refused
    assert sorted(json.loads(done.stdout)["replayed"]) == sorted([ids(p)["1002"], ids(p)["1003"]])


def test_remedies() -> None:
    opted_out = permanent_failure(21610)
    assert opted_out is not None and "START" in opted_out.fix and opted_out.recipient_fixes_it
    assert permanent_failure(30001) is None and permanent_failure(None) is None  # retryable
    assert permanent_failure(20003) is None  # an account hold, not the message's fault
    landline = permanent_failure(30006)
    assert landline is not None and landline.meaning == "landline or unreachable carrier"
