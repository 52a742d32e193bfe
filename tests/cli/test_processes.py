"""The installed console script as a user runs it: real processes, real signals, loopback sockets."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ml_connector.config import load_config
from ml_connector.sim.demo_erp import DemoErp
from ml_connector.sim.twilio import Outcome
from ml_connector.store.crypto import load_keyring
from ml_connector.store.migrate import current, head
from ml_connector.store.port import NotificationFilter
from ml_connector.store.sql import SqlStore
from tests.cli.conftest import Invoke, ServedSim, free_port, write_config
from tests.support.pipeline import pipeline

SCRIPT = str(Path(sys.executable).parent / "ml-connector")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def start(processes: list[subprocess.Popen[str]], args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([SCRIPT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    processes.append(proc)
    return proc


def finish(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert "Traceback" not in out + err, out + err
    return proc.returncode, out, err


def test_python_dash_m_and_version(cli_env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "ml_connector", "--version"], env=cli_env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.startswith("ml-connector, version ")


def test_user_errors_in_a_real_process_have_no_traceback(tmp_path: Path, cli_env: dict[str, str]) -> None:
    cases = [
        (["-c", str(tmp_path / "missing.yaml"), "check"], 2, "file not found"),
        (["-c", str(tmp_path), "validate"], 2, "cannot read"),
        (["notifications", "lst"], 2, "No such command"),
        (["-c", str(tmp_path / "x.yaml"), "notifications", "list", "--since", "soon"], 2, "--since"),
    ]
    for args, code, text in cases:
        result = subprocess.run([SCRIPT, *args], env=cli_env, capture_output=True, text=True, timeout=60,
                                check=False, cwd=tmp_path)
        assert (result.returncode, "Traceback" in result.stderr) == (code, False), (args, result.stderr)
        assert text in result.stderr, (args, result.stderr)
    env = {**cli_env, "MLC_CONFIG": str(tmp_path / "from-env.yaml")}
    result = subprocess.run([SCRIPT, "validate"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "from-env.yaml: file not found" in result.stderr


def test_db_upgrade(tmp_path: Path, invoke: Invoke) -> None:
    path = write_config(tmp_path)
    url = load_config(path, {}).store.url
    assert current(url) is None
    first = invoke(["-c", str(path), "db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert f"upgraded from empty to schema revision {head()}" in first.stdout
    assert current(url) == head()
    again = invoke(["-c", str(path), "db", "upgrade"])
    assert again.exit_code == 0 and f"already at schema revision {head()}" in again.stdout


@pytest.mark.slow
def test_demo_delivers_and_exits_zero(tmp_path: Path, cli_env: dict[str, str]) -> None:
    result = subprocess.run([SCRIPT, "demo", "--duration", "8", "--every", "1"], env=cli_env, capture_output=True,
                            text=True, timeout=120, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pending → sending → queued → sent → delivered" in result.stdout
    lines = result.stdout.splitlines()
    assert any("po_approved_email" in line and line.endswith("queued → delivered") for line in lines)
    assert any("po_approved_call" in line and line.endswith("sent → acknowledged") for line in lines)
    assert "demo summary" in result.stdout and "Traceback" not in result.stderr


def test_simulate_serves_check_and_stops_on_sigint(tmp_path: Path, cli_env: dict[str, str],
                                                   processes: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    path = write_config(tmp_path, f"http://127.0.0.1:{port}")
    sim = start(processes, ["-c", str(path), "simulate", "--no-events"], cli_env)
    wait_for(lambda: listening(port) or sim.poll() is not None, "the simulator to listen")
    assert sim.poll() is None, sim.communicate()
    check = subprocess.run([SCRIPT, "-c", str(path), "check"], env=cli_env, capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ml-connector simulator" in check.stdout
    code, _, err = finish(sim, signal.SIGINT)
    assert code == 0 and "simulators stopped" in err


def test_run_sends_and_stops_cleanly_on_sigterm(tmp_path: Path, cli_env: dict[str, str], served_twilio: ServedSim,
                                               processes: list[subprocess.Popen[str]]) -> None:
    path = write_config(tmp_path, served_twilio.url)
    config = load_config(path, {})
    run = start(processes, ["-c", str(path), "run"], cli_env)
    wait_for(lambda: listening(config.webhooks.port) or run.poll() is not None, "the webhook listener")
    assert run.poll() is None, run.communicate()
    store = SqlStore(config.store.url, load_keyring(config.store.key_file, {}))
    try:
        def polled() -> bool:
            return any(e.kind == "poll" and e.flow == "po_approved" and e.detail.get("watermark_kind") == "main"
                       for e in store.audit(None, None))

        wait_for(polled, "the first poll")
        DemoErp(tmp_path / "demo-erp.db").approve_po(1001)
        wait_for(lambda: any(m.to == "+13125550142" for m in served_twilio.sim.messages()), "the SMS")
    finally:
        store.close()
    code, _, err = finish(run, signal.SIGTERM)
    assert code == 0, err
    assert "ml-connector stopped" in err


async def _two_failed(tmp_path: Path) -> Path:
    async with pipeline(tmp_path) as p:
        await p.poll()
        for phone in ("+13125550142", "+13125550187"):  # both fail, for a reason a retry may cure
            p.sim.set_outcome(phone, Outcome(status="failed", error_code=30003))
        for po in (1001, 1002):
            p.erp.approve_po(po)
        await p.poll()
        await p.dispatch()
        return p.config_path


def test_ctrl_c_at_the_replay_question_exits_130(tmp_path: Path, cli_env: dict[str, str],
                                                processes: list[subprocess.Popen[str]]) -> None:
    """A one-shot command interrupted: exit 130, nothing replayed."""
    path = asyncio.run(_two_failed(tmp_path))
    proc = subprocess.Popen([SCRIPT, "-c", str(path), "replay", "--status", "failed"], env=cli_env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    processes.append(proc)  # type: ignore[arg-type]
    assert proc.stdout is not None
    shown = b""
    deadline = time.monotonic() + 30
    while b"Replay these 2 notifications?" not in shown:
        assert time.monotonic() < deadline and proc.poll() is None, shown
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            shown += os.read(proc.stdout.fileno(), 4096)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and b"interrupted" in err and b"Traceback" not in err
    config = load_config(path, {})
    store = SqlStore(config.store.url, load_keyring(config.store.key_file, {}))
    try:
        assert sorted(str(n.status) for n in store.list_notifications(NotificationFilter())) == ["failed", "failed"]
    finally:
        store.close()
