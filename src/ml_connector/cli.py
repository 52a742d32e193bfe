"""The `ml-connector` command. Thin: parsing and printing here, the work in app.py and below.

Exit codes (also in README):
  0    success; also `run`, `simulate` and `demo` stopped by Ctrl-C or SIGTERM, their normal stop
  1    a check or operation failed (unreachable system, nothing delivered in the demo, a
       notification not in a replayable status, a replay not confirmed)
  2    invalid usage or invalid configuration (unknown command or option, bad value, config errors)
  3    not found (no such notification, nothing matched the replay filter)
  130  interrupted (Ctrl-C) while a one-shot command was working

A user error never prints a traceback: known failures become one message and an exit code
(`MlcGroup.invoke`); `-vv` logs the traceback for a bug report.
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
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import click
from rich.table import Table

from ml_connector import __version__
from ml_connector.cli_output import Column, print_rich_table, print_table
from ml_connector.cli_output import console as out_console
from ml_connector.config import CONFIG_ENV
from ml_connector.core.lifecycle import REPLAYABLE
from ml_connector.core.models import Status
from ml_connector.core.redact import mask_phone
from ml_connector.errors import ConfigError, MlcError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
DEFAULT_CONFIG = "ml-connector.yaml"
DEFAULT_KEY_FILE = "ml-connector.key"

log = logging.getLogger(__name__)
T = TypeVar("T")


# -- failures -> message and exit code ---------------------------------------------------------------

def say(text: str) -> None:
    """One unwrapped line on stdout (paths and messages must stay whole for copy and grep)."""
    click.echo(text)


def say_error(text: str) -> None:
    """One unwrapped line on stderr (file:line prefixes must stay greppable)."""
    click.echo(text, err=True)


def fail(text: str, code: int) -> NoReturn:
    say_error(text)
    raise SystemExit(code)


def _config_problems(exc: ConfigError) -> int:
    if len(exc.problems) == 1:
        say_error(f"error: {exc.problems[0]}")
    else:
        say_error(f"invalid configuration ({len(exc.problems)} problems):")
        for problem in exc.problems:
            say_error(f"  {problem}")
    return EXIT_USAGE


def _mlc_error(exc: MlcError) -> int:
    say_error(f"error: {exc}")
    return EXIT_FAILED


def _os_error(exc: OSError) -> int:
    where = f"{exc.filename}: " if exc.filename else ""
    say_error(f"error: {where}{exc.strerror or exc}")
    return EXIT_FAILED


def _broken_pipe(_: BrokenPipeError) -> int:
    """The reader went away (`| head`): stop quietly, and keep the interpreter from complaining at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (tests capture stdout)
        pass
    return EXIT_FAILED


def _database_error(exc: Exception) -> int:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    say_error(f"error: the store's database: {lines[0] if lines else type(exc).__name__}")
    return EXIT_FAILED


def _interrupted(_: BaseException) -> int:
    say_error("interrupted")
    return EXIT_INTERRUPTED


def _failure_table() -> tuple[tuple[type[BaseException], Callable[[Any], int]], ...]:
    from sqlalchemy.exc import SQLAlchemyError

    return (
        (ConfigError, _config_problems),
        (MlcError, _mlc_error),
        (SQLAlchemyError, _database_error),
        (BrokenPipeError, _broken_pipe),
        (OSError, _os_error),
        (KeyboardInterrupt, _interrupted),
    )


