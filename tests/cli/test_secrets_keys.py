"""`secrets set|list|delete`, `${secret:NAME}` at `validate`, and `keys status|new|rotate`, as a user runs them."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ml_connector import cli_secrets
from ml_connector.store.crypto import KeyRing, load_keyring
from tests.cli.conftest import Invoke, write_config

VALUE = "s3cr3t-erp-pass w/ spaces"


def use_secret(config: dict[str, Any]) -> None:
    config["twilio"]["accounts"]["main"]["auth_token"] = "${secret:TWILIO_TOKEN}"


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    return write_config(tmp_path, tweak=use_secret)


def test_set_from_stdin_then_validate_reads_it(invoke: Invoke, configured: Path) -> None:
    before = invoke(["--config", str(configured), "validate"])
    assert before.exit_code == 2
    assert "auth_token: secret TWILIO_TOKEN is not set in the store" in before.stderr
    result = invoke(["--config", str(configured), "secrets", "set", "TWILIO_TOKEN"], input=VALUE + "\n")
    assert result.exit_code == 0, result.output
    assert "secret TWILIO_TOKEN stored" in result.stdout and VALUE not in result.output
    after = invoke(["--config", str(configured), "validate"])
    assert after.exit_code == 0, after.output


def test_the_value_is_kept_exactly_but_one_trailing_newline(invoke: Invoke, configured: Path) -> None:
    from ml_connector.store.sql import SqlStore

    invoke(["--config", str(configured), "secrets", "set", "A"], input="two lines\nend\n")
    invoke(["--config", str(configured), "secrets", "set", "B"], input="crlf\r\n")
    invoke(["--config", str(configured), "secrets", "set", "C"], input="  no newline  ")
    store = SqlStore(f"sqlite:///{configured.parent / 'ml-connector.db'}",
                     load_keyring(configured.parent / "ml-connector.key", {}))
    try:
        assert store.secrets().values(["A", "B", "C"]) == {"A": "two lines\nend", "B": "crlf", "C": "  no newline  "}
    finally:
        store.close()


def test_prompted_with_hidden_input_on_a_terminal(invoke: Invoke, configured: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_secrets, "_stdin_is_terminal", lambda: True)
    result = invoke(["--config", str(configured), "secrets", "set", "TWILIO_TOKEN"], input=f"{VALUE}\n{VALUE}\n")
    assert result.exit_code == 0, result.output
    assert "value of TWILIO_TOKEN: " in result.output and "Repeat for confirmation" in result.output
    assert VALUE not in result.output  # hidden input is not echoed
    mismatch = invoke(["--config", str(configured), "secrets", "set", "X"], input="one\ntwo\n")
    assert "do not match" in mismatch.output and mismatch.exit_code != 0


def test_list_shows_names_and_dates_never_values(invoke: Invoke, configured: Path) -> None:
    empty = invoke(["--config", str(configured), "secrets", "list"])
    assert empty.exit_code == 0 and "no secrets stored" in empty.stdout
    invoke(["--config", str(configured), "secrets", "set", "TWILIO_TOKEN"], input=VALUE)
    invoke(["--config", str(configured), "secrets", "set", "erp.password"], input="other-" + VALUE)
    listed = invoke(["--config", str(configured), "secrets", "list"])
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split()[0] == "NAME" and [line.split()[0] for line in lines[1:]] == ["TWILIO_TOKEN", "erp.password"]
    assert "s3cr3t" not in listed.output
    as_json = json.loads(invoke(["--config", str(configured), "secrets", "list", "--json"]).stdout)
    assert [s["name"] for s in as_json] == ["TWILIO_TOKEN", "erp.password"]
    assert set(as_json[0]) == {"name", "set_at", "created_at"}


def test_delete_asks_and_unknown_is_not_found(invoke: Invoke, configured: Path) -> None:
    invoke(["--config", str(configured), "secrets", "set", "TWILIO_TOKEN"], input=VALUE)
    kept = invoke(["--config", str(configured), "secrets", "delete", "TWILIO_TOKEN"], input="n\n")
    assert kept.exit_code == 1 and "nothing deleted" in kept.stdout
    gone = invoke(["--config", str(configured), "secrets", "delete", "TWILIO_TOKEN"], input="y\n")
    assert gone.exit_code == 0 and "secret TWILIO_TOKEN deleted" in gone.stdout
    missing = invoke(["--config", str(configured), "secrets", "delete", "TWILIO_TOKEN", "--yes"])
    assert missing.exit_code == 3 and "no secret named TWILIO_TOKEN" in missing.stderr


def test_a_value_is_never_an_argument(invoke: Invoke, configured: Path) -> None:
    result = invoke(["--config", str(configured), "secrets", "set", "TWILIO_TOKEN", VALUE])
    assert result.exit_code == 2  # unexpected extra argument


def test_empty_value_and_bad_name_are_refused(invoke: Invoke, configured: Path) -> None:
    empty = invoke(["--config", str(configured), "secrets", "set", "TOKEN"], input="\n")
    assert empty.exit_code == 2 and "empty" in empty.stderr
    bad = invoke(["--config", str(configured), "secrets", "set", "a b"], input="x")
    assert bad.exit_code == 2 and "not usable" in bad.stderr


def test_keys_rotate_with_a_new_key_then_prune(invoke: Invoke, configured: Path) -> None:
    key_file = configured.parent / "ml-connector.key"
    first = load_keyring(key_file, {}).fingerprint
    invoke(["--config", str(configured), "secrets", "set", "TWILIO_TOKEN"], input=VALUE)
    status = invoke(["--config", str(configured), "keys", "status"])
    assert status.exit_code == 0 and f"current key: {first}" in status.stdout
    rotated = invoke(["--config", str(configured), "keys", "rotate", "--new-key"])
    assert rotated.exit_code == 0, rotated.output
    ring = load_keyring(key_file, {})
    assert ring.fingerprints[1:] == (first,) and ring.fingerprint != first
    assert f"rotation to key {ring.fingerprint} finished: 1 rows re-encrypted (secrets 1)" in rotated.stdout
    data = json.loads(invoke(["--config", str(configured), "keys", "status", "--json"]).stdout)
    assert data["current"] == ring.fingerprint and data["rotation"] is None
    assert sum(data["on_older_keys"].values()) == 0
    pruned = invoke(["--config", str(configured), "keys", "rotate", "--prune"])
    assert pruned.exit_code == 0 and "removed 1 older key(s)" in pruned.stdout
    assert load_keyring(key_file, {}).fingerprints == (ring.fingerprint,)
    assert invoke(["--config", str(configured), "validate"]).exit_code == 0  # the secret reads with the new key


def test_keys_from_the_environment_cannot_be_changed_by_rotate(invoke: Invoke, configured: Path) -> None:
    key = invoke(["keys", "new"]).stdout.strip()
    assert len(key) == 44 and KeyRing(base64.urlsafe_b64decode(key)).fingerprint
    result = invoke(["--config", str(configured), "keys", "rotate", "--new-key"], env={"MLC_MASTER_KEY": key})
    assert result.exit_code == 2 and "MLC_MASTER_KEY" in result.stderr


def test_rotating_through_the_environment(invoke: Invoke, configured: Path) -> None:
    old = (configured.parent / "ml-connector.key").read_text().strip()
    invoke(["--config", str(configured), "secrets", "set", "TWILIO_TOKEN"], input=VALUE)
    new = invoke(["keys", "new"]).stdout.strip()
    both = {"MLC_MASTER_KEY": f"{new},{old}"}
    result = invoke(["--config", str(configured), "keys", "rotate"], env=both)
    assert result.exit_code == 0 and "1 rows re-encrypted" in result.stdout
    assert invoke(["--config", str(configured), "validate"], env={"MLC_MASTER_KEY": new}).exit_code == 0
    refused = invoke(["--config", str(configured), "validate"], env={"MLC_MASTER_KEY": old})
    assert refused.exit_code == 2 and "secret TWILIO_TOKEN cannot be read" in refused.stderr
