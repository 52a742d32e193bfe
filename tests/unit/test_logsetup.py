"""Log output: JSON lines with context fields, and no secret or phone number in either format."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml_connector import logctx, logsetup
from tests.cli.conftest import run_cli, write_config

TOKEN = "s3cr3t-auth-token-value"  # noqa: S105 - a test value
PHONE = "+13125550142"


@pytest.fixture
def logs() -> Iterator[None]:
    """Leave the root logger as it was: configure() changes process-wide state."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    touched = ["ml_connector", "ml_connector.sources", "httpx", "ml_connector.runtime"]
    levels = {name: logging.getLogger(name).level for name in touched}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    logsetup._redact.secrets.clear()


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_carry_context_and_hide_secrets_and_phones(logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    logsetup.configure(level=logging.DEBUG, fmt="json", secrets=[TOKEN])
    log = logging.getLogger("ml_connector.runtime.dispatcher")
    with logctx.bound(flow="po_approved", notification_id=42, twilio_sid="SM" + "a" * 32):
        log.warning("notification %s to %s: failed with token %s", 42, PHONE, TOKEN)
        try:
            raise RuntimeError(f"Twilio said no to {PHONE} (auth {TOKEN})")
        except RuntimeError:
            log.exception("send crashed")
    logging.getLogger("httpx").info('HTTP Request: GET %s "HTTP/1.1 200 OK"',
                                    f"https://lookups.twilio.com/v2/PhoneNumbers/{PHONE}?Token={TOKEN}")
    logging.getLogger("ml_connector.app").info("no context here", extra={"flow": "invoice_validated"})
    err = capsys.readouterr().err
    assert PHONE not in err and TOKEN not in err and "5550142" not in err
    first, crashed, client, extra = _lines(err)
    assert first["level"] == "WARNING" and first["logger"] == "ml_connector.runtime.dispatcher"
    assert (first["flow"], first["notification_id"], first["twilio_sid"]) == ("po_approved", 42, "SM" + "a" * 32)
    assert "+1312•••0142" in first["message"] and "****" in first["message"]
    assert "RuntimeError" in crashed["exception"] and "+1312•••0142" in crashed["exception"]
    assert "flow" not in client and "PhoneNumbers/+1312•••0142" in client["message"]
    assert extra["flow"] == "invoice_validated" and "notification_id" not in extra


def test_human_format_goes_through_the_same_redaction(logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    logsetup.configure(level=logging.INFO, fmt="human", secrets=[TOKEN])
    with logctx.bound(flow="po_approved"):
        logging.getLogger("ml_connector.app").warning("to %s using %s", PHONE, TOKEN)
    err = capsys.readouterr().err
    assert PHONE not in err and TOKEN not in err
    assert "WARNING ml_connector.app: to +1312•••0142 using **** [flow=po_approved]" in err


def test_a_level_per_component(logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    logsetup.configure(level=logging.WARNING, fmt="json", levels={"ml_connector.sources": "DEBUG"})
    logging.getLogger("ml_connector.sources.sql").debug("shown")
    logging.getLogger("ml_connector.runtime.poller").info("hidden")
    assert [line["message"] for line in _lines(capsys.readouterr().err)] == ["shown"]


def test_context_stays_with_its_block() -> None:
    with logctx.bound(flow="a", notification_id=1):
        assert logctx.current() == {"flow": "a", "notification_id": 1}
    assert logctx.current() == {}


def test_secrets_of_a_config_include_tokens_and_url_passwords(tmp_path: Path) -> None:
    from ml_connector.config import load_config

    def tweak(config: dict[str, Any]) -> None:
        config["store"]["url"] = "postgresql://mlc:db-password-1@127.0.0.1/mlc"

    config = load_config(write_config(tmp_path, tweak=tweak), {})
    found = logsetup.secrets_of(config)
    assert "db-password-1" in found
    assert config.twilio.accounts["main"].auth_token.get_secret_value() in found  # type: ignore[union-attr]


def test_the_configs_logging_section_and_secrets_apply_once_it_is_loaded(
        tmp_path: Path, logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    """A command that loads the config switches to its format and masks its secrets from then on."""
    token = "simulator-token-0123456789"

    def tweak(config: dict[str, Any]) -> None:
        config["twilio"]["accounts"]["main"]["auth_token"] = token
        config["logging"] = {"format": "json", "levels": {"ml_connector.sources": "DEBUG"}}

    result = run_cli(["-c", str(write_config(tmp_path, tweak=tweak)), "validate"])
    assert result.exit_code == 0, result.output
    assert logging.getLogger("ml_connector.sources").level == logging.DEBUG
    logging.getLogger("ml_connector.sources.sql").debug("login with %s for %s", token, PHONE)
    (line,) = _lines(capsys.readouterr().err)
    assert line["message"] == "login with **** for +1312•••0142"


def test_the_command_line_wins_over_the_config(tmp_path: Path, logs: None,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    def tweak(config: dict[str, Any]) -> None:
        config["logging"] = {"format": "json", "levels": {"ml_connector.sources": "DEBUG"}}

    path = write_config(tmp_path, tweak=tweak)
    result = run_cli(["--log-format", "human", "--log-level", "ml_connector.sources=ERROR", "-c", str(path),
                      "validate"])
    assert result.exit_code == 0, result.output
    assert logging.getLogger("ml_connector.sources").level == logging.ERROR
    logging.getLogger("ml_connector.sources.sql").error("plain")
    err = capsys.readouterr().err
    assert "ERROR ml_connector.sources.sql: plain" in err and not err.lstrip().startswith("{")


def test_cli_rejects_a_bad_log_level(tmp_path: Path, logs: None) -> None:
    result = run_cli(["--log-level", "ml_connector=LOUD", "-c", str(write_config(tmp_path)), "validate"])
    assert result.exit_code == 2
    assert "'LOUD' is not a log level" in result.stderr


async def test_a_failed_send_logs_one_json_line_naming_flow_and_notification(
        tmp_path: Path, logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the real dispatcher: Twilio refuses a number (21211); the line says which
    notification of which flow, and never shows the number or the account's token."""
    import contextlib
    import random
    import sqlite3

    from ml_connector.demo import DEMO_AUTH_TOKEN
    from tests.support.pipeline import pipeline

    async with pipeline(tmp_path) as p:
        logsetup.configure(level=logging.WARNING, fmt="json", secrets=logsetup.secrets_of(p.connector.config))
        p.erp.create_invoice(random.Random(1))
        invoice = max(int(str(r["invoice_id"])) for r in p.erp.rows("ap_invoices"))
        with contextlib.closing(sqlite3.connect(tmp_path / "demo-erp.db")) as conn, conn:
            conn.execute("UPDATE ap_invoices SET approver_phone = '+15005550001' WHERE invoice_id = ?", (invoice,))
        await p.poll()
        p.erp.validate_invoice(invoice)
        await p.poll()
        await p.dispatch()
        (failed,) = [n for n in p.notifications() if n.error_code == 21211]
    err = capsys.readouterr().err
    assert "+15005550001" not in err and DEMO_AUTH_TOKEN not in err
    lines = [line for line in _lines(err) if "21211" in line["message"]]
    assert len(lines) == 1, err
    assert lines[0]["flow"] == "invoice_validated"
    assert lines[0]["notification_id"] == failed.id
    assert "+1500•••0001" in lines[0]["message"]


async def test_the_embedded_servers_errors_go_through_the_same_format_and_redaction(
        logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    import httpx

    from ml_connector.web.server import serving

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError(f"crashed on {PHONE}")

    logsetup.configure(level=logging.WARNING, fmt="json")
    async with serving(broken) as url, httpx.AsyncClient() as client:
        assert (await client.get(url)).status_code == 500
    (line,) = [line for line in _lines(capsys.readouterr().err) if line["logger"] == "uvicorn.error"]
    assert "RuntimeError: crashed on +1312•••0142" in line["exception"]
    assert PHONE not in json.dumps(line)
