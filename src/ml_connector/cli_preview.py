"""`ml-connector preview FLOW`: what the flow would send now, read from the configured ERP.

Read-only on both sides: the ERP is only read, the store's last-seen values are only read, and
nothing is sent (runtime.preview).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import click

from ml_connector.cli import emit_json, load, run_async, say, say_error

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Ago(click.ParamType[timedelta]):
    """A duration back from now: 30m, 12h, 2d, 1w."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        m = _DURATION.match(str(value))
        if not m or int(m.group(1)) == 0:
            self.fail(f"{value!r}: use a duration such as 30m, 12h, 2d or 1w", param, ctx)
        return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _item_lines(item: Any) -> list[str]:
    """One would-be notification as a few lines (bodies stay whole for reading and grep)."""
    lines = [f"{item.entity} {item.record_key}  changed {item.changed_at:%Y-%m-%d %H:%M:%S}Z  {item.event}"]
    if item.already_stored:
        lines.append("  (already notified: this notification is stored; a poll would not send it again)")
    if item.recipient:
        lines.append(f"  to:   {item.recipient} ({item.recipient_field})")
    else:
        where = f" ({item.recipient_field})" if item.recipient_field else ""
        lines.append(f"  to:   nobody{where}: {item.reason}")
    lines.append(f"  via:  {item.channel}, account {item.account}, from {item.sender}")
    if item.text is not None:
        plural = "" if item.segments == 1 else "s"
        lines.append(f"  text: {item.text}")
        lines.append(f"        {len(item.text)} character(s), {item.segments} segment{plural}, {item.encoding}")
    return lines


@click.command()
@click.argument("flow")
@click.option("--since", "since", type=Ago(), default="2d", show_default=True,
              help="How far back to read the ERP's changes (30m, 12h, 2d, 1w).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0),
              help="List at most this many notifications (all are counted).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (phone numbers masked).")
@click.pass_context
def preview(ctx: click.Context, flow: str, since: timedelta, limit: int, as_json: bool) -> None:
    """Show what FLOW would send for the ERP's recent changes; nothing is sent or stored.

    The flow's source is read over the last --since, each record judged against the last-seen
    values in the store (not updated), recipients resolved and the template rendered.
    """
    from ml_connector.runtime.preview import preview_config

    config = load(ctx)
    found = run_async(preview_config(config, flow, since=since, limit=limit))
    if as_json:
        emit_json(found.as_dict())
        return
    for note in found.notes:
        say_error(f"note: {note}")
    for item in found.items:
        for line in _item_lines(item):
            say(line)
        say("")
    if found.more:
        say_error(f"{found.more} more not listed; --limit shows more")
    say(f"flow {found.flow}: read {found.read} {found.entity} record(s) changed {found.since:%Y-%m-%d %H:%M}Z to "
        f"{found.until:%Y-%m-%d %H:%M}Z; {found.fired} event(s); would send {found.would_send} notification(s), "
        f"{found.without_recipient} without a usable recipient, {found.already_stored} already notified; "
        f"nothing was sent or stored")