class MlcGroup(click.Group):
    """The top-level group: expected failures print a message and exit with their code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (Exception, KeyboardInterrupt) as exc:
            for kind, report in _failure_table():
                if isinstance(exc, kind):
                    log.debug("details of the error above", exc_info=True)
                    raise SystemExit(report(exc)) from None
            raise


# -- helpers ---------------------------------------------------------------------------------------

def _config_path(ctx: click.Context) -> Path:
    return Path(ctx.obj["config"])


def load(ctx: click.Context) -> Any:
    """Load and validate the config; a ConfigError lists every problem (exit 2)."""
    from ml_connector.config import load_config

    return load_config(_config_path(ctx), os.environ)


def connector(ctx: click.Context) -> Any:
    from ml_connector.app import Connector

    return Connector(load(ctx))


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    from ml_connector.runtime.loop import run

    return run(coro)


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, *, now: datetime | None = None) -> datetime:
    """'2026-11-01', '2026-11-01T08:00', '2026-11-01T08:00+01:00' (UTC unless it says), or '24h', '7d' ago."""
    now = now or datetime.now(UTC)
    m = _RELATIVE.match(value.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r}: use an ISO date/time (2026-11-01, 2026-11-01T08:00) "
                         f"or a duration ago (30m, 24h, 7d)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class When(click.ParamType[datetime]):
    """An instant on the command line (see `parse_when`)."""

    name = "when"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


WHEN = When()


def _window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise click.BadParameter("must be later than --since", param_hint="--until")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


# -- the command group -------------------------------------------------------------------------------

def _environment_help() -> str:
    """The variables read outside the config file, for --help (one env prefix: MLC_)."""
    from ml_connector.config import env_settings

    return "\b\nEnvironment:\n" + "\n".join(f"  {s.name:<18} {s.help}" for s in env_settings())


@click.group(cls=MlcGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
             epilog=_environment_help())
@click.option("--config", "-c", "config", envvar=CONFIG_ENV, default=DEFAULT_CONFIG, show_default=True,
              show_envvar=True, help="The YAML configuration file.")
@click.option("--verbose", "-v", count=True,
              help="More log output (-vv for debug; -vvv adds the libraries' own, e.g. database migrations).")
@click.version_option(__version__, prog_name="ml-connector")
@click.pass_context
def main(ctx: click.Context, config: str, verbose: int) -> None:
    """Turn ERP events into tracked Twilio notifications.

    Secrets come from the environment: the variables below, and whatever ${VARS} the config
    interpolates.

    Exit codes: 0 success, 1 a check or operation failed, 2 invalid usage or configuration,
    3 not found, 130 interrupted.
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # alembic's own lines ("Context impl SQLiteImpl.") are not news to a user: only with -vvv
    logging.getLogger("alembic").setLevel(logging.WARNING if verbose < 3 else logging.NOTSET)


def _key_file_of(config_path: Path) -> Path:
    """store.key_file of an existing config (when written literally), else the default next to it."""
    import yaml

    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        data = None
    store = data.get("store") if isinstance(data, dict) else None
    named = store.get("key_file") if isinstance(store, dict) else None
    if not isinstance(named, str) or "${" in named or not named.strip():
        return config_path.parent / DEFAULT_KEY_FILE
    path = Path(named)
    return path if path.is_absolute() else config_path.parent / path


