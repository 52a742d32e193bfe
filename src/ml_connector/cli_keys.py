"""`ml-connector keys status|new|rotate`: the master keys that seal personal data and secrets.

Rotating: put a new key first (`keys rotate --new-key` does it in the key file; with
MLC_MASTER_KEY, set it to "NEW,OLD"), restart every process with that ring, then `keys rotate`
re-encrypts every stored value in batches. It can be stopped and run again: it resumes where
it stopped. When nothing is left on an older key, the older keys can be removed (`--prune` for
the key file).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ml_connector.cli_secrets import actor, open_store

EXIT_FAILED, EXIT_USAGE = 1, 2
_REPORT_EVERY = 10  # batches between two progress lines


@click.group("keys")
def keys_group() -> None:
    """Master keys: status, a new key, rotation."""


def _key_file(ctx: click.Context) -> Path | None:
    """The key file the keys come from, or None when MLC_MASTER_KEY supplies them."""
    from ml_connector.config import load_store_section
    from ml_connector.store.crypto import KEY_ENV

    if os.environ.get(KEY_ENV):
        return None
    return load_store_section(Path(ctx.obj["config"]), os.environ).key_file


class _Progress:
    """A line on stderr every few batches, so a long rotation shows it is moving."""

    def __init__(self) -> None:
        self.batches = 0

    def batch_done(self, progress: Any) -> None:
        self.batches += 1
        if self.batches % _REPORT_EVERY == 0:
            click.echo(f"... {sum(progress.counts.values())} rows re-encrypted (now at {progress.table})", err=True)


@keys_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def keys_status(ctx: click.Context, as_json: bool) -> None:
    """The configured keys (current first), a rotation under way, and values left on older keys."""
    with open_store(ctx) as store:
        rotation = store.rotation()
        marker, remaining = rotation.marker(), rotation.remaining()
        keys = rotation.keys
    data: dict[str, Any] = {
        "current": keys.fingerprint, "keys": list(keys.fingerprints),
        "rotation": None if marker is None else {"target": marker.target, "started_at": marker.started_at,
                                                 "table": marker.table, "rotated": marker.counts},
        "on_older_keys": remaining,
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"current key: {keys.fingerprint}")
    older = list(keys.fingerprints[1:])
    click.echo(f"older keys (read only): {', '.join(older) if older else 'none'}")
    if marker is not None:
        click.echo(f"rotation to {marker.target} under way since {marker.started_at} "
                   f"(at table {marker.table}); run `ml-connector keys rotate` to finish it")
    left = sum(remaining.values())
    detail = ", ".join(f"{table} {count}" for table, count in remaining.items() if count)
    click.echo(f"values not sealed by the current key: {left}" + (f" ({detail})" if detail else ""))


@keys_group.command("new")
def keys_new() -> None:
    """Print a new random master key (for MLC_MASTER_KEY or a key file; keep it secret)."""
    from ml_connector.store.crypto import new_key_text

    click.echo(new_key_text())


@keys_group.command("rotate")
@click.option("--new-key", is_flag=True, help="First add a new random key at the top of the key file.")
@click.option("--batch", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Rows per transaction.")
@click.option("--prune", is_flag=True, help="When done, remove the older keys from the key file.")
@click.pass_context
def keys_rotate(ctx: click.Context, new_key: bool, batch: int, prune: bool) -> None:
    """Re-encrypt every stored value (phones, bodies, callbacks, secrets) with the current key.

    Resumable: stopped or crashed, run it again and it goes on where it stopped. Audited."""
    from ml_connector.store.crypto import add_key_to_file, prune_key_file

    key_file = _key_file(ctx)
    if (new_key or prune) and key_file is None:
        click.echo("error: --new-key and --prune change the key file, but the keys come from MLC_MASTER_KEY: "
                   "set it to NEW,OLD (make one with `ml-connector keys new`), restart, then run keys rotate",
                   err=True)
        raise SystemExit(EXIT_USAGE)
    if new_key:
        assert key_file is not None
        added = add_key_to_file(key_file)
        click.echo(f"added key {added} to {key_file} as the current key; the older keys stay in it for reading. "
                   "Restart every other process with this key file before they write again.")
    with open_store(ctx) as store:
        rotation = store.rotation()

        report = _Progress()
        result = rotation.run(now=lambda: datetime.now(UTC), actor=actor(), batch=batch, on_batch=report.batch_done)
    how = "resumed and finished" if result.resumed else "finished"
    counts = ", ".join(f"{table} {count}" for table, count in result.rotated.items()) or "nothing to do"
    click.echo(f"rotation to key {result.target} {how}: {sum(result.rotated.values())} rows re-encrypted ({counts})")
    left = sum(result.remaining.values())
    if left:
        click.echo(f"{left} values were written with an older key while rotating (a process still runs with the "
                   "old key first): restart it with the new key, then run `ml-connector keys rotate` again", err=True)
        raise SystemExit(EXIT_FAILED)
    if prune:
        assert key_file is not None
        removed = prune_key_file(key_file)
        click.echo(f"removed {removed} older key(s) from {key_file}")
    else:
        click.echo("every stored value is sealed by the current key; older keys can be removed once every "
                   "process runs with it (`keys rotate --prune` for the key file)")
