"""`run` at start: a short summary, a port in use named with the setting that chose it, no alembic chatter."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from ml_connector.app import Connector
from ml_connector.cli_run import startup_summary
from ml_connector.config import load_config
from tests.cli.conftest import write_config
from tests.cli.test_processes import SCRIPT


def test_startup_summary(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    app = Connector(load_config(path, {}), env={})
    try:
        app.store.set_flow_paused("invoice_validated", True, "alice")
        lines = startup_summary(app, ("poller", "dispatcher", "web"))
    finally:
        app.store.close()
    text = "\n".join(lines)
    assert lines[0].startswith("ml-connector running (poller, dispatcher, web) as ")
    assert "store: sqlite:///" in text and "ml-connector.db" in text
    assert "flow po_approved: erp purchase_order every 1s" in text
    assert "flow invoice_validated: erp invoice every 1s (paused" in text
    assert f"listening on 127.0.0.1:{app.webhook_port} (webhooks.port in {path})" in text
    assert "Twilio calls http://127.0.0.1:" in text and "/twilio/status" in text
    web_only = "\n".join(startup_summary(app, ("web",)))
    assert "flow " not in web_only and "listening on" in web_only


def test_port_in_use_names_the_port_and_its_setting(tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = write_config(tmp_path)
    port = load_config(path, {}).webhooks.port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        result = subprocess.run([SCRIPT, "-c", str(path), "run"], env=cli_env, capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 1, result.stderr
        assert f"webhook port {port} on 127.0.0.1 is already in use" in result.stderr
        assert f"chosen by webhooks.port in {path}" in result.stderr and "Traceback" not in result.stderr
        env = {**cli_env, "MLC_WEBHOOK_PORT": str(port)}
        by_env = subprocess.run([SCRIPT, "-c", str(path), "run", "--role", "web"], env=env, capture_output=True,
                                text=True, timeout=60, check=False)
        assert by_env.returncode == 1 and f"chosen by MLC_WEBHOOK_PORT={port}" in by_env.stderr


def test_alembic_lines_only_with_vvv(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_config(tmp_path / "a")
    quiet = subprocess.run([SCRIPT, "-v", "-c", str(first), "db", "upgrade"], env=cli_env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert quiet.returncode == 0 and "alembic" not in quiet.stderr and "Context impl" not in quiet.stderr
    second = write_config(tmp_path / "b")
    loud = subprocess.run([SCRIPT, "-vvv", "-c", str(second), "db", "upgrade"], env=cli_env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert loud.returncode == 0 and "alembic.runtime.migration" in loud.stderr
