"""`check` shows a system reached without certificate verification; `ca_bundle_only` is validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import Invoke, ServedSim, write_config


def test_check_warns_about_verify_tls_false(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim) -> None:
    def unverified(config: dict[str, Any]) -> None:
        config["twilio"]["accounts"]["main"]["verify_tls"] = False

    path = write_config(tmp_path, served_twilio.url, tweak=unverified)
    result = invoke(["-c", str(path), "check", "--json"])
    assert result.exit_code == 0, result.output
    lines = {line["kind"]: line for line in json.loads(result.stdout)}
    assert lines["twilio"]["ok"]
    assert any("verify_tls is false" in detail for detail in lines["twilio"]["details"])
    assert not any("verify_tls" in detail for detail in lines["source"]["details"] + lines["store"]["details"])


def test_check_says_nothing_when_tls_is_verified(tmp_path: Path, invoke: Invoke, served_twilio: ServedSim) -> None:
    result = invoke(["-c", str(write_config(tmp_path, served_twilio.url)), "check"])
    assert result.exit_code == 0, result.output
    assert "verify_tls" not in result.output


def test_ca_bundle_only_needs_a_ca_bundle(tmp_path: Path, invoke: Invoke) -> None:
    def only(config: dict[str, Any]) -> None:
        config["twilio"]["accounts"]["main"]["ca_bundle_only"] = True

    path = write_config(tmp_path, tweak=only)
    result = invoke(["-c", str(path), "validate"])
    assert result.exit_code == 2
    assert "twilio.accounts.main" in result.output + result.stderr
    assert "ca_bundle_only is set but ca_bundle is not" in result.output + result.stderr
