"""An account with only an API key: `validate` warns that callbacks cannot be verified, `run` starts
the poller and dispatcher (the status sweep brings delivery statuses) with one warning."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml_connector.config import load_config
from ml_connector.demo import DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, DEMO_SENDER
from ml_connector.sim.demo_erp import DemoErp
from ml_connector.sim.twilio import Account, TwilioSim
from ml_connector.sim.twilio_state import ApiKey
from ml_connector.store.crypto import load_keyring
from ml_connector.store.port import NotificationFilter
from ml_connector.store.sql import SqlStore
from tests.cli.conftest import Invoke, ServedSim, served_in_thread, write_config
from tests.cli.test_processes import finish, listening, processes, start, wait_for

__all__ = ["processes"]  # the fixture

KEY_SID = "SK" + "c" * 32
KEY_SECRET = "api-key-secret-for-tests-0123456"  # noqa: S105 - a test secret


def api_key_only(config: dict[str, Any]) -> None:
    account = config["twilio"]["accounts"]["main"]
    del account["auth_token"]
    account["api_key_sid"], account["api_key_secret"] = KEY_SID, KEY_SECRET
    del config["webhooks"]["public_url"]  # signed callbacks need an Auth Token: validate refuses it
    config["dispatcher"] = {**config.get("dispatcher", {}), "status_check_after": "2s"}


@pytest.fixture
def served_twilio_with_key() -> Iterator[ServedSim]:
    sim = TwilioSim(accounts=(Account(sid=DEMO_ACCOUNT_SID, auth_token=DEMO_AUTH_TOKEN, numbers=(DEMO_SENDER,)),),
                    api_keys=(ApiKey(sid=KEY_SID, secret=KEY_SECRET, account_sid=DEMO_ACCOUNT_SID),), services=())
    yield from served_in_thread(sim)


def test_validate_says_callbacks_cannot_be_verified_without_an_auth_token(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path, tweak=api_key_only)

    result = invoke(["-c", str(path), "validate"])

    assert result.exit_code == 0, result.stderr
    assert "valid" in result.stdout
    assert ("warning: twilio.accounts.main: no auth_token (API key only): Twilio signs callbacks with the "
            "Auth Token, so this account's status callbacks cannot be verified") in result.stderr
    assert "`ml-connector run` starts without the web role" in result.stderr


def test_validate_is_silent_about_callbacks_with_an_auth_token(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke(["-c", str(write_config(tmp_path)), "validate"])
    assert result.exit_code == 0
    assert "warning" not in result.stderr


def test_run_with_an_api_key_only_sends_and_warns_once(
    tmp_path: Path, cli_env: dict[str, str], served_twilio_with_key: ServedSim,
    processes: list[subprocess.Popen[str]],
) -> None:
    path = write_config(tmp_path, served_twilio_with_key.url, tweak=api_key_only)
    config = load_config(path, {})
    run = start(processes, ["-c", str(path), "run"], cli_env)
    sim = served_twilio_with_key.sim
    store = SqlStore(config.store.url, load_keyring(config.store.key_file, {}))
    try:
        wait_for(lambda: any(e.kind == "poll" and e.flow == "po_approved" for e in store.audit(None, None))
                 or run.poll() is not None, "the first poll")
    finally:
        store.close()
    DemoErp(tmp_path / "demo-erp.db").approve_po(1001)
    wait_for(lambda: any(m.to == "+13125550142" for m in sim.messages()) or run.poll() is not None, "the SMS")
    assert run.poll() is None, run.communicate()
    assert not listening(config.webhooks.port)
    store = SqlStore(config.store.url, load_keyring(config.store.key_file, {}))
    try:  # no callbacks: the status sweep asks Twilio for the final status
        wait_for(lambda: [n.status.value for n in store.list_notifications(NotificationFilter(flow="po_approved"))]
                 == ["delivered"] or run.poll() is not None, "the delivery status from the sweep")
    finally:
        store.close()

    code, _, err = finish(run, signal.SIGTERM)

    assert code == 0, err
    assert err.count("warning:") == 1, err
    assert "callbacks cannot be verified and the web role is not started" in err
    assert "Running: poller, dispatcher" in err


def test_run_with_an_explicit_web_role_and_no_auth_token_is_a_config_error(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path, tweak=api_key_only)

    result = invoke(["-c", str(path), "run", "--role", "web"])

    assert result.exit_code == 2
    assert "webhooks need at least one AccountSid -> Auth Token" in result.stderr
