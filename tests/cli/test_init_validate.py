"""`init`, `validate` and the config-finding rules every command shares."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import yaml

from tests.cli.conftest import Invoke, write_config

STARTER_ENV = {
    "MLC_PUBLIC_URL": "https://connector.example.com",
    "TWILIO_ACCOUNT_SID": "AC" + "b" * 32,
    "TWILIO_AUTH_TOKEN": "starter-token",
    "TWILIO_FROM_NUMBER": "+15005550006",
    "ERP_DATABASE_URL": "sqlite:///erp.db",
}


def test_init_writes_commented_config_and_private_key(tmp_path: Path, invoke: Invoke) -> None:
    config = tmp_path / "ml-connector.yaml"
    result = invoke(["--config", str(config), "init"])
    assert result.exit_code == 0, result.output
    text = config.read_text(encoding="utf-8")
    assert text.count("\n#") > 20 and "flows:" in text
    key = tmp_path / "ml-connector.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "back it up" in result.output
    # The starter config is valid once its ${VARS} are set.
    validated = invoke(["--config", str(config), "validate"], env=STARTER_ENV)
    assert validated.exit_code == 0, validated.output
    assert "valid (1 source(s), 1 flow(s)" in validated.output


def test_init_refuses_to_overwrite_and_never_replaces_the_key(tmp_path: Path, invoke: Invoke) -> None:
    config = tmp_path / "ml-connector.yaml"
    assert invoke(["-c", str(config), "init"]).exit_code == 0
    config.write_text("# mine\n", encoding="utf-8")
    key = (tmp_path / "ml-connector.key").read_bytes()

    refused = invoke(["-c", str(config), "init"])
    assert refused.exit_code == 2
    assert "use --force" in refused.stderr
    assert config.read_text(encoding="utf-8") == "# mine\n"

    forced = invoke(["-c", str(config), "init", "--force"])
    assert forced.exit_code == 0
    assert "kept existing key file" in forced.output
    assert config.read_text(encoding="utf-8") != "# mine\n"
    assert (tmp_path / "ml-connector.key").read_bytes() == key


def test_init_creates_a_missing_key_where_an_existing_config_names_it(tmp_path: Path, invoke: Invoke) -> None:
    config = tmp_path / "ml-connector.yaml"
    config.write_text("store:\n  key_file: secrets/mlc.key\n", encoding="utf-8")
    result = invoke(["-c", str(config), "init"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "secrets" / "mlc.key").stat().st_mode) == 0o600
    assert config.read_text(encoding="utf-8") == "store:\n  key_file: secrets/mlc.key\n"
    assert "kept it" in result.stderr


def test_init_on_a_directory_is_a_usage_error(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke(["-c", str(tmp_path), "init", "--force"])
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


def test_validate_valid_config_prints_summary(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path)
    result = invoke(["-c", str(path), "validate"])
    assert result.exit_code == 0, result.output
    assert f"{path}: valid (1 source(s), 2 flow(s) of which 2 enabled, 1 Twilio account(s))" in result.stdout


def _break(config: dict[str, Any]) -> None:
    config["webhooks"]["port"] = 70000
    config["flows"]["po_approved"]["sender"] = "main.nobody"
    config["flows"]["invoice_validated"]["shedule"] = {"every": "5s"}


def test_validate_reports_every_problem_with_file_line_and_key_path(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path, tweak=_break)
    result = invoke(["-c", str(path), "validate"])
    assert result.exit_code == 2
    assert result.stdout == ""
    problems = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert len(problems) == 3, result.stderr
    lines = path.read_text(encoding="utf-8").splitlines()
    for problem, key in zip(sorted(problems, key=lambda p: int(p.split(":")[1])),
                            ("port", "sender", "shedule"), strict=True):
        match = re.match(rf"^{re.escape(str(path))}:(\d+): ([\w.\[\]]+): ", problem)
        assert match, problem
        assert lines[int(match.group(1)) - 1].strip().startswith(f"{key}:"), problem
    assert any("webhooks.port:" in p for p in problems)
    assert any("flows.po_approved.sender:" in p for p in problems)
    assert any("flows.invoice_validated.shedule: unknown key" in p for p in problems)


def test_validate_template_error_names_flow_template_and_line(tmp_path: Path, invoke: Invoke) -> None:
    def bad_template(config: dict[str, Any]) -> None:
        config["flows"]["invoice_validated"]["template"] = "Invoice {{ invoice_num }}\nfrom {{ vendor_name }"

    path = write_config(tmp_path, tweak=bad_template)
    result = invoke(["-c", str(path), "validate"])
    assert result.exit_code == 2
    [problem] = result.stderr.splitlines()
    match = re.match(rf"^error: {re.escape(str(path))}:(\d+): flows\.invoice_validated\.template: "
                     r"line 2 of the template: .*unexpected '}'", problem)
    assert match, problem
    assert path.read_text(encoding="utf-8").splitlines()[int(match.group(1)) - 1].strip().startswith("template:")
    assert "po_approved" not in result.stderr


def test_missing_config_file(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke(["-c", str(tmp_path / "nope.yaml"), "validate"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: file not found"


def test_config_path_is_a_directory(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke(["-c", str(tmp_path), "notifications", "list"])
    assert result.exit_code == 2
    assert f"{tmp_path}: cannot read" in result.stderr


def test_mlc_config_is_used_when_config_option_is_absent(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path)
    result = invoke(["validate"], env={"MLC_CONFIG": str(path)})
    assert result.exit_code == 0, result.output
    assert str(path) in result.stdout
    # --config wins over MLC_CONFIG.
    other = invoke(["--config", str(tmp_path / "other.yaml"), "validate"], env={"MLC_CONFIG": str(path)})
    assert other.exit_code == 2 and "other.yaml: file not found" in other.stderr


def test_unknown_command_and_option_are_usage_errors(invoke: Invoke) -> None:
    unknown = invoke(["frobnicate"])
    assert unknown.exit_code == 2 and "No such command 'frobnicate'" in unknown.stderr
    option = invoke(["validate", "--frob"])
    assert option.exit_code == 2 and "No such option '--frob'" in option.stderr


def test_missing_environment_variable_is_a_config_problem(tmp_path: Path, invoke: Invoke) -> None:
    def needs_env(config: dict[str, Any]) -> None:
        config["twilio"]["accounts"]["main"]["auth_token"] = "${MLC_TEST_UNSET_TOKEN}"

    path = write_config(tmp_path, tweak=needs_env)
    result = invoke(["-c", str(path), "check"], env={"MLC_TEST_UNSET_TOKEN": None})
    assert result.exit_code == 2
    assert "twilio.accounts.main.auth_token: environment variable MLC_TEST_UNSET_TOKEN is not set" in result.stderr


def test_missing_key_file_says_how_to_create_one(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path)
    (tmp_path / "ml-connector.key").unlink()
    result = invoke(["-c", str(path), "notifications", "list"])
    assert result.exit_code == 2
    assert "ml-connector init" in result.stderr


def test_written_config_round_trips(tmp_path: Path) -> None:
    """The helper writes what the demo runs (guards the other tests' assumptions)."""
    data = yaml.safe_load(write_config(tmp_path).read_text(encoding="utf-8"))
    assert set(data["flows"]) == {"po_approved", "invoice_validated"}
