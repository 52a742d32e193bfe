"""`ml-connector users add` and `ml-connector tokens add`: who may use the dashboard and the API.

A password is asked for twice at the terminal (or read from standard input with
--password-stdin, for provisioning scripts); it is never an argument, where `ps` and shell
history would show it. A token is printed once and only its hash is kept.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import click

from ml_connector.store.users import Role, UserStore, engine_of

_ROLE = click.Choice([r.value for r in Role])


def _actor() -> str:
    return f"cli:{os.environ.get('USER') or 'unknown'}"


def _users(ctx: click.Context) -> UserStore:
    from ml_connector.cli import _store, load

    return UserStore(engine_of(_store(load(ctx))))


@click.group()
def users() -> None:
    """Dashboard users (argon2-hashed passwords)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=_ROLE, default=Role.VIEWER.value, show_default=True,
              help="viewer reads; operator also replays and pauses flows.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@click.option("--sso-only", is_flag=True, help="No password: the person signs in through the SSO proxy only.")
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str, password_stdin: bool, sso_only: bool) -> None:
    """Create a user, or change an existing user's role and password."""
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sso_only:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _users(ctx).add_user(name, Role(role), password, datetime.now(UTC), actor=_actor())
    click.echo(f"user {name}: {role}" + (" (SSO only)" if password is None else ""))


@click.group()
def tokens() -> None:
    """REST API tokens (shown once, stored hashed)."""


@tokens.command("add")
@click.argument("name")
@click.option("--role", type=_ROLE, default=Role.VIEWER.value, show_default=True)
@click.pass_context
def tokens_add(ctx: click.Context, name: str, role: str) -> None:
    """Create an API token and print it: it is shown this once, keep it safe."""
    token = _users(ctx).add_token(name, Role(role), datetime.now(UTC), actor=_actor())
    click.echo(token)
    click.echo(f"token {name} ({role}): send it as 'Authorization: Bearer <token>'; it is not shown again",
               err=True)
