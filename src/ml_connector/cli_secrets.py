"""`ml-connector secrets set|list|delete NAME`: credentials kept encrypted in the store.

The config names them as `${secret:NAME}`. A value is never a command-line argument (shells keep
history, `ps` shows arguments): it is asked for with hidden input, or read from standard input
when that is not a terminal (`vault read ... | ml-connector secrets set EBS_PASSWORD`). Listing
shows names and dates only. Only the config's store section is read, so a secret can be set
while the rest of the file still names it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

EXIT_FAILED, EXIT_NOT_FOUND = 1, 3


def actor() -> str:
    """Who did it, for the audit."""
    return f"cli:{os.environ.get('USER') or 'unknown'}"


@contextmanager
def open_store(ctx: click.Context) -> Iterator[Any]:
    """The store the config's store section names, opened with the configured master keys."""
    from ml_connector.config import load_store_section
    from ml_connector.store.crypto import load_keyring
    from ml_connector.store.sql import SqlStore

    section = load_store_section(Path(ctx.obj["config"]), os.environ)
    store = SqlStore(section.url, load_keyring(section.key_file, os.environ))
    try:
        yield store
    finally:
        store.close()


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _read_value(name: str) -> str:
    if _stdin_is_terminal():
        value: str = click.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True,
                                  prompt_suffix=": ", show_default=False)
        return value
    text = sys.stdin.read()
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


@click.group("secrets")
def secrets_group() -> None:
    """Credentials kept encrypted in the store; the config uses them as ${secret:NAME}."""


@secrets_group.command("set")
@click.argument("name")
@click.pass_context
def secrets_set(ctx: click.Context, name: str) -> None:
    """Store (or replace) secret NAME. The value is asked for with hidden input, or read from
    standard input when that is not a terminal (one trailing newline is dropped)."""
    from ml_connector.store.secrets import check_name

    check_name(name)
    value = _read_value(name)
    with open_store(ctx) as store:
        created = store.secrets().set(name, value, now=datetime.now(UTC), actor=actor())
    click.echo(f"secret {name} {'stored' if created else 'replaced'}; the config reads it as ${{secret:{name}}} "
               "(restart running processes to use a new value)")


@secrets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def secrets_list(ctx: click.Context, as_json: bool) -> None:
    """Names of the stored secrets and when each was set; never their values."""
    with open_store(ctx) as store:
        found = store.secrets().list()
    if as_json:
        click.echo(json.dumps([{"name": s.name, "set_at": s.updated_at.isoformat(),
                                "created_at": s.created_at.isoformat()} for s in found], indent=2))
        return
    if not found:
        click.echo("no secrets stored (add one with `ml-connector secrets set NAME`)")
        return
    width = max(len("NAME"), *(len(s.name) for s in found))
    click.echo(f"{'NAME':<{width}}  SET AT (UTC)          FIRST SET (UTC)")
    for s in found:
        click.echo(f"{s.name:<{width}}  {s.updated_at:%Y-%m-%d %H:%M:%S}   {s.created_at:%Y-%m-%d %H:%M:%S}")


@secrets_group.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def secrets_delete(ctx: click.Context, name: str, yes: bool) -> None:
    """Forget secret NAME (a config that still uses it will no longer load)."""
    if not yes and not click.confirm(f"delete secret {name}?", default=False):
        click.echo("nothing deleted")
        raise SystemExit(EXIT_FAILED)
    with open_store(ctx) as store:
        gone = store.secrets().delete(name, now=datetime.now(UTC), actor=actor())
    if not gone:
        click.echo(f"no secret named {name}", err=True)
        raise SystemExit(EXIT_NOT_FOUND)
    click.echo(f"secret {name} deleted")
