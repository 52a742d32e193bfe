"""A private PostgreSQL cluster in a temporary directory, started and restarted at will.

Made with `initdb` and run with `pg_ctl` on a free loopback port, trust authentication. initdb
and postgres refuse to run as root: as root the cluster runs as the `postgres` OS user (through
`runuser`), which must exist; otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ml_connector.demo import free_port


def available() -> str | None:
    """Why a private cluster cannot be made here, or None when it can."""
    for tool in ("initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' OS user to run the cluster as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


@dataclass
class PgCluster:
    directory: Path
    port: int
    os_user: str | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [*(("runuser", "-u", self.os_user, "--") if self.os_user else ()), *args]
        return subprocess.run(command, capture_output=True, check=check, timeout=120)  # noqa: S603

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return self._run(["pg_ctl", "-D", str(self.directory / "data"), *args], check=check)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.directory / "postgres.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, down_for: float) -> None:
        """Stop (fast: every session is cut), stay down `down_for` seconds, start again."""
        self.stop("fast")
        time.sleep(down_for)
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        path = self.directory / "postgres.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def private_cluster() -> Iterator[PgCluster]:
    """A fresh cluster, running; stopped and removed when the block ends."""
    problem = available()
    if problem:
        raise RuntimeError(problem)
    os_user = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="mlc-pg-"))
    directory.chmod(0o755)
    if os_user:
        entry = pwd.getpwnam(os_user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    cluster = PgCluster(directory, free_port(), os_user)
    try:
        cluster._run(["initdb", "-D", str(directory / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8"])
        cluster.start()
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


__all__ = ["PgCluster", "available", "private_cluster"]
