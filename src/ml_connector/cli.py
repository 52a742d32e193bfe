"""The `ml-connector` command. Thin: parsing and printing here, the work in app.py and below.

Exit codes (also in README):
  0  success
  1  a check or operation failed (unreachable system, nothing delivered in the demo)
  2  invalid usage or invalid configuration
  3  not found (no such notification)
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Coroutine, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from ml_connector import __version__
from ml_connector.config import CONFIG_ENV
from ml_connector.core.lifecycle import REPLAYABLE
from ml_connector.core.models import Status
from ml_connector.core.redact import mask_phone
from ml_connector.errors import ConfigError, MlcError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_CONFIG = "ml-connector.yaml"

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
T = TypeVar("T")


# -- helpers ---------------------------------------------------------------------------------------

def _config_path(ctx: click.Context) -> Path:
    return Path(ctx.obj["config"])


def load(ctx: click.Context) -> Any:
    """Load and validate the config, or exit 2 listing every problem."""
    from ml_connector.config import load_config

    try:
        return load_config(_config_path(ctx), os.environ)
    except ConfigError as exc:
        err_console.print(f"[red]invalid configuration[/red] ({len(exc.problems)} problem(s)):")
        for problem in exc.problems:
            err_console.print(f"  {problem}", markup=False)
        raise SystemExit(EXIT_USAGE) from None


def connector(ctx: click.Context) -> Any:
    from ml_connector.app import Connector

    config = load(ctx)
    try:
        return Connector(config)
    except ConfigError as exc:
        for problem in exc.problems:
            err_console.print(f"  {problem}", markup=False)
        raise SystemExit(EXIT_USAGE) from None


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise SystemExit(EXIT_INTERRUPTED) from None


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """'2026-11-01', '2026-11-01T08:00', '2026-11-01T08:00+01:00', or relative '24h', '7d'."""
    if value is None:
        return None
    now = now or datetime.now(UTC)
    m = _RELATIVE.match(value.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: use an ISO date/time or a duration like 24h or 7d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


# -- the command group -------------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "MLC"})
@click.option("--config", "-c", "config", envvar=CONFIG_ENV, default=DEFAULT_CONFIG, show_default=True,
              show_envvar=True, help="The YAML configuration file.")
@click.option("--verbose", "-v", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="ml-connector")
@click.pass_context
def main(ctx: click.Context, config: str, verbose: int) -> None:
    """Turn ERP events into tracked Twilio notifications.

    Secrets come from the environment: MLC_MASTER_KEY (encryption key; otherwise the key file
    named in the config), and whatever ${VARS} the config interpolates.
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--force", is_flag=True, help="Overwrite an existing config file (never the key file).")
@click.pass_context
def init(ctx: click.Context, force: bool) -> None:
    """Write a commented starter config and a new encryption key file (mode 0600)."""
    from ml_connector.config import starter_config
    from ml_connector.store.crypto import create_key_file

    path = _config_path(ctx)
    if path.exists() and not force:
        err_console.print(f"{path} exists; use --force to overwrite it")
        raise SystemExit(EXIT_USAGE)
    path.write_text(starter_config(), encoding="utf-8")
    key_path = path.parent / "ml-connector.key"
    if key_path.exists():
        console.print(f"kept existing key file {key_path}")
    else:
        create_key_file(key_path)
        console.print(f"wrote key file {key_path} (mode 0600): back it up; without it stored data cannot be read")
    console.print(f"wrote {path}: edit it, then run `ml-connector validate`")


@main.command()
@click.pass_context
def validate(ctx: click.Context) -> None:
    """Check the config (every error with file, line and key path) and compile every template."""
    from ml_connector.app import compile_flows

    config = load(ctx)
    try:
        compile_flows(config)
    except ConfigError as exc:
        err_console.print(f"[red]invalid configuration[/red] ({len(exc.problems)} problem(s)):")
        for problem in exc.problems:
            err_console.print(f"  {problem}", markup=False)
        raise SystemExit(EXIT_USAGE) from None
    console.print(
        f"{config.path}: valid ({len(config.sources)} source(s), {len(config.flows)} flow(s), "
        f"{len(config.twilio.accounts)} Twilio account(s))"
    )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Ping every configured system: the store, each Twilio account, each source."""
    from ml_connector.checks import run_checks

    results = run_async(run_checks(connector(ctx)))
    if as_json:
        emit_json([r.as_dict() for r in results])
    else:
        table = Table(title="ml-connector check")
        for col in ("system", "name", "result", "details"):
            table.add_column(col)
        for r in results:
            table.add_row(r.kind, r.name, "[green]ok[/green]" if r.ok else "[red]FAILED[/red]", r.details)
        console.print(table)
    raise SystemExit(EXIT_OK if all(r.ok for r in results) else EXIT_FAILED)


@main.command()
@click.option("--role", "roles", multiple=True, type=click.Choice(["poller", "dispatcher", "web"]),
              help="Run only these roles (repeatable). Default: all three in one process.")
@click.pass_context
def run(ctx: click.Context, roles: Sequence[str]) -> None:
    """Run pollers, dispatcher and webhook server until SIGINT/SIGTERM."""
    from ml_connector.app import ROLES

    app = connector(ctx)
    chosen = tuple(roles) or ROLES

    async def main_loop() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        err_console.print(f"ml-connector running ({', '.join(chosen)}); Ctrl-C stops")
        try:
            await app.run(stop, chosen)
        finally:
            await app.aclose()

    run_async(main_loop())


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply database migrations (run does this itself for a fresh SQLite file)."""
    from ml_connector.store.migrate import upgrade

    config = load(ctx)
    upgrade(config.store.url)
    console.print("database is at the latest schema")


