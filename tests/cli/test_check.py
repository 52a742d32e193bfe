"""`check` against the Twilio simulator served on loopback and the demo ERP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import Invoke, ServedSim, free_port, write_config


def test_every_system_reachable(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim) -> None:
    path = write_config(tmp_path, served_twilio.url)
    result = invoke(["-c", str(path), "check"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    rows = [line.split() for line in out.splitlines()]  # piped: no boxes
    assert sum(1 for r in rows if r[:1] in (["store"], ["twilio"], ["source"]) and r[2:3] == ["ok"]) == 3, out
    assert "FAILED" not in out
    assert f"sqlite:///{tmp_path}/ml-connector.db" in out.replace("\n", "").replace("│", "").replace(" ", "")
    assert "ml-connector simulator" in out
    assert "entity purchase_order: ok" in out
    assert max(len(line) for line in out.splitlines()) <= 120, [len(line) for line in out.splitlines()]


def test_wrong_twilio_token_shows_twilio_code(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim) -> None:
    def wrong_token(config: dict[str, Any]) -> None:
        config["twilio"]["accounts"]["main"]["auth_token"] = "not-the-token"

    path = write_config(tmp_path, served_twilio.url, tweak=wrong_token)
    result = invoke(["-c", str(path), "check"])
    assert result.exit_code == 1
    assert "error 20003" in result.stdout and "auth_token" in result.stdout
    assert "not-the-token" not in result.output
    assert "1 of 3 check(s) failed: twilio main" in result.stderr


def test_unreachable_erp_is_precise(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim) -> None:
    port = free_port()  # nothing listens here

    def unreachable(config: dict[str, Any]) -> None:
        config["sources"]["erp"]["url"] = f"postgresql://erp_reader:erp-secret@127.0.0.1:{port}/erp"

    path = write_config(tmp_path, served_twilio.url, tweak=unreachable)
    result = invoke(["-c", str(path), "--verbose", "check", "--json"])
    assert result.exit_code == 1
    lines = {line["kind"]: line for line in json.loads(result.stdout)}
    assert lines["store"]["ok"] and lines["twilio"]["ok"]
    source = lines["source"]
    assert source["name"] == "erp" and not source["ok"]
    [detail] = source["details"]
    assert f"127.0.0.1:{port}" in detail and "refused" in detail.lower()
    assert "erp-secret" not in result.output


def test_check_json_lists_every_system(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim) -> None:
    path = write_config(tmp_path, served_twilio.url)
    result = invoke(["-c", str(path), "check", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [(d["kind"], d["name"], d["ok"]) for d in data] == [
        ("store", "sqlite", True), ("twilio", "main", True), ("source", "erp", True)
    ]
    assert data[0]["details"][0] == f"sqlite:///{tmp_path}/ml-connector.db"
    assert data[1]["details"][0] == served_twilio.url
    assert data[1]["error_code"] is None


def test_unreachable_twilio(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path, f"http://127.0.0.1:{free_port()}")
    result = invoke(["-c", str(path), "check", "--json"])
    assert result.exit_code == 1
    twilio = next(d for d in json.loads(result.stdout) if d["kind"] == "twilio")
    assert twilio["details"][1].startswith("cannot reach http://127.0.0.1:")


def test_check_shows_an_account_held_by_the_running_connector(
    tmp_path: Path, invoke: Invoke, served_twilio: ServedSim
) -> None:
    from datetime import UTC, datetime

    from ml_connector.app import Connector
    from ml_connector.config import load_config

    def wrong_token(config: dict[str, Any]) -> None:
        config["twilio"]["accounts"]["main"]["auth_token"] = "not-the-token"

    path = write_config(tmp_path, served_twilio.url, tweak=wrong_token)
    connector = Connector(load_config(path, {}), env={})
    try:  # what the dispatcher of a running connector records when Twilio refuses the account
        connector.store.record_account_hold("main", "[20003] Authentication Error", datetime.now(UTC))
    finally:
        connector.store.close()
    result = invoke(["-c", str(path), "check"])
    assert result.exit_code == 1
    flat = " ".join(result.stdout.replace("│", " ").split())
    assert "sending held by the running connector" in flat and "20003" in flat
