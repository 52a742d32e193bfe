"""REST API `/api/v1/...`: notifications, journeys, replay, flows, audit; JSON with cursor pages.

Errors are RFC 9457 problem details (`application/problem+json`); a 422 lists each bad
parameter or body field by name. Authentication: an API token (`Authorization: Bearer`), the
SSO header from a trusted proxy, or a dashboard session (whose writes must carry the CSRF token
in `X-CSRF-Token`). Replay and pause/resume need the operator role.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ml_connector.core.lifecycle import REPLAYABLE
from ml_connector.core.redact import mask_phone
from ml_connector.store.insights import JourneyData, PageQuery
from ml_connector.store.port import NotificationView
from ml_connector.store.users import Principal
from ml_connector.web import api_models as m
from ml_connector.web.auth import CSRF_HEADER, Authenticator, csrf_ok
from ml_connector.web.filters import parse_filters
from ml_connector.web.openapi import MAX_ID, openapi_document
from ml_connector.web.surface import REPLAY_CAP, FlowRow, PauseUnsupported, Surface

__all__ = ["api_routes", "problem"]

PROBLEM = "application/problem+json"
_MAX_BODY = 16_384
_AUDIT_LIMIT = 1000
_M = TypeVar("_M", bound=BaseModel)


def problem(status: int, title: str, detail: str | None = None,
            errors: Sequence[tuple[str, str]] = (), headers: dict[str, str] | None = None) -> Response:
    body = m.Problem(title=title, status=status, detail=detail,
                     errors=[m.ProblemField(name=n, detail=d) for n, d in errors] or None)
    return Response(body.model_dump_json(exclude_none=True), status_code=status, media_type=PROBLEM,
                    headers=headers)


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def notification(v: NotificationView) -> m.Notification:
    return m.Notification(
        id=v.id, flow=v.flow, entity=v.entity, record_key=v.record_key, channel=v.channel, status=str(v.status),
        recipient=mask_phone(v.recipient), recipient_field=v.recipient_field, sender=v.sender,
        provider_id=v.provider_id, error_code=v.error_code, error_message=v.error_message, reason=v.reason,
        attempts_made=v.attempts_made, max_attempts=v.max_attempts, segments=v.segments, created_at=v.created_at,
        updated_at=v.updated_at, next_attempt_at=v.next_attempt_at,
    )


def _detail(v: NotificationView, console: Callable[[str | None], str | None]) -> m.NotificationDetail:
    return m.NotificationDetail(
        **notification(v).model_dump(), body=v.body,
        attempts=[m.Attempt(attempt_no=t.attempt_no, outcome=t.outcome, started_at=t.started_at,
                            finished_at=t.finished_at, provider_id=t.provider_id, provider_status=t.provider_status,
                            error_code=t.error_code, error_message=t.error_message,
                            console_url=console(t.provider_id))
                  for t in v.attempts],
    )


def flow(row: FlowRow) -> m.Flow:
    act, fig = row.activity, row.figures
    return m.Flow(
        name=row.name, source=row.source, entity=row.entity, enabled=row.enabled, paused=row.paused,
        every_seconds=row.every, watermark=fig.watermark, lookback_watermark=fig.lookback_watermark,
        last_commit_at=fig.last_commit, last_poll_at=row.last_poll_at, paused_by=row.paused_by,
        last_read=act.last_read if act else None, records_read=act.records_read if act else None,
        events_fired=act.events_fired if act else None, errors=act.errors if act else None,
        last_error=row.last_error, next_run_at=act.next_run_at if act else None,
        events_day=fig.events_day, failed_day=fig.failed_day,
    )


Api = Callable[[Request, Principal], Awaitable[Response]]


class Handlers:
    def __init__(self, surface: Surface, auth: Authenticator) -> None:
        self.s = surface
        self.auth = auth

    def guard(self, handler: Api, *, operator: bool = False) -> Callable[[Request], Awaitable[Response]]:
        @wraps(handler)
        async def run(request: Request) -> Response:
            who = await self.auth.principal(request)
            if who is None:
                return problem(401, "Unauthorized", "Send an API token (Authorization: Bearer mlc_...).",
                               headers={"WWW-Authenticate": 'Bearer realm="ml-connector"'})
            cookie_only = who.via == "password" and not request.headers.get("authorization")
            if request.method == "POST" and cookie_only and not csrf_ok(request, request.headers.get(CSRF_HEADER)):
                return problem(403, "Forbidden", f"A session's POST must carry its CSRF token in {CSRF_HEADER}.")
            if operator and not who.can_operate:
                return problem(403, "Forbidden", f"{who.name} is a {who.role}; this needs the operator role.")
            return await handler(request, who)
        return run

    # -- notifications ---------------------------------------------------------------------------

    async def list_notifications(self, request: Request, who: Principal) -> Response:
        flt = parse_filters(request.query_params, request.query_params.getlist("status"), self.s.clock(),
                            hash_phone=self.s.insights.recipient_hash, region=self.s.region)
        if flt.errors:
            return problem(422, "Invalid parameters", errors=flt.errors)
        page = await asyncio.to_thread(self.s.insights.page, flt.query)
        return _json(m.NotificationPage(items=[notification(v) for v in page.items], next_cursor=page.next_cursor))

    def _id(self, request: Request) -> int | None:
        raw = request.path_params["id"]
        return int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_ID else None

    async def get_notification(self, request: Request, who: Principal) -> Response:
        data = await self._journey(request)
        if isinstance(data, Response):
            return data
        return _json(_detail(data.notification, self.s.console_link))

    async def _journey(self, request: Request) -> JourneyData | Response:
        nid = self._id(request)
        if nid is None:
            return problem(422, "Invalid parameters", errors=[("id", "expected a positive whole number")])
        data = await asyncio.to_thread(self.s.insights.journey, nid)
        return problem(404, "Not found", f"no notification {nid}") if data is None else data

    async def journey(self, request: Request, who: Principal) -> Response:
        from ml_connector.web.dashboard import _describe_trigger

        data = await self._journey(request)
        if isinstance(data, Response):
            return data
        return _json(m.Journey(
            notification=_detail(data.notification, self.s.console_link), record_changed_at=data.record_changed_at,
            event_version=data.event_version, trigger=_describe_trigger(self.s.flows.get(data.notification.flow)),
            events=[m.JourneyEvent(at=at, kind=kind, status=status, detail=dict(detail))
                    for at, kind, status, detail in data.audit],
            callbacks=[m.Callback(received_at=at, provider_id=sid, provider_status=st, error_code=code, result=res)
                       for at, sid, st, code, res in data.callbacks],
            write_backs=[m.WriteBack(**wb) for wb in data.write_backs],
            other_recipients=[notification(v) for v in data.siblings],
        ))

    async def recipient_hash(self, request: Request, who: Principal) -> Response:
        body = await _body(request, m.RecipientHashRequest)
        if isinstance(body, Response):
            return body
        flt = parse_filters({"recipient": body.phone}, [], self.s.clock(), hash_phone=self.s.insights.recipient_hash,
                            region=self.s.region)
        if flt.errors:
            return problem(422, "Invalid body", errors=[("phone", d) for _, d in flt.errors])
        return _json(m.RecipientHash(recipient_hash=flt.query.recipient_hash or ""))

    # -- replay ------------------------------------------------------------------------------

    async def replay_one(self, request: Request, who: Principal) -> Response:
        data = await self._journey(request)
        if isinstance(data, Response):
            return data
        if data.notification.status not in REPLAYABLE:
            return problem(409, "Not replayable", f"notification {data.notification.id} is {data.notification.status}; "
                           f"only {', '.join(sorted(REPLAYABLE))} notifications can be replayed")
        done = await self.s.replay_ids([data.notification.id], who)
        return _json(m.ReplayResult(dry_run=False, matched=1, capped=False, replayed=done))

    async def replay_filter(self, request: Request, who: Principal) -> Response:
        body = await _body(request, m.ReplayFilter)
        if isinstance(body, Response):
            return body
        params = {k: v.isoformat() if isinstance(v, datetime) else v
                  for k, v in body.model_dump(exclude={"status", "dry_run"}).items() if v is not None}
        flt = parse_filters(params, body.status, self.s.clock(), hash_phone=self.s.insights.recipient_hash,
                            region=self.s.region)
        errors = list(flt.errors)
        errors += [("status", f"{s!r} cannot be replayed; only {', '.join(sorted(REPLAYABLE))}")
                   for s in flt.query.statuses if s not in REPLAYABLE]
        if errors:
            return problem(422, "Invalid body", errors=errors)
        query = PageQuery(**{**_fields(flt.query), "statuses": flt.query.statuses or tuple(sorted(REPLAYABLE))})
        ids = await self.s.replay_candidates(query)
        chosen = ids[:REPLAY_CAP]
        done = [] if body.dry_run else await self.s.replay_ids(chosen, who)
        return _json(m.ReplayResult(dry_run=body.dry_run, matched=len(chosen), capped=len(ids) > REPLAY_CAP,
                                    replayed=done))

    # -- flows -------------------------------------------------------------------------------

    async def list_flows(self, request: Request, who: Principal) -> Response:
        rows = await asyncio.to_thread(self.s.flow_rows)
        return _json(m.FlowList(items=[flow(r) for r in rows]))

    async def get_flow(self, request: Request, who: Principal) -> Response:
        name = request.path_params["name"]
        if name not in self.s.flows:
            return problem(404, "Not found", f"no flow {name!r}")
        rows = await asyncio.to_thread(self.s.flow_rows, [name])
        return _json(flow(rows[0]))

    async def pause(self, request: Request, who: Principal) -> Response:
        return await self._set_paused(request, who, True)

    async def resume(self, request: Request, who: Principal) -> Response:
        return await self._set_paused(request, who, False)

    async def _set_paused(self, request: Request, who: Principal, paused: bool) -> Response:
        name = request.path_params["name"]
        if name not in self.s.flows:
            return problem(404, "Not found", f"no flow {name!r}")
        try:
            await self.s.set_paused(name, paused, who)
        except PauseUnsupported as exc:
            return problem(501, "Not implemented", str(exc))
        rows = await asyncio.to_thread(self.s.flow_rows, [name])
        return _json(flow(rows[0]))

    # -- audit -------------------------------------------------------------------------------

    async def audit(self, request: Request, who: Principal) -> Response:
        params = request.query_params
        errors: list[tuple[str, str]] = []
        fmt = params.get("format", "json")
        if fmt not in ("json", "jsonl", "csv"):
            errors.append(("format", "one of json, jsonl, csv"))
        flt = parse_filters({k: params.get(k, "") for k in ("since", "until", "cursor", "limit")}, [], self.s.clock(),
                            hash_phone=self.s.insights.recipient_hash, region=self.s.region,
                            default_limit=_AUDIT_LIMIT, max_limit=_AUDIT_LIMIT)
        errors += flt.errors
        if errors:
            return problem(422, "Invalid parameters", errors=errors)
        q = flt.query
        if fmt == "json":
            rows = await asyncio.to_thread(self.s.insights.audit_rows, q.since, q.until, q.before, q.limit + 1)
            items = [m.AuditRow(id=r[0], at=r[1], notification_id=r[2], flow=r[3], kind=r[4], status=r[5],
                                detail=dict(r[6])) for r in rows[: q.limit]]
            more = len(rows) > q.limit
            return _json(m.AuditPage(items=items, next_cursor=items[-1].id if more and items else None))
        return StreamingResponse(
            self._export(q.since, q.until, fmt), media_type="text/csv" if fmt == "csv" else "application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="ml-connector-audit.{fmt}"'},
        )

    async def _export(self, since: Any, until: Any, fmt: str) -> AsyncIterator[str]:
        """Every audit row in the window, a page at a time (bounded memory)."""
        after: int | None = None
        header = fmt == "csv"
        while True:
            rows = await asyncio.to_thread(self.s.insights.audit_rows, since, until, after, 500)
            out = io.StringIO()
            writer = csv.writer(out)
            if header:
                writer.writerow(["id", "at", "notification_id", "flow", "kind", "status", "detail"])
                header = False
            for r in rows:
                record = {"id": r[0], "at": r[1].isoformat(), "notification_id": r[2], "flow": r[3], "kind": r[4],
                          "status": r[5]}
                if fmt == "csv":
                    writer.writerow([*record.values(), json.dumps(dict(r[6]), sort_keys=True, default=str)])
                else:
                    out.write(json.dumps({**record, "detail": dict(r[6])}, default=str) + "\n")
            if out.tell():
                yield out.getvalue()
            if len(rows) < 500:
                return
            after = rows[-1][0]

    async def openapi(self, request: Request, who: Principal) -> Response:
        return JSONResponse(openapi_document())


def _fields(query: PageQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in query.__dataclass_fields__}


async def _body(request: Request, model: type[_M]) -> _M | Response:
    """The JSON body as `model`, or a problem answer naming each bad field."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return problem(415, "Unsupported media type", "send application/json")
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        return problem(413, "Body too large", f"at most {_MAX_BODY} bytes")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        return problem(422, "Invalid body", errors=[("body", "not valid JSON")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return problem(422, "Invalid body", errors=[
            (".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors(include_url=False)
        ])


def api_routes(surface: Surface, auth: Authenticator) -> list[BaseRoute]:
    h = Handlers(surface, auth)
    g = h.guard
    return [
        Route("/api/openapi.json", g(h.openapi), methods=["GET"]),
        Route("/api/v1/notifications", g(h.list_notifications), methods=["GET"]),
        Route("/api/v1/notifications/{id}", g(h.get_notification), methods=["GET"]),
        Route("/api/v1/notifications/{id}/journey", g(h.journey), methods=["GET"]),
        Route("/api/v1/notifications/{id}/replay", g(h.replay_one, operator=True), methods=["POST"]),
        Route("/api/v1/replay", g(h.replay_filter, operator=True), methods=["POST"]),
        Route("/api/v1/recipient-hash", g(h.recipient_hash), methods=["POST"]),
        Route("/api/v1/flows", g(h.list_flows), methods=["GET"]),
        Route("/api/v1/flows/{name}", g(h.get_flow), methods=["GET"]),
        Route("/api/v1/flows/{name}/pause", g(h.pause, operator=True), methods=["POST"]),
        Route("/api/v1/flows/{name}/resume", g(h.resume, operator=True), methods=["POST"]),
        Route("/api/v1/audit", g(h.audit), methods=["GET"]),
    ]