# -- notifications ---------------------------------------------------------------------------------

def _store(ctx: click.Context) -> Any:
    from ml_connector.store.crypto import load_keyring
    from ml_connector.store.sql import SqlStore

    config = load(ctx)
    return SqlStore(config.store.url, load_keyring(config.store.key_file, os.environ))


def _filter(flow: str | None, statuses: Sequence[str], since: str | None, until: str | None,
            recipient: str | None, limit: int, ids: Sequence[int] = ()) -> Any:
    from ml_connector.store.port import NotificationFilter

    if recipient:
        from ml_connector.compliance.phones import normalise

        try:
            recipient = normalise(recipient, "US", "--recipient")
        except MlcError as exc:
            raise click.BadParameter(str(exc), param_hint="--recipient") from None
    return NotificationFilter(
        flow=flow, statuses=tuple(Status(s) for s in statuses), since=parse_when(since),
        until=parse_when(until), recipient=recipient, ids=tuple(ids), limit=limit,
    )


def _view_dict(view: Any, *, full: bool = False) -> dict[str, Any]:
    data = {
        "id": view.id, "flow": view.flow, "entity": view.entity, "record_key": view.record_key,
        "status": str(view.status), "recipient": mask_phone(view.recipient),
        "recipient_field": view.recipient_field, "provider_id": view.provider_id,
        "error_code": view.error_code, "error_message": view.error_message, "reason": view.reason,
        "attempts": view.attempts_made,
        "created_at": _iso(view.created_at), "updated_at": _iso(view.updated_at),
        "next_attempt_at": _iso(view.next_attempt_at),
    }
    if full:
        data["body"] = view.body
        data["segments"] = view.segments
        data["sender"] = view.sender
        data["attempt_history"] = [
            {"attempt": a.attempt_no, "outcome": a.outcome, "started_at": _iso(a.started_at),
             "finished_at": _iso(a.finished_at), "provider_id": a.provider_id,
             "provider_status": a.provider_status, "error_code": a.error_code,
             "error_message": a.error_message}
            for a in view.attempts
        ]
    return data


STATUS_STYLE = {
    "delivered": "green", "read": "green", "sent": "cyan", "queued": "cyan", "sending": "yellow",
    "pending": "yellow", "deferred": "yellow", "failed": "red", "undelivered": "red", "dead": "red",
    "suppressed": "magenta",
}


def notifications_table(views: Iterable[Any], title: str = "notifications") -> Table:
    table = Table(title=title)
    for col in ("id", "flow", "record", "to", "status", "detail", "updated"):
        table.add_column(col, overflow="fold")
    for v in views:
        style = STATUS_STYLE.get(str(v.status), "white")
        detail = v.problem or (v.provider_id or "")
        table.add_row(str(v.id), v.flow, v.record_key, mask_phone(v.recipient),
                      f"[{style}]{v.status}[/{style}]", detail, v.updated_at.strftime("%H:%M:%S"))
    return table


@main.group()
def notifications() -> None:
    """Inspect notifications."""


_status_choice = click.Choice([s.value for s in Status])


@notifications.command("list")
@click.option("--flow")
@click.option("--status", "statuses", multiple=True, type=_status_choice)
@click.option("--since", help="ISO date/time or duration (24h, 7d).")
@click.option("--until")
@click.option("--recipient", help="Phone number (any format); matched by keyed hash.")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notifications_list(ctx: click.Context, flow: str | None, statuses: Sequence[str], since: str | None,
                       until: str | None, recipient: str | None, limit: int, as_json: bool) -> None:
    """List notifications, newest first."""
    store = _store(ctx)
    views = store.list_notifications(_filter(flow, statuses, since, until, recipient, limit))
    if as_json:
        emit_json([_view_dict(v) for v in views])
    else:
        console.print(notifications_table(views))


