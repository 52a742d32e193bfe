"""`ml-connector flows`: each flow's state, and pause, resume and reset, for every process at once.

Pauses and resets live in the store, so they reach every process of a deployment: a poller
asks before each poll. Each change is audited with the user who made it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from ml_connector.cli import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    When,
    _confirm,
    _iso,
    _store,
    _utc,
    emit_json,
    fail,
    load,
    say,
    say_error,
)
from ml_connector.cli_output import Column, print_table
from ml_connector.cli_output import console as out_console


def duration(value: timedelta | None) -> str:
    """A short human duration: 45s, 5m, 2h30m, 3d4h."""
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    if seconds < 60:
        fraction = value.total_seconds() % 1
        return f"{sign}{seconds}s" if not fraction or seconds else f"{sign}{abs(value.total_seconds()):g}s"
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if seconds >= size:
            rest = (seconds % size) // sub_size
            return f"{sign}{seconds // size}{unit}" + (f"{rest}{sub}" if rest else "")
    return f"{sign}{seconds}s"  # pragma: no cover - every value >= 60 s matched above


def open_store(ctx: click.Context, config: Any) -> Any:
    """The store, closed when the command ends (its connections are not left to the collector)."""
    store = _store(config)
    ctx.call_on_close(store.close)
    return store


def _actor() -> str:
    return os.environ.get("USER") or "cli"


def _known_flow(config: Any, flow: str) -> None:
    if flow not in config.flows:
        fail(f"no flow {flow!r}; flows: {', '.join(config.flows) or '(none)'}", EXIT_NOT_FOUND)


def _rows(config: Any, store: Any, now: datetime) -> list[dict[str, Any]]:
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    states = store.flow_states(list(config.flows), today)
    rows: list[dict[str, Any]] = []
    for name, state in states.items():
        spec = config.flows.get(name)
        last = None
        if state.last_poll_at is not None:
            last = ("ok" if state.last_poll_ok else "failed") + (
                f": read {state.last_poll_read}, {state.last_poll_inserted} new" if state.last_poll_ok else "")
        rows.append({
            "flow": name,
            "configured": spec is not None,
            "enabled": bool(spec and spec.enabled),
            "paused": state.paused, "paused_by": state.paused_by, "paused_at": _iso(state.paused_at),
            "source": spec.source if spec else None, "entity": spec.entity if spec else None,
            "every": duration(spec.schedule.every) if spec else None,
            "lookback": (f"{duration(spec.schedule.lookback.window)} every {duration(spec.schedule.lookback.every)}"
                         if spec and spec.schedule.lookback else None),
            "watermark": _iso(state.watermark), "started_at": _iso(state.started_at),
            "lag_seconds": (now - state.watermark).total_seconds() if state.watermark else None,
            "last_poll_at": _iso(state.last_poll_at), "last_poll_kind": state.last_poll_kind,
            "last_poll": last, "last_error": state.last_error, "last_error_at": _iso(state.last_error_at),
            "events_today": state.events_since,
            "polled_by": store.flow_lock_holder(name) if spec else None,
        })
    return rows


def _state_word(row: dict[str, Any]) -> str:
    if not row["configured"]:
        return "removed"
    if not row["enabled"]:
        return "disabled"
    return "paused" if row["paused"] else "active"


_STYLE = {"paused": "yellow", "active": "green", "disabled": "dim", "removed": "dim"}
COLUMNS = (
    Column("flow"), Column("state"), Column("source", "wrap", 6), Column("entity", "wrap", 6),
    Column("every", "spill"), Column("watermark (UTC)", "wrap", 10), Column("lag", "spill"),
    Column("today", right=True), Column("last poll", "spill"), Column("polled by", "spill"),
    Column("last error", "spill"),
)


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def flows(ctx: click.Context, as_json: bool) -> None:
    """Each flow's state: source, entity, schedule, watermark, lag, last poll, errors, events today,
    the process polling it, paused or not. Subcommands pause, resume and reset flows."""
    if ctx.invoked_subcommand is not None:
        return
    config = load(ctx)
    now = datetime.now(UTC)
    rows = _rows(config, open_store(ctx, config), now)
    if as_json:
        emit_json(rows)
        return
    table = []
    for r in rows:
        last = f"{_utc(datetime.fromisoformat(r['last_poll_at']))} {r['last_poll']}" if r["last_poll_at"] else "never"
        error = f"{_utc(datetime.fromisoformat(r['last_error_at']))} {r['last_error']}" if r["last_error"] else ""
        lag = duration(timedelta(seconds=r["lag_seconds"])) if r["lag_seconds"] is not None else ""
        every = (r["every"] or "") + (f" (lookback {r['lookback']})" if r["lookback"] else "")
        state = _state_word(r) + (f" by {r['paused_by']}" if r["paused"] else "")
        watermark = _utc(datetime.fromisoformat(r["watermark"])) if r["watermark"] else "none yet"
        table.append((r["flow"], state, r["source"] or "", r["entity"] or "", every, watermark, lag,
                      str(r["events_today"]), last, r["polled_by"] or "no process", error))
    styles = [{1: _STYLE[_state_word(r)], 10: "red"} for r in rows]
    print_table(out_console(), COLUMNS, table, styles=styles)


def _pause(ctx: click.Context, flow: str, paused: bool, as_json: bool) -> None:
    config = load(ctx)
    _known_flow(config, flow)
    changed = open_store(ctx, config).set_flow_paused(flow, paused, _actor())
    word = "paused" if paused else "resumed"
    if as_json:
        emit_json({"flow": flow, "paused": paused, "changed": changed})
    elif changed:
        say(f"flow {flow}: {word} for every process" + (
            "; its watermark is kept, `flows resume` continues from it" if paused else
            "; polled again at its next turn"))
    else:
        say(f"flow {flow}: already {word}")


@flows.command("pause")
@click.argument("flow")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def flows_pause(ctx: click.Context, flow: str, as_json: bool) -> None:
    """Stop polling FLOW in every process (sending what is queued goes on); the watermark is kept."""
    _pause(ctx, flow, True, as_json)


@flows.command("resume")
@click.argument("flow")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def flows_resume(ctx: click.Context, flow: str, as_json: bool) -> None:
    """Poll FLOW again, from the watermark it had when paused."""
    _pause(ctx, flow, False, as_json)


@flows.command("reset")
@click.argument("flow")
@click.option("--to", "to", type=When(), help="Move the watermark here (ISO date/time, or 30m/24h/7d ago).")
@click.option("--baseline", is_flag=True,
              help="Start the flow afresh: forget its watermarks and last-seen values; its next poll "
                   "re-takes the baseline (records changed in that window are history, not events).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (never asks: needs --yes).")
@click.pass_context
def flows_reset(ctx: click.Context, flow: str, to: datetime | None, baseline: bool, yes: bool,
                as_json: bool) -> None:
    """Move FLOW's watermark (--to TIME) or re-take its baseline (--baseline); audited.

    Moving the watermark back reads that period again at the next poll: events already notified
    are not notified twice. Pause the flow first if it is polled while you reset it.
    """
    if to is None and not baseline:
        raise click.UsageError("give --to TIME or --baseline")
    config = load(ctx)
    _known_flow(config, flow)
    store = open_store(ctx, config)
    now = datetime.now(UTC)
    if to is not None and to > now:
        raise click.BadParameter("must not be in the future", param_hint="--to")
    current = store.get_watermark(flow)
    plan = {"flow": flow, "watermark": _iso(current), "to": _iso(to), "baseline": baseline}
    what = ("re-take its baseline (forget its watermarks and last-seen values)" if baseline else "")
    if to is not None:
        what += (" and " if what else "") + f"move its watermark to {_utc(to)} UTC"
    question = f"Flow {flow}: watermark {(_utc(current) + ' UTC') if current else 'none yet'}; {what}?"
    if not yes:
        if as_json:
            emit_json({**plan, "reset": False, "reason": "not confirmed: --json never asks, add --yes"})
            raise SystemExit(EXIT_FAILED)
        if not _confirm(question):
            fail("not reset (use --yes to skip this question)", EXIT_FAILED)
    result = store.reset_flow(flow, to=to, baseline=baseline, actor=_actor(), now=now)
    if as_json:
        emit_json({**plan, "reset": True, "previous": _iso(result.previous),
                   "states_dropped": result.states_dropped})
    else:
        done = [f"baseline re-taken ({result.states_dropped} last-seen value(s) forgotten)"] if baseline else []
        done += [f"watermark moved to {_utc(to)} UTC"] if to is not None else []
        say(f"flow {flow}: {'; '.join(done)}; the next poll starts from there")
    if store.flow_lock_holder(flow) and flow not in store.paused_flows():
        say_error(f"note: {store.flow_lock_holder(flow)} is polling {flow}; a poll in flight may still "
                  f"save its own watermark (pause the flow first to be sure)")
    raise SystemExit(EXIT_OK)
