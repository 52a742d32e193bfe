"""Deciding a replay: resend the stored message, or read the ERP again first; refuse what cannot work.

`decide()` judges each notification and says why not when it will not replay it:

- a notification that never had a usable recipient can only be replayed after reading the
  ERP record again (`re_resolve=True`), since the stored one has no number to send to;
- a permanent Twilio failure (21211 invalid number, 21610 opted out, ...; core.remedies) is
  refused with the code's meaning and what to fix first, unless `force`, or unless re-resolving
  found another number for a code that a new number fixes;
- with `re_resolve`, the record is read through the flow's source (`lookup`), the recipient is
  resolved again by the same recipient rule that produced it, and the template is rendered
  again; a record gone, a number still unusable or a template error refuse that one replay.

`apply()` hands the decisions to the store, which keeps the old attempts and writes both
versions in the audit (store.replays). The CLI calls these; a REST API or dashboard can too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ml_connector.core import dedupe, routing, rules
from ml_connector.core.flowspec import FieldRecipient, LookupRecipient, RecipientSpec, StaticRecipients
from ml_connector.core.idempotency import notification_key
from ml_connector.core.remedies import permanent_failure
from ml_connector.core.segments import segment_info
from ml_connector.errors import MlcError, TemplateError
from ml_connector.runtime.poller import FlowRuntime, template_context
from ml_connector.runtime.recipients import RecipientResolver
from ml_connector.store.port import NotificationView, Revision


@dataclass(frozen=True, slots=True)
class ReplayDecision:
    """Whether one notification is replayed, and how; `why_not` says why it is not."""

    notification_id: int
    replay: bool
    why_not: str | None = None
    revision: Revision | None = None
    forced: bool = False
    changed: tuple[str, ...] = ()     # what re-resolving changed: "recipient", "body"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.notification_id, "replay": self.replay, "why_not": self.why_not,
                "re_resolved": self.revision is not None, "forced": self.forced, "changed": list(self.changed)}


def never_addressed(view: NotificationView) -> bool:
    """Failed before any send because no usable number was found: nothing stored to send to."""
    return view.attempts_made == 0 and not view.recipient.startswith("+")


def _labels(spec: RecipientSpec) -> set[str]:
    """Every `recipient_field` this recipient rule can give a notification (runtime.recipients)."""
    if isinstance(spec, StaticRecipients):
        return {"static"}
    if isinstance(spec, FieldRecipient):
        fields = [spec.field] if isinstance(spec.field, str) else list(spec.field)
        return {*fields, "|".join(fields)}
    if isinstance(spec, LookupRecipient):
        look = spec.lookup
        prefix = f"{look.entity}."
        return {*(prefix + f for f in look.fields), prefix + "|".join(look.fields), look.key_field,
                prefix + look.key_field}
    return set()


async def re_resolve(flow: FlowRuntime, view: NotificationView, resolver: RecipientResolver) -> Revision | str:
    """The notification as a poll would make it from the ERP's record now; or why that cannot be."""
    try:
        record = await flow.source.lookup(view.entity, view.record_key)
    except MlcError as exc:
        return f"could not read {view.entity} {view.record_key} from source {flow.spec.source}: {exc}"
    if record is None:
        return f"{view.entity} {view.record_key} is no longer in source {flow.spec.source}"
    specs = routing.recipients_for(flow.spec.recipients, flow.spec.routing_table, record.data)
    rule = next((s for s in specs if view.recipient_field in _labels(s)), None)
    if rule is None:
        return (f"flow {flow.name} no longer addresses {view.recipient_field} for this record "
                f"(fan-out members cannot be re-resolved one by one)")
    found = await resolver.resolve([rule], record)
    same = [r for r in found if r.phone == view.recipient]
    if not same and len(found) != 1:
        return f"{view.recipient_field} now gives {len(found)} recipients: cannot tell which one this was"
    chosen = (same or found)[0]
    if chosen.phone is None:
        return f"still {chosen.reason}" if chosen.reason else "still no usable phone number"
    try:
        body = flow.template.render(template_context(flow.name, record))
    except TemplateError as exc:
        return f"the template cannot be rendered for the record now: {exc}"
    snapshot = rules.compile_trigger(flow.spec.trigger).snapshot(record.data)
    key_part, version_part = dedupe.key_parts(flow.spec.dedupe_on, record.key, view.event_version, record.data,
                                              snapshot)
    key = notification_key(flow.name, view.entity, key_part, version_part, chosen.phone, flow.spec.channel)
    return Revision(idempotency_key=key, recipient=chosen.phone, recipient_field=chosen.field, body=body,
                    segments=segment_info(body).segments)


def judge(view: NotificationView, *, revision: Revision | None, force: bool) -> ReplayDecision:
    """The decision for one notification, given what re-resolving found (None: not re-resolved)."""
    if revision is None and never_addressed(view):
        return ReplayDecision(view.id, False, (
            f"it never had a usable recipient ({view.reason or view.problem}); fix the ERP data, then "
            f"replay with --re-resolve to look the recipient up again"))
    changed = tuple(name for name, differs in (
        ("recipient", revision is not None and revision.recipient != view.recipient),
        ("body", revision is not None and revision.body != view.body)) if differs)
    permanent = permanent_failure(view.error_code)
    fixed = permanent is not None and permanent.recipient_fixes_it and "recipient" in changed
    if permanent is not None and not fixed and not force:
        return ReplayDecision(view.id, False, (
            f"Twilio refused it for good: [{permanent.code}] {permanent.meaning} "
            f"(https://www.twilio.com/docs/api/errors/{permanent.code}); fix first: {permanent.fix}; "
            f"--force replays it anyway"))
    return ReplayDecision(view.id, True, None, revision, forced=permanent is not None and not fixed,
                          changed=changed)


async def decide(views: Sequence[NotificationView], *, re_resolve_them: bool, force: bool,
                 flows: Mapping[str, FlowRuntime]) -> list[ReplayDecision]:
    """A decision for each of `views` (already known to be in a replayable status)."""
    if not re_resolve_them:
        return [judge(view, revision=None, force=force) for view in views]
    resolvers: dict[str, RecipientResolver] = {}
    decisions: list[ReplayDecision] = []
    for view in views:
        flow = flows.get(view.flow)
        if flow is None:
            decisions.append(ReplayDecision(view.id, False, f"flow {view.flow} is not configured (or not "
                                                            "enabled): its ERP record cannot be read again"))
            continue
        resolver = resolvers.setdefault(view.flow, RecipientResolver(flow.source, flow.default_region))
        found = await re_resolve(flow, view, resolver)
        if isinstance(found, str):
            decisions.append(ReplayDecision(view.id, False, found))
        else:
            decisions.append(judge(view, revision=found, force=force))
    return decisions


def apply(store: Any, decisions: Sequence[ReplayDecision], now: datetime, actor: str) -> list[int]:
    """Replay what was decided (one store transaction; async callers run it in a worker thread)."""
    chosen = [d for d in decisions if d.replay]
    if not chosen:
        return []
    replayed: list[int] = store.replay(
        [d.notification_id for d in chosen], now, actor,
        revisions={d.notification_id: d.revision for d in chosen if d.revision is not None},
        forced=[d.notification_id for d in chosen if d.forced],
    )
    return replayed