@notifications.command("show")
@click.argument("notification_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notifications_show(ctx: click.Context, notification_id: int, as_json: bool) -> None:
    """One notification with its attempts."""
    view = _store(ctx).get_notification(notification_id)
    if view is None:
        err_console.print(f"no notification {notification_id}")
        raise SystemExit(EXIT_NOT_FOUND)
    data = _view_dict(view, full=True)
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        if key != "attempt_history":
            console.print(f"[bold]{key}[/bold]: {value}", markup=True, highlight=False)
    table = Table(title="attempts")
    for col in ("#", "outcome", "started", "provider id", "status", "error"):
        table.add_column(col)
    for a in data["attempt_history"]:
        error = f"[{a['error_code']}] {a['error_message'] or ''}" if a["error_code"] else (a["error_message"] or "")
        table.add_row(str(a["attempt"]), a["outcome"] or "in flight", a["started_at"] or "",
                      a["provider_id"] or "", a["provider_status"] or "", error)
    console.print(table)


@main.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--flow")
@click.option("--status", "statuses", multiple=True, type=click.Choice(sorted(s.value for s in REPLAYABLE)))
@click.option("--since")
@click.option("--until")
@click.option("--limit", default=1000, show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask before replaying more than one.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def replay(ctx: click.Context, ids: Sequence[int], flow: str | None, statuses: Sequence[str],
           since: str | None, until: str | None, limit: int, yes: bool, as_json: bool) -> None:
    """Send failed, dead or undelivered notifications again (by id or filter); old attempts are kept."""
    if not ids and not (flow or statuses or since or until):
        raise click.UsageError("give notification ids, or a filter (--flow/--status/--since/--until)")
    store = _store(ctx)
    chosen = statuses or sorted(s.value for s in REPLAYABLE)
    views = store.list_notifications(_filter(flow, chosen, since, until, None, limit, ids))
    candidates = [v for v in views if v.status in REPLAYABLE]
    if ids:
        missing = sorted(set(ids) - {v.id for v in candidates})
        for notification_id in missing:
            err_console.print(f"notification {notification_id}: not found or not in a replayable status")
    if not candidates:
        err_console.print("nothing to replay")
        raise SystemExit(EXIT_NOT_FOUND)
    if len(candidates) > 1 and not yes:
        console.print(notifications_table(candidates, title="to replay"))
        if not sys.stdin.isatty() or not click.confirm(f"Replay {len(candidates)} notifications?"):
            err_console.print("not replayed (use --yes to skip this question)")
            raise SystemExit(EXIT_FAILED)
    replayed = store.replay([v.id for v in candidates], datetime.now(UTC), os.environ.get("USER", "cli"))
    if as_json:
        emit_json({"replayed": replayed})
    else:
        console.print(f"replayed {len(replayed)} notification(s): {', '.join(map(str, replayed))}")


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--since")
@click.option("--until")
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-")
@click.pass_context
def audit_export(ctx: click.Context, fmt: str, since: str | None, until: str | None, output: str) -> None:
    """Export audit rows (every state change with its time and cause) as CSV or JSON lines."""
    store = _store(ctx)
    stream = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
    count = 0
    try:
        fields = ["id", "at", "notification_id", "flow", "kind", "status", "detail"]
        writer = csv.DictWriter(stream, fieldnames=fields) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        for entry in store.audit(parse_when(since), parse_when(until)):
            row = {"id": entry.id, "at": entry.at.isoformat(), "notification_id": entry.notification_id,
                   "flow": entry.flow, "kind": entry.kind, "status": entry.status,
                   "detail": json.dumps(dict(entry.detail), default=str, sort_keys=True)}
            if writer:
                writer.writerow(row)
            else:
                row["detail"] = dict(entry.detail)
                stream.write(json.dumps(row, default=str) + "\n")
            count += 1
    finally:
        if stream is not sys.stdout:
            stream.close()
    err_console.print(f"exported {count} audit row(s)")


@main.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Keep the demo's databases here (default: a temporary directory).")
@click.option("--every", type=float, default=2.0, show_default=True, help="Seconds between ERP events.")
def demo(duration: float | None, data_dir: str | None, every: float) -> None:
    """Run everything against the built-in simulators and show each notification's journey."""
    from ml_connector.demo import run_demo

    delivered = run_async(run_demo(duration=duration, data_dir=Path(data_dir) if data_dir else None,
                                   every=every, console=console))
    raise SystemExit(EXIT_OK if delivered else EXIT_FAILED)


@main.command()
@click.option("--twilio-port", type=int, default=None, help="Default: the port of the config's Twilio base URL.")
@click.option("--events/--no-events", default=True, show_default=True,
              help="Generate ERP events every few seconds.")
@click.pass_context
def simulate(ctx: click.Context, twilio_port: int | None, events: bool) -> None:
    """Serve the simulators the config points at (Twilio on loopback, the demo ERP database)."""
    from ml_connector.demo import run_simulators

    config = load(ctx)
    run_async(run_simulators(config, twilio_port=twilio_port, events=events, console=err_console))

