"""`ml-connector notifications show ID`: one notification's whole journey in one place.

The record and poll that made it, the rule that fired, its recipient and the ones of the same
event that were skipped, every attempt (SID, Twilio's code and message, the code's page), every
status report with what it did, write-backs and replays, then the full timeline.
"""

from __future__ import annotations

from typing import Any

import click

from ml_connector.cli import EXIT_NOT_FOUND, _iso, _utc, _view_dict, emit_json, fail, load, say
from ml_connector.cli_flows import open_store
from ml_connector.cli_output import Column, print_table
from ml_connector.cli_output import console as out_console
from ml_connector.store.journey import Journey, error_link

_OPS = ("eq", "ne", "in_", "not_in", "gt", "gte", "lt", "lte", "is_null", "matches", "becomes", "changed")


def describe_trigger(node: Any) -> str:
    """A trigger as people write it: 'status becomes APPROVED', '(a eq 1 and b changed)'."""
    for word in ("all", "any"):
        parts = getattr(node, word, None)
        if isinstance(parts, list):
            inner = f" {'and' if word == 'all' else 'or'} ".join(describe_trigger(p) for p in parts)
            return f"({inner})" if len(parts) > 1 else inner
    for op in _OPS:
        value = getattr(node, op, None)
        if value is not None:
            name = op.rstrip("_")
            return f"{node.field} {name}" + ("" if value is True and op in ("changed", "is_null") else f" {value}")
    return str(node)


def journey_dict(j: Journey, config: Any) -> dict[str, Any]:
    spec = config.flows.get(j.flow)
    return {
        "record": {"entity": j.entity, "key": j.record_key, "event_version": j.event_version,
                   "changed_at": _iso(j.record_changed_at)},
        "poll": {k: (_iso(v) if k == "at" else v) for k, v in j.poll.items()} if j.poll else None,
        "rule": describe_trigger(spec.trigger) if spec else None,
        "source": spec.source if spec else None,
        "other_recipients": [{"id": s.id, "recipient_field": s.recipient_field, "status": s.status,
                              "reason": s.reason} for s in j.siblings],
        "callbacks": [{"at": _iso(c.at), "provider_id": c.detail.get("provider_id"),
                       "provider_status": c.detail.get("provider_status"), "code": c.detail.get("code"),
                       "result": c.detail.get("result"), "status_after": c.status} for c in j.callbacks],
        "write_backs": [{"source": w.source, "delivery_status": w.delivery_status, "state": w.state,
                         "attempts": w.attempts_made, "last_error": w.last_error,
                         "updated_at": _iso(w.updated_at)} for w in j.write_backs],
        "replays": [{"at": _iso(r.at), **dict(r.detail)} for r in j.replays],
        "timeline": [{"at": _iso(s.at), "kind": s.kind, "status": s.status, "summary": s.summary,
                      "detail": dict(s.detail)} for s in j.steps],
    }


@click.command("show")
@click.argument("notification_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (phone numbers masked).")
@click.pass_context
def notifications_show(ctx: click.Context, notification_id: int, as_json: bool) -> None:
    """One notification's whole journey: record, poll, rule, recipients, attempts, callbacks,
    write-backs and replays."""
    config = load(ctx)
    store = open_store(ctx, config)
    view = store.get_notification(notification_id)
    journey = store.journey(notification_id)
    if view is None or journey is None:
        fail(f"no notification {notification_id}", EXIT_NOT_FOUND)
    data = _view_dict(view, full=True)
    for attempt in data["attempt_history"]:
        attempt["error_docs"] = error_link(attempt["error_code"])
    data["error_docs"] = error_link(view.error_code)
    data["journey"] = journey_dict(journey, config)
    if as_json:
        emit_json(data)
        return
    out = out_console()
    for key, value in data.items():
        if key not in ("attempt_history", "journey", "error_docs"):
            say(f"{key}: {'' if value is None else value}")
    if data["error_docs"]:
        say(f"error_docs: {data['error_docs']}")
    j = data["journey"]
    say("")
    say(f"record: {journey.entity} {journey.record_key} (version {journey.event_version}, changed "
        f"{_utc(journey.record_changed_at)} UTC) from source {j['source'] or '(flow no longer configured)'}")
    if journey.poll:
        p = journey.poll
        say(f"poll: {_utc(p['at'])} UTC ({p.get('watermark_kind')} poll, {p.get('inserted')} new, "
            f"watermark {p.get('watermark') or 'unchanged'})")
    if j["rule"]:
        say(f"rule: {j['rule']}")
    for s in journey.siblings:
        state = f"skipped: {s.reason}" if s.reason else s.status
        say(f"same event, other recipient: #{s.id} {s.recipient_field}: {state}")
    say("")
    rows = [(str(a.attempt_no), a.outcome or "in flight", _utc(a.started_at), a.provider_id or "",
             a.provider_status or "", str(a.error_code or ""), a.error_message or "",
             error_link(a.error_code) or "") for a in view.attempts]
    print_table(out, (Column("#", right=True), Column("outcome"), Column("started (UTC)", "wrap", 10),
                      Column("sid"), Column("status"), Column("code"), Column("message", "spill"),
                      Column("docs", "spill")),
                rows, title="attempts")
    if journey.callbacks:
        say("")
        print_table(out, (Column("received (UTC)", "wrap", 10), Column("status"), Column("code"),
                          Column("result"), Column("sid", "spill")),
                    [(_utc(c.at), str(c.detail.get("provider_status") or ""), str(c.detail.get("code") or ""),
                      str(c.detail.get("result") or ""), str(c.detail.get("provider_id") or ""))
                     for c in journey.callbacks], title="callbacks")
    for w in journey.write_backs:
        error = f", last error: {w.last_error}" if w.last_error else ""
        say(f"write-back to {w.source}: {w.delivery_status} {w.state} after {w.attempts_made} try(ies){error}")
    say("")
    print_table(out, (Column("at (UTC)", "wrap", 10), Column("what", "wrap", 20)),
                [(_utc(s.at), s.summary) for s in journey.steps], title="timeline")
