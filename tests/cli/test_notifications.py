"""`notifications list|show`, `replay` and `audit export` over a store the real pipeline filled."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from ml_connector.core.models import Status
from ml_connector.demo import DEMO_AUTH_TOKEN
from ml_connector.sim.twilio import Outcome
from tests.cli.conftest import Invoke
from tests.support.pipeline import Pipeline, pipeline

LUIS = "+13125550187"   # buyer of PO 1002
DANA = "+13125550142"   # buyer of PO 1001


@pytest.fixture
async def filled(tmp_path: Path) -> AsyncIterator[Pipeline]:
    """PO 1001 delivered, 1002 undelivered (30006), 1003 failed at Twilio (21211), 1006 failed (no phone)."""
    async with pipeline(tmp_path) as p:
        p.sim.set_outcome(LUIS, Outcome(status="undelivered", error_code=30006))
        await p.poll()
        for po in (1001, 1002, 1003, 1006):
            p.erp.approve_po(po)
        await p.poll()
        await p.dispatch()
        assert {n.record_key: n.status for n in p.notifications()} == {
            "1001": Status.DELIVERED, "1002": Status.UNDELIVERED, "1003": Status.FAILED, "1006": Status.FAILED,
        }
        yield p


def ids(p: Pipeline) -> dict[str, int]:
    return {n.record_key: n.id for n in p.notifications()}


def listed(invoke: Invoke, p: Pipeline, *args: str) -> list[str]:
    result = invoke(["-c", str(p.config_path), "notifications", "list", "--json", *args])
    assert result.exit_code == 0, result.output
    return [row["record_key"] for row in json.loads(result.stdout)]


async def test_list_table_is_readable_at_120_columns(filled: Pipeline, invoke: Invoke) -> None:
    result = invoke(["-c", str(filled.config_path), "notifications", "list"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert "+1312•••0187" in result.stdout and LUIS not in result.stdout
    assert "[30006]" in result.stdout and "[21211]" in result.stdout
    assert "person.mobile_phone: empty" in result.stdout


async def test_list_filters(filled: Pipeline, invoke: Invoke) -> None:
    p = filled
    assert listed(invoke, p) == ["1006", "1003", "1002", "1001"]
    assert listed(invoke, p, "--status", "failed") == ["1006", "1003"]
    assert listed(invoke, p, "--status", "failed", "--status", "UNDELIVERED") == ["1006", "1003", "1002"]
    assert listed(invoke, p, "--flow", "invoice_validated") == []
    assert listed(invoke, p, "--flow", "po_approved", "--limit", "2") == ["1006", "1003"]
    for spelling in ("(312) 555-0187", "312.555.0187", "+1 312 555 0187", LUIS):
        assert listed(invoke, p, "--recipient", spelling) == ["1002"], spelling
    created = p.notifications()[0].created_at
    before, after = (created - timedelta(minutes=1)).isoformat(), (created + timedelta(minutes=1)).isoformat()
    assert len(listed(invoke, p, "--since", before, "--until", after)) == 4
    assert listed(invoke, p, "--since", after) == []
    assert listed(invoke, p, "--until", before) == []
    assert len(listed(invoke, p, "--since", "7d")) == 4


async def test_list_json_masks_phones(filled: Pipeline, invoke: Invoke) -> None:
    result = invoke(["-c", str(filled.config_path), "notifications", "list", "--json"])
    rows = json.loads(result.stdout)
    assert {row["recipient"] for row in rows} >= {"+1312•••0187", "+1312•••0142"}
    assert LUIS not in result.stdout and DANA not in result.stdout and "5550187" not in result.stdout
    assert all("body" not in row for row in rows)


async def test_list_bad_input(filled: Pipeline, invoke: Invoke) -> None:
    base = ["-c", str(filled.config_path), "notifications", "list"]
    since = invoke([*base, "--since", "yesterday"])
    assert since.exit_code == 2 and "Invalid value for '--since'" in since.stderr
    status = invoke([*base, "--status", "lost"])
    assert status.exit_code == 2 and "Invalid value for '--status'" in status.stderr
    window = invoke([*base, "--since", "2026-01-02", "--until", "2026-01-01"])
    assert window.exit_code == 2 and "later than --since" in window.stderr
    phone = invoke([*base, "--recipient", "12"])
    assert phone.exit_code == 2 and "--recipient" in phone.stderr
    empty = invoke([*base, "--flow", "nope"])
    assert empty.exit_code == 0 and "no notifications match" in empty.stderr


async def test_show(filled: Pipeline, invoke: Invoke) -> None:
    nid = ids(filled)["1002"]
    result = invoke(["-c", str(filled.config_path), "notifications", "show", str(nid)])
    assert result.exit_code == 0
    assert "status: undelivered" in result.stdout and "error_code: 30006" in result.stdout
    assert "body: PO " in result.stdout and LUIS not in result.stdout
    as_json = json.loads(invoke(["-c", str(filled.config_path), "notifications", "show", str(nid), "--json"]).stdout)
    assert as_json["recipient"] == "+1312•••0187" and len(as_json["attempt_history"]) == 1


async def test_show_missing_and_non_numeric(filled: Pipeline, invoke: Invoke) -> None:
    missing = invoke(["-c", str(filled.config_path), "notifications", "show", "999"])
    assert missing.exit_code == 3 and "no notification 999" in missing.stderr
    word = invoke(["-c", str(filled.config_path), "notifications", "show", "seven"])
    assert word.exit_code == 2 and "'seven' is not a valid integer" in word.stderr


# -- replay ----------------------------------------------------------------------------------------

async def test_replay_one_is_sent_again_and_keeps_old_attempts(filled: Pipeline, invoke: Invoke) -> None:
    p = filled
    nid = ids(p)["1002"]
    p.sim.set_outcome(LUIS, Outcome())  # the handset is back
    refused = invoke(["-c", str(p.config_path), "replay", str(nid)])  # 30006 is permanent: a fix, or --force
    assert refused.exit_code == 1 and "[30006] landline or unreachable carrier" in refused.stderr
    result = invoke(["-c", str(p.config_path), "replay", str(nid), "--force"])
    assert result.exit_code == 0, result.output
    assert f"replayed 1 notification(s): {nid}" in result.stdout
    assert p.connector.store.get_notification(nid).status is Status.PENDING  # type: ignore[union-attr]
    p.clock.advance(60)
    await p.dispatch()
    view = p.connector.store.get_notification(nid)
    assert view is not None and view.status is Status.DELIVERED
    assert [(a.attempt_no, a.provider_status) for a in view.attempts] == [(1, "undelivered"), (2, "delivered")]
    assert [m.to for m in p.sim.messages()].count(LUIS) == 2
    replays = [e for e in p.audit() if e.kind == "replay"]
    assert [(e.notification_id, e.detail["previous_status"]) for e in replays] == [(nid, "undelivered")]


async def test_replay_needs_ids_or_a_filter(filled: Pipeline, invoke: Invoke) -> None:
    result = invoke(["-c", str(filled.config_path), "replay"])
    assert result.exit_code == 2 and "give notification ids, or a filter" in result.stderr
    word = invoke(["-c", str(filled.config_path), "replay", "1", "two"])
    assert word.exit_code == 2 and "'two' is not a valid integer" in word.stderr


async def test_replay_refuses_non_replayable_and_missing(filled: Pipeline, invoke: Invoke) -> None:
    delivered = ids(filled)["1001"]
    result = invoke(["-c", str(filled.config_path), "replay", str(delivered)])
    assert result.exit_code == 1
    assert f"notification {delivered}: is delivered; only dead, failed, undelivered" in result.stderr
    missing = invoke(["-c", str(filled.config_path), "replay", "999"])
    assert missing.exit_code == 3 and "notification 999: not found" in missing.stderr
    assert not [e for e in filled.audit() if e.kind == "replay"]


@pytest.mark.parametrize(("answer", "replayed"), [("y\n", True), ("n\n", False), ("", False)])
async def test_replay_several_asks_first(filled: Pipeline, invoke: Invoke, answer: str, replayed: bool) -> None:
    result = invoke(["-c", str(filled.config_path), "replay", "--status", "failed", "--status", "undelivered",
                     "--force"], input=answer)
    assert "Replay these 2 notifications?" in result.stdout
    assert "to replay" in result.stdout
    assert result.exit_code == 1  # 1006 never had a recipient: refused either way
    assert "never had a usable recipient" in result.stderr
    statuses = sorted(str(n.status) for n in filled.notifications())
    expected = ["delivered", "failed", "pending", "pending"] if replayed else \
        ["delivered", "failed", "failed", "undelivered"]
    assert statuses == expected
    if not replayed:
        assert "not replayed (use --yes" in result.stderr


async def test_replay_yes_skips_the_question(filled: Pipeline, invoke: Invoke) -> None:
    result = invoke(["-c", str(filled.config_path), "replay", "--flow", "po_approved", "--yes", "--json", "--force"])
    assert result.exit_code == 1, result.output  # 1006 is refused: it never had a recipient
    assert "?" not in result.stdout
    assert sorted(json.loads(result.stdout)["replayed"]) == sorted(ids(filled)[k] for k in ("1002", "1003"))


async def test_replay_filter_matching_nothing_is_not_found(filled: Pipeline, invoke: Invoke) -> None:
    result = invoke(["-c", str(filled.config_path), "replay", "--flow", "invoice_validated", "--yes"])
    assert result.exit_code == 3 and "nothing to replay" in result.stderr


# -- audit export ----------------------------------------------------------------------------------

def _assert_no_personal_data(text: str, p: Pipeline) -> None:
    for n in p.notifications():
        assert n.body not in text
        if n.recipient.startswith("+"):
            assert n.recipient not in text and n.recipient[2:] not in text
    assert DEMO_AUTH_TOKEN not in text
    assert (p.config_path.parent / "ml-connector.key").read_text(encoding="utf-8").strip() not in text


async def test_audit_export_jsonl_to_stdout(filled: Pipeline, invoke: Invoke) -> None:
    result = invoke(["-c", str(filled.config_path), "audit", "export", "--format", "jsonl"])
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(filled.audit())
    assert {"created", "claimed", "attempt", "status"} <= {row["kind"] for row in rows}
    assert f"exported {len(rows)} audit row(s)" in result.stderr
    _assert_no_personal_data(result.stdout, filled)


async def test_audit_export_csv_to_file_with_range(filled: Pipeline, invoke: Invoke, tmp_path: Path) -> None:
    entries = filled.audit()
    middle = entries[len(entries) // 2].at
    out = tmp_path / "audit.csv"
    result = invoke(["-c", str(filled.config_path), "audit", "export", "--format", "csv",
                     "--since", middle.isoformat(), "-o", str(out)])
    assert result.exit_code == 0 and result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == sum(1 for e in entries if e.at >= middle) > 0
    assert all(json.loads(row["detail"]) is not None for row in rows)
    until = invoke(["-c", str(filled.config_path), "audit", "export", "--until", middle.isoformat()])
    assert len(until.stdout.splitlines()) == sum(1 for e in entries if e.at < middle)
    _assert_no_personal_data(out.read_text(encoding="utf-8") + until.stdout, filled)


async def test_audit_export_unwritable_output(filled: Pipeline, invoke: Invoke, tmp_path: Path) -> None:
    result = invoke(["-c", str(filled.config_path), "audit", "export", "-o", str(tmp_path / "no" / "such" / "x")])
    assert result.exit_code == 1 and "No such file or directory" in result.stderr


async def test_interrupt_exits_130(filled: Pipeline, invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ml_connector.store.sql.SqlStore.audit", interrupted)
    result = invoke(["-c", str(filled.config_path), "audit", "export"])
    assert result.exit_code == 130 and "interrupted" in result.stderr


async def test_audit_export_filters(filled: Pipeline, invoke: Invoke) -> None:
    nid = ids(filled)["1002"]
    base = ["-c", str(filled.config_path), "audit", "export"]
    rows = [json.loads(x) for x in invoke([*base, "--notification", str(nid)]).stdout.splitlines()]
    assert rows and {r["notification_id"] for r in rows} == {nid}
    polls = [json.loads(x) for x in invoke([*base, "--kind", "poll"]).stdout.splitlines()]
    assert polls and {r["kind"] for r in polls} == {"poll"}
    other = invoke([*base, "--flow", "invoice_validated", "--kind", "created"])
    assert other.exit_code == 0 and other.stdout == ""
    several = [json.loads(x) for x in invoke([*base, "--kind", "created", "--kind", "claimed"]).stdout.splitlines()]
    assert {r["kind"] for r in several} == {"created", "claimed"}