@main.command()
@click.option("--force", is_flag=True, help="Overwrite an existing config file (never the key file).")
@click.pass_context
def init(ctx: click.Context, force: bool) -> None:
    """Write a commented starter config and a new encryption key file (mode 0600).

    An existing config is kept unless --force; an existing key file is always kept. A missing key
    file is created even when the config is kept (`run` and `check` need it).
    """
    from ml_connector.config import starter_config
    from ml_connector.store.crypto import create_key_file

    path = _config_path(ctx)
    if path.is_dir():
        fail(f"error: {path} is a directory; give the config file's path with --config", EXIT_USAGE)
    keep_config = path.exists() and not force
    key_path = _key_file_of(path) if keep_config else path.parent / DEFAULT_KEY_FILE
    key_created = False
    if not key_path.exists():
        key_path.parent.mkdir(parents=True, exist_ok=True)
        create_key_file(key_path)
        key_created = True
        say(f"wrote key file {key_path} (mode 0600): back it up; without it stored data cannot be read")
    else:
        say(f"kept existing key file {key_path}")
    if keep_config:
        fail(f"{path} exists; kept it (use --force to replace it with the starter config)",
             EXIT_OK if key_created else EXIT_USAGE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(starter_config(), encoding="utf-8")
    say(f"wrote {path}: edit it, then run `ml-connector validate`")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: {valid, problems, ...}.")
@click.pass_context
def validate(ctx: click.Context, as_json: bool) -> None:
    """Check the config (every error with file, line and key path) and compile every template.

    Template variables that no field of the flow's entity provides are reported too, when the
    entity's fields are known (a SQL entity's `columns`), with the closest field name.
    """
    from ml_connector.app import compile_flows
    from ml_connector.callback_keys import validate_warnings
    from ml_connector.template_scan import raw_template_problems

    try:
        try:
            config = load(ctx)
        except ConfigError as exc:  # the templates too, though the config cannot be built
            more = [p for p in raw_template_problems(_config_path(ctx), str(_config_path(ctx)))
                    if p not in exc.problems]
            if not more:
                raise
            problems = [*exc.problems, *more]
            raise ConfigError(f"{len(problems)} problem(s)", problems) from None
        compile_flows(config, str(_config_path(ctx)))  # ConfigError lists every template problem
    except ConfigError as exc:
        if not as_json:
            raise
        emit_json({"valid": False, "path": str(_config_path(ctx)), "problems": list(exc.problems)})
        raise SystemExit(EXIT_USAGE) from None
    warnings = validate_warnings(config)
    if not as_json:
        for warning in warnings:
            say_error(f"warning: {warning}")
    enabled = sum(1 for flow in config.flows.values() if flow.enabled)
    if as_json:
        emit_json({"valid": True, "path": str(config.path), "problems": [], "warnings": warnings,
                   "sources": len(config.sources),
                   "flows": len(config.flows), "enabled_flows": enabled,
                   "twilio_accounts": len(config.twilio.accounts)})
        return
    say(
        f"{config.path}: valid ({len(config.sources)} source(s), {len(config.flows)} flow(s) of which "
        f"{enabled} enabled, {len(config.twilio.accounts)} Twilio account(s)); "
        f"`ml-connector check` tests the connections"
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
            table.add_column(col, overflow="fold")
        for r in results:
            table.add_row(r.kind, r.name, "[green]ok[/green]" if r.ok else "[red]FAILED[/red]",
                          "\n".join(r.details))
        print_rich_table(table)
    failed = [r for r in results if not r.ok]
    if failed and not as_json:
        say_error(f"{len(failed)} of {len(results)} check(s) failed: {', '.join(f'{r.kind} {r.name}' for r in failed)}")
    raise SystemExit(EXIT_FAILED if failed else EXIT_OK)


@main.command()
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def discover(ctx: click.Context, source: str, as_json: bool) -> None:
    """List what SOURCE exposes (entity sets, properties, types) for writing flows."""
    from ml_connector.discover import UnknownSource, describe_source, rows

    config = load(ctx)
    try:
        found = run_async(describe_source(config, source))
    except UnknownSource:
        fail(f"no source {source!r}; sources: {', '.join(config.sources)}", EXIT_NOT_FOUND)
    if found is None:
        fail(f"discover is not supported yet for source type {config.sources[source].type!r}", EXIT_FAILED)
    if as_json:
        emit_json(found)
        return
    table = Table(title=f"ml-connector discover {source}")
    for col in ("service", "entity set", "property", "type", "notes"):
        table.add_column(col, overflow="fold")
    for row in rows(found):
        table.add_row(*row)
    print_rich_table(table)


@main.command()
@click.option("--role", "roles", multiple=True, type=click.Choice(["poller", "dispatcher", "web"]),
              help="Run only these roles (repeatable). Default: all three in one process.")
@click.pass_context
def run(ctx: click.Context, roles: Sequence[str]) -> None:
    """Run pollers, dispatcher and webhook server until SIGINT/SIGTERM (then exit 0)."""
    from ml_connector.app import ROLES
    from ml_connector.callback_keys import runnable_roles
    from ml_connector.cli_run import startup_summary
    from ml_connector.tls import warn_unverified_tls
    from ml_connector.web.server import freeze_long_lived_objects

    app = connector(ctx)
    chosen, unverifiable = runnable_roles(app.config, tuple(dict.fromkeys(roles)) or ROLES, explicit=bool(roles))
    if unverifiable:
        say_error(f"warning: {unverifiable}")
    warn_unverified_tls(app.config)

    async def main_loop() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        for line in startup_summary(app, chosen):
            say_error(line)
        freeze_long_lived_objects()  # config, store, sources and clients live as long as the process
        try:
            await app.run(stop, chosen)
        finally:
            await app.aclose()

    run_async(main_loop())
    say_error("ml-connector stopped")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def db_upgrade(ctx: click.Context, as_json: bool) -> None:
    """Apply database migrations (run does this itself for a fresh SQLite file)."""
    from ml_connector.core.redact import mask_url
    from ml_connector.store.migrate import current, upgrade

    config = load(ctx)
    before = current(config.store.url)
    upgrade(config.store.url)
    after = current(config.store.url)
    if as_json:
        emit_json({"store": mask_url(config.store.url), "before": before, "after": after})
        return
    change = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    say(f"{mask_url(config.store.url)}: {change} schema revision {after}")


# -- notifications ---------------------------------------------------------------------------------

def _store(config: Any) -> Any:
    from ml_connector.store.crypto import load_keyring
    from ml_connector.store.sql import SqlStore

    return SqlStore(config.store.url, load_keyring(config.store.key_file, os.environ))


def _region(config: Any, flow: str | None) -> str:
    """The phone region a --recipient without country code is read in: the flow's source's, else the first's."""
    spec = config.flows.get(flow) if flow else None
    sources = [config.sources[spec.source]] if spec else list(config.sources.values())
    return str(getattr(sources[0], "default_region", "US")) if sources else "US"


def _recipient(config: Any, flow: str | None, recipient: str | None) -> str | None:
    if recipient is None:
        return None
    from ml_connector.compliance.phones import normalise

    try:
        return normalise(recipient, _region(config, flow), "--recipient")
    except MlcError as exc:
        raise click.BadParameter(str(exc), param_hint="--recipient") from None


def _filter(statuses: Sequence[str], *, flow: str | None = None, since: datetime | None = None,
            until: datetime | None = None, recipient: str | None = None, limit: int = 100,
            ids: Sequence[int] = ()) -> Any:
    from ml_connector.store.port import NotificationFilter

    _window(since, until)
    return NotificationFilter(flow=flow, statuses=tuple(Status(s) for s in statuses), since=since, until=until,
                              recipient=recipient, ids=tuple(ids), limit=limit)


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


STATUS_STYLE: Mapping[str, str] = {
    "delivered": "green", "read": "green", "sent": "cyan", "queued": "cyan", "sending": "yellow",
    "pending": "yellow", "deferred": "yellow", "failed": "red", "undelivered": "red", "dead": "red",
    "suppressed": "magenta",
}


NOTIFICATION_COLUMNS = (
    Column("id", right=True), Column("flow"), Column("status"), Column("to"),
    Column("record", "wrap", 10), Column("created (UTC)", "spill"), Column("tries", "spill"),
    Column("detail", "spill"),
)


def print_notifications(views: Sequence[Any], title: str = "notifications (newest first)") -> None:
    """The notifications as a table that fits the terminal (plain text when piped)."""
    rows = [(str(v.id), v.flow, str(v.status), mask_phone(v.recipient) or "(none)", v.record_key, _utc(v.created_at),
             str(v.attempts_made), v.problem or (v.provider_id or "")) for v in views]
    styles = [{2: STATUS_STYLE.get(str(v.status), "")} for v in views]
    print_table(out_console(), NOTIFICATION_COLUMNS, rows, title=title, styles=styles)


@main.group()
def notifications() -> None:
    """Inspect notifications."""


_status_choice = click.Choice([s.value for s in Status], case_sensitive=False)


@notifications.command("list")
@click.option("--flow", help="Only this flow.")
@click.option("--status", "statuses", multiple=True, type=_status_choice, help="Only these statuses (repeatable).")
@click.option("--since", type=WHEN, help="Created at or after: ISO date/time (UTC unless it says) or 30m/24h/7d ago.")
@click.option("--until", type=WHEN, help="Created before (same forms as --since).")
@click.option("--recipient", help="Phone number in any format; matched by keyed hash.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (phone numbers masked).")
@click.pass_context
def notifications_list(ctx: click.Context, flow: str | None, statuses: Sequence[str], since: datetime | None,
                       until: datetime | None, recipient: str | None, limit: int, as_json: bool) -> None:
    """List notifications, newest first."""
    config = load(ctx)
    flt = _filter(statuses, flow=flow, since=since, until=until, recipient=_recipient(config, flow, recipient),
                  limit=limit)
    views = _store(config).list_notifications(flt)
    if as_json:
        emit_json([_view_dict(v) for v in views])
        return
    if not views:
        say_error("no notifications match")
        return
    print_notifications(views)
    if len(views) == limit:
        say_error(f"showing the newest {limit}; --limit shows more")


# -- replay ----------------------------------------------------------------------------------------

def _confirm(question: str) -> bool:
    """Ask; end of input counts as no, Ctrl-C as an interruption."""
    try:
        return click.confirm(question, default=False)
    except click.Abort as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        return False


def _explicit(store: Any, ids: Sequence[int], views: Sequence[Any]) -> int:
    """Say why each named id will not be replayed; the exit code that leaves (0 when all will be)."""
    found = {v.id for v in views}
    codes = [EXIT_OK]
    for notification_id in dict.fromkeys(ids):
        if notification_id in found:
            continue
        view = store.get_notification(notification_id)
        if view is None:
            say_error(f"notification {notification_id}: not found")
            codes.append(EXIT_NOT_FOUND)
        elif view.status not in REPLAYABLE:
            say_error(f"notification {notification_id}: is {view.status}; only "
                      f"{', '.join(sorted(REPLAYABLE))} notifications can be replayed")
            codes.append(EXIT_FAILED)
        else:
            say_error(f"notification {notification_id}: does not match the filter")
            codes.append(EXIT_FAILED)
    return EXIT_NOT_FOUND if EXIT_NOT_FOUND in codes else max(codes)


@main.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--flow", help="Only this flow.")
@click.option("--status", "statuses", multiple=True, type=click.Choice(sorted(s.value for s in REPLAYABLE)),
              help="Only these statuses (default: all replayable ones).")
@click.option("--since", type=WHEN, help="Created at or after (ISO date/time or 30m/24h/7d ago).")
@click.option("--until", type=WHEN, help="Created before.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--re-resolve", "re_resolve", is_flag=True,
              help="Read the ERP record again first: look the recipient up and render the template anew "
                   "(both versions are audited). Needed for notifications that never had a recipient.")
@click.option("--force", is_flag=True, help="Replay even what Twilio refused for good (21211, 21610, ...).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before replaying more than one.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output; never asks: without --yes it lists what would be replayed, exit 1.")
@click.pass_context
def replay(ctx: click.Context, ids: Sequence[int], flow: str | None, statuses: Sequence[str],
           since: datetime | None, until: datetime | None, limit: int, re_resolve: bool, force: bool, yes: bool,
           as_json: bool) -> None:
    """Send failed, dead or undelivered notifications again (by id or filter); old attempts are kept.

    Without --re-resolve the stored message is sent again as it was. What Twilio refused for good
    is refused here too, with what to fix first, unless --force (or --re-resolve found a new number).
    Several at once are listed and confirmed first (--yes skips the question).
    """
    from ml_connector.runtime.replay import apply, decide, judge

    if not ids and not (flow or statuses or since or until):
        raise click.UsageError("give notification ids, or a filter (--flow/--status/--since/--until)")
    app = connector(ctx) if re_resolve else None
    store = app.store if app is not None else _store(load(ctx))
    chosen = statuses or sorted(s.value for s in REPLAYABLE)
    views = store.list_notifications(_filter(chosen, flow=flow, since=since, until=until, limit=limit, ids=ids))
    code = _explicit(store, ids, views) if ids else EXIT_OK
    if not views:
        fail("nothing to replay", code if ids else EXIT_NOT_FOUND)
    if len(views) == limit:
        say_error(f"only the newest {limit} matching notifications are considered; --limit raises it")

    async def decided() -> list[Any]:
        try:
            return await decide(views, re_resolve_them=re_resolve, force=force,
                                flows=app.flows if app is not None else {})
        finally:
            if app is not None:
                await app.aclose()

    decisions = run_async(decided()) if re_resolve else [judge(v, revision=None, force=force) for v in views]
    refused = [d for d in decisions if not d.replay]
    for d in refused:
        say_error(f"notification {d.notification_id}: not replayed: {d.why_not}")
    code = max(code, EXIT_FAILED if refused else EXIT_OK)
    going = [d for d in decisions if d.replay]
    if not going:
        if as_json:
            emit_json({"replayed": [], "refused": [d.as_dict() for d in refused]})
        fail("nothing to replay", code)
    if as_json and not yes and len(going) > 1:  # a question people would be asked; --json never asks
        emit_json({"replayed": [], "would_replay": [d.as_dict() for d in going],
                   "refused": [d.as_dict() for d in refused]})
        fail("not replayed: --json never asks; add --yes to replay these", EXIT_FAILED)
    if len(going) > 1 and not yes:
        wanted = {d.notification_id for d in going}
        print_notifications([v for v in views if v.id in wanted], title="to replay")
        if not _confirm(f"Replay these {len(going)} notifications?"):
            fail("not replayed (use --yes to skip this question)", EXIT_FAILED)
    replayed = apply(store, going, datetime.now(UTC), os.environ.get("USER") or "cli")
    if as_json:
        emit_json({"replayed": replayed, "decisions": [d.as_dict() for d in decisions]})
    else:
        for d in going:
            if d.revision is not None:
                what = ", ".join(d.changed) + " changed" if d.changed else "nothing changed"
                say(f"notification {d.notification_id}: re-resolved from the ERP ({what}; now "
                    f"{d.revision.recipient_field} {mask_phone(d.revision.recipient)})")
        say(f"replayed {len(replayed)} notification(s): {', '.join(map(str, replayed))}; "
            f"the dispatcher sends them again (old attempts kept)")
    raise SystemExit(code)


# -- audit -----------------------------------------------------------------------------------------

AUDIT_FIELDS = ("id", "at", "notification_id", "flow", "kind", "status", "detail")


def _write_audit(entries: Iterable[Any], fmt: str, stream: IO[str]) -> int:
    writer = csv.DictWriter(stream, fieldnames=AUDIT_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    count = 0
    for entry in entries:
        row: dict[str, Any] = {"id": entry.id, "at": entry.at.isoformat(), "notification_id": entry.notification_id,
                               "flow": entry.flow, "kind": entry.kind, "status": entry.status}
        if writer:
            writer.writerow({**row, "detail": json.dumps(dict(entry.detail), default=str, sort_keys=True)})
        else:
            stream.write(json.dumps({**row, "detail": dict(entry.detail)}, default=str, sort_keys=False) + "\n")
        count += 1
    return count


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--since", type=WHEN, help="Rows at or after: ISO date/time (UTC unless it says) or 30m/24h/7d ago.")
@click.option("--until", type=WHEN, help="Rows before.")
@click.option("--notification", "notification", type=int, help="Only the rows of this notification.")
@click.option("--flow", help="Only the rows of this flow.")
@click.option("--kind", "kinds", multiple=True,
              help="Only rows of these kinds (repeatable): created, claimed, attempt, status, replay, poll, ...")
@click.option("--output", "-o", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="File to write (default: standard output).")
@click.pass_context
def audit_export(ctx: click.Context, fmt: str, since: datetime | None, until: datetime | None,
                 notification: int | None, flow: str | None, kinds: Sequence[str], output: str) -> None:
    """Export audit rows (every state change with its time and cause) as CSV or JSON lines.

    Phone numbers, message bodies and secrets are never in the audit trail, so never in the export.
    """
    _window(since, until)
    store = _store(load(ctx))
    rows = store.audit(since, until, notification=notification, flow=flow, kinds=tuple(kinds))
    if output == "-":
        count = _write_audit(rows, fmt, sys.stdout)
    else:
        with open(output, "w", encoding="utf-8", newline="") as stream:
            count = _write_audit(rows, fmt, stream)
    say_error(f"exported {count} audit row(s)" + ("" if output == "-" else f" to {output}"))


# -- demo and simulators ---------------------------------------------------------------------------

@main.command()
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Keep the demo's databases here (default: a temporary directory).")
@click.option("--every", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between ERP events.")
def demo(duration: float | None, data_dir: str | None, every: float) -> None:
    """Run everything against the built-in simulators and show each notification's journey."""
    from ml_connector.demo import run_demo

    delivered = run_async(run_demo(duration=duration, data_dir=Path(data_dir) if data_dir else None,
                                   every=every, console=out_console()))
    raise SystemExit(EXIT_OK if delivered else EXIT_FAILED)


@main.command()
@click.option("--twilio-port", type=click.IntRange(0, 65535), default=None,
              help="Default: the port of the config's Twilio base URL.")
@click.option("--events/--no-events", default=True, show_default=True,
              help="Generate ERP events every few seconds.")
@click.pass_context
def simulate(ctx: click.Context, twilio_port: int | None, events: bool) -> None:
    """Serve the simulators the config points at (Twilio on loopback, the demo ERP database)."""
    from ml_connector.demo import run_simulators

    config = load(ctx)
    run_async(run_simulators(config, twilio_port=twilio_port, events=events, console=out_console(stderr=True)))
    say_error("simulators stopped")


from ml_connector.cli_flows import flows  # noqa: E402 - these register on `main`, which they import
from ml_connector.cli_journey import notifications_show  # noqa: E402
from ml_connector.cli_users import tokens, users  # noqa: E402

main.add_command(flows)
notifications.add_command(notifications_show)
main.add_command(users)
main.add_command(tokens)
from ml_connector.cli_config import config_group  # noqa: E402 - commands in their own modules
from ml_connector.cli_keys import keys_group  # noqa: E402
from ml_connector.cli_secrets import secrets_group  # noqa: E402

main.add_command(config_group)
main.add_command(secrets_group)
main.add_command(keys_group)
