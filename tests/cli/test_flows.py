"""`ml-connector flows`: list, pause/resume and reset, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from ml_connector.cli_flows import duration
from tests.cli.conftest import Invoke
from tests.support.pipeline import Pipeline, pipeline

FLOW = "po_approved"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def p(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pipeline]:
    url = request.getfixturevalue("pg_schema_url") if request.param == "postgres" else None
    async with pipeline(tmp_path, store_url=url) as piped:
        await piped.poll()
        piped.erp.approve_po(1001)
        await piped.poll()
        yield piped


def listed(invoke: Invoke, p: Pipeline) -> dict[str, dict[str, object]]:
    result = invoke(["-c", str(p.config_path), "flows", "--json"])
    assert result.exit_code == 0, result.output
    return {row["flow"]: row for row in json.loads(result.stdout)}


def flow_audit(p: Pipeline) -> list[str]:
    return [e.kind for e in p.audit() if e.kind.startswith("flow_")]


async def test_list_shows_each_flow(p: Pipeline, invoke: Invoke) -> None:
    rows = listed(invoke, p)
    assert set(rows) == {"po_approved", "invoice_validated"}
    po = rows[FLOW]
    assert po["source"] == "erp" and po["entity"] == "purchase_order" and po["every"] == "1s"
    assert po["events_today"] == 1 and po["paused"] is False and po["watermark"] is not None
    assert po["polled_by"] is None and isinstance(po["lag_seconds"], float)
    table = invoke(["-c", str(p.config_path), "flows"], env={"COLUMNS": "80"})
    assert table.exit_code == 0
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    assert any(line.split()[:2] == [FLOW, "active"] for line in table.stdout.splitlines())
    assert "polled by: no process" in table.stdout


async def test_pause_and_resume(p: Pipeline, invoke: Invoke) -> None:
    paused = invoke(["-c", str(p.config_path), "flows", "pause", FLOW])
    assert paused.exit_code == 0 and "paused for every process" in paused.stdout
    assert listed(invoke, p)[FLOW]["paused"] is True
    assert p.connector.store.paused_flows() == {FLOW}
    again = invoke(["-c", str(p.config_path), "flows", "pause", FLOW])
    assert again.exit_code == 0 and "already paused" in again.stdout
    resumed = invoke(["-c", str(p.config_path), "flows", "resume", FLOW, "--json"])
    assert json.loads(resumed.stdout) == {"flow": FLOW, "paused": False, "changed": True}
    assert flow_audit(p) == ["flow_paused", "flow_resumed"]
    missing = invoke(["-c", str(p.config_path), "flows", "pause", "nope"])
    assert missing.exit_code == 3 and "no flow 'nope'" in missing.stderr


async def test_reset_to_asks_then_moves_the_watermark_and_nothing_is_sent_twice(p: Pipeline, invoke: Invoke) -> None:
    store = p.connector.store
    before = store.get_watermark(FLOW)
    assert before is not None
    to = (p.clock.now - timedelta(hours=1)).isoformat()
    declined = invoke(["-c", str(p.config_path), "flows", "reset", FLOW, "--to", to], input="n\n")
    assert declined.exit_code == 1 and "not reset" in declined.stderr and store.get_watermark(FLOW) == before
    scripted = invoke(["-c", str(p.config_path), "flows", "reset", FLOW, "--to", to, "--json"])
    assert scripted.exit_code == 1 and json.loads(scripted.stdout)["reset"] is False
    done = invoke(["-c", str(p.config_path), "flows", "reset", FLOW, "--to", to], input="y\n")
    assert done.exit_code == 0, done.output
    assert store.get_watermark(FLOW) == p.clock.now - timedelta(hours=1)
    reports = await p.poll(FLOW)  # the hour is read again: the approval is known, nothing new
    assert reports[0].read >= 1 and reports[0].inserted == 0
    assert len(p.notifications(flow=FLOW)) == 1
    assert flow_audit(p) == ["flow_reset"]


async def test_reset_baseline_starts_the_flow_afresh(p: Pipeline, invoke: Invoke) -> None:
    result = invoke(["-c", str(p.config_path), "flows", "reset", FLOW, "--baseline", "--yes"])
    assert result.exit_code == 0, result.output
    assert "baseline re-taken" in result.stdout
    assert p.connector.store.get_watermark(FLOW) is None
    await p.poll(FLOW)  # a first poll again: PO 1001, approved before, is history
    assert len(p.notifications(flow=FLOW)) == 1
    p.erp.approve_po(1002)
    reports = await p.poll(FLOW)
    assert reports[0].inserted == 1


async def test_reset_needs_a_target(p: Pipeline, invoke: Invoke) -> None:
    result = invoke(["-c", str(p.config_path), "flows", "reset", FLOW])
    assert result.exit_code == 2 and "--to TIME or --baseline" in result.stderr
    future = invoke(["-c", str(p.config_path), "flows", "reset", FLOW, "--to", "2999-01-01", "--yes"])
    assert future.exit_code == 2 and "future" in future.stderr


def test_duration() -> None:
    assert [duration(timedelta(seconds=s)) for s in (0.5, 1, 59, 60, 90, 3600, 5400, 90000)] == [
        "0.5s", "1s", "59s", "1m", "1m30s", "1h", "1h30m", "1d1h"]
