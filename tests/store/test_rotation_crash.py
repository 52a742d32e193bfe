"""`ml-connector keys rotate` killed with SIGKILL mid-way, then run again: it resumes at its marker."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NotificationFilter
from ml_connector.store.sql import SqlStore

from .builders import enqueue, notification

ROWS = 1500
OLD, NEW = b"o" * 32, b"n" * 32


def key_text(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def rotate_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ml_connector", "--config", str(config), "keys", "rotate", *extra]


@pytest.mark.slow
def test_sigkill_mid_rotation_then_resume(db_url: str, tmp_path: Path, make_store: Callable[..., SqlStore]) -> None:
    store = make_store(keyring=KeyRing(OLD))
    enqueue(store, *[notification(i, body=f"body #{i}") for i in range(ROWS)])
    config = tmp_path / "mlc.yaml"
    config.write_text(f"store:\n  url: '{db_url}'\n", encoding="utf-8")  # keys rotate reads only this section
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLC_")},
           "MLC_MASTER_KEY": f"{key_text(NEW)},{key_text(OLD)}"}

    with subprocess.Popen(rotate_command(config, "--batch", "1"), env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        first = process.stderr.readline()  # "... 10 rows re-encrypted": ten batches committed
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert first.startswith("... "), first
    assert process.returncode == -signal.SIGKILL

    both = make_store(keyring=KeyRing(NEW, [OLD]))
    marker = both.rotation().marker()
    assert marker is not None and marker.table == "notifications"
    done = marker.counts["notifications"]
    assert 10 <= done < ROWS
    left = both.rotation().remaining()["notifications"]
    assert left == ROWS - done  # each batch and its marker committed together: nothing half-done
    assert len(both.list_notifications(NotificationFilter(limit=ROWS + 1))) == ROWS
    print(f"SIGKILL after {done} of {ROWS} rows re-encrypted; {left} left on the old key")

    again = subprocess.run(rotate_command(config), env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert "resumed and finished" in again.stdout and f"{ROWS} rows re-encrypted" in again.stdout

    after = make_store(keyring=KeyRing(NEW))
    views = after.list_notifications(NotificationFilter(limit=ROWS + 1))
    assert sorted(v.body for v in views) == sorted(f"body #{i}" for i in range(ROWS))
    assert after.rotation().marker() is None and sum(after.rotation().remaining().values()) == 0
