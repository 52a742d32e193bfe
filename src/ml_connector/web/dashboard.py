"""The dashboard: server-rendered pages over the store, and the REST API beside them.

Pages: overview, notifications (filters, cursor pages), one notification's journey, failed and
dead (replay one, or many by filter after a dry-run count), flows (pause and resume). Every
page needs a signed-in principal; every form POST needs the session's CSRF token; replaying and
pausing need the operator role. Nothing here answers without authentication: health checks
live on the admin listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from ml_connector.core.lifecycle import REPLAYABLE
from ml_connector.core.models import Status
from ml_connector.core.redact import mask_phone
from ml_connector.store.users import Principal
from ml_connector.web.api import api_routes
from ml_connector.web.auth import CSRF_FIELD, Authenticator, csrf_ok, csrf_token
from ml_connector.web.chart import hourly_chart
from ml_connector.web.filters import parse_filters
from ml_connector.web.surface import REPLAY_CAP, PauseUnsupported, Surface, surface_of

__all__ = ["create_dashboard_app", "dashboard_app"]

SESSION_COOKIE = "mlc_session"
_SESSION_KEY_LABEL = "ml-connector dashboard session key v1"
_TEMPLATES = Path(__file__).resolve().parent / "templates"
_STATUS_CLASS = {"delivered": "ok", "read": "ok", "sent": "info", "queued": "info", "sending": "warn",
                 "pending": "warn", "deferred": "warn", "failed": "bad", "undelivered": "bad", "dead": "bad",
                 "suppressed": "muted"}

Handler = Callable[[Request], Awaitable[Response]]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["mask"] = mask_phone
    env.filters["when"] = lambda t: "" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")
    env.filters["status_class"] = lambda s: _STATUS_CLASS.get(str(s), "muted")
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f} %"
    env.filters["secs"] = lambda v: "–" if v is None else f"{v:.1f} s"
    return env


class Pages:
    """The page handlers, around one Surface."""

    def __init__(self, surface: Surface, auth: Authenticator) -> None:
        self.s = surface
        self.auth = auth
        self.templates = Jinja2Templates(env=_environment())

    # -- plumbing ----------------------------------------------------------------------------

    def render(self, request: Request, name: str, who: Principal | None, *, status_code: int = 200,
               **context: Any) -> Response:
        return self.templates.TemplateResponse(request, name, {
            "who": who, "csrf": csrf_token(request), "csrf_field": CSRF_FIELD, "nav": request.url.path,
            **context,
        }, status_code=status_code)

    def page(self, handler: Callable[[Request, Principal], Awaitable[Response]]) -> Handler:
        """GET pages: signed in, else to the sign-in page."""
        @wraps(handler)
        async def run(request: Request) -> Response:
            who = await self.auth.principal(request)
            if who is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
            return await handler(request, who)
        return run

    def action(self, handler: Callable[[Request, Principal, Any], Awaitable[Response]], *,
               operator: bool = True) -> Handler:
        """Form POSTs: signed in (else 401), the CSRF token (else 403), the operator role (else 403)."""
        @wraps(handler)
        async def run(request: Request) -> Response:
            who = await self.auth.principal(request)
            if who is None:
                return self.render(request, "error.html.j2", None, status_code=401,
                                   title="Sign in first", detail="This action needs a signed-in user.")
            form = await request.form()
            if not csrf_ok(request, form.get(CSRF_FIELD)):
                return self.render(request, "error.html.j2", who, status_code=403, title="Refused",
                                   detail="The form's CSRF token is missing or stale: reload the page and try again.")
            if operator and not who.can_operate:
                return self.render(request, "error.html.j2", who, status_code=403, title="Not allowed",
                                   detail=f"{who.name} is a {who.role}; only operators replay and pause.")
            return await handler(request, who, form)
        return run

    # -- sign in -----------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        who = await self.auth.principal(request)
        if who is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        return self.render(request, "login.html.j2", None, next=_safe_next(request.query_params.get("next")),
                           failed=False)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request, form.get(CSRF_FIELD)):
            return self.render(request, "error.html.j2", None, status_code=403, title="Refused",
                               detail="The sign-in form's CSRF token is missing or stale: reload the page.")
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "")))
        if await self.auth.sign_in(request, name, password) is None:
            return self.render(request, "login.html.j2", None, status_code=401, next=target, failed=True)
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request, who: Principal, form: Any) -> Response:
        self.auth.sign_out(request)
        return RedirectResponse("/login", status_code=303)

    # -- pages -------------------------------------------------------------------------------

    async def overview(self, request: Request, who: Principal) -> Response:
        data = await asyncio.to_thread(self.s.insights.overview, self.s.clock())
        return self.render(request, "overview.html.j2", who, o=data, chart=hourly_chart(data.hourly),
                           statuses=[s.value for s in Status])

    async def notifications(self, request: Request, who: Principal, *, failed_only: bool = False) -> Response:
        statuses = request.query_params.getlist("status")
        if failed_only and not [s for s in statuses if s]:
            statuses = sorted(s.value for s in REPLAYABLE)
        flt = parse_filters(request.query_params, statuses, self.s.clock(), hash_phone=self.s.insights.recipient_hash,
                            region=self.s.region)
        page = await asyncio.to_thread(self.s.insights.page, flt.query) if not flt.errors else None
        keep = [(k, v) for k, v in flt.shown.items()] + [("status", s) for s in statuses if s]
        next_url = (f"{request.url.path}?{urlencode([*keep, ('cursor', str(page.next_cursor))])}"
                    if page and page.next_cursor else None)
        return self.render(
            request, "failed.html.j2" if failed_only else "notifications.html.j2", who, page=page,
            errors=flt.errors, shown=flt.shown, chosen=set(statuses), next_url=next_url,
            first_url=f"{request.url.path}?{urlencode(keep)}" if flt.query.before else None,
            flows=sorted(self.s.flows), statuses=[s.value for s in Status],
            replayable=sorted(s.value for s in REPLAYABLE), channels=["sms"], dry_run=None, replayed=None,
        )

    async def failed(self, request: Request, who: Principal) -> Response:
        return await self.notifications(request, who, failed_only=True)

    async def journey(self, request: Request, who: Principal) -> Response:
        nid = _int(request.path_params["id"])
        data = await asyncio.to_thread(self.s.insights.journey, nid) if nid is not None else None
        if data is None:
            return self.render(request, "error.html.j2", who, status_code=404, title="Not found",
                               detail=f"There is no notification {request.path_params['id']}.")
        spec = self.s.flows.get(data.notification.flow)
        return self.render(request, "journey.html.j2", who, j=data, n=data.notification, spec=spec,
                           trigger=_describe_trigger(spec), console=self.s.console_link,
                           replayable=data.notification.status in REPLAYABLE, message=request.query_params.get("msg"))

    async def flows(self, request: Request, who: Principal) -> Response:
        rows = await asyncio.to_thread(self.s.flow_rows)
        return self.render(request, "flows.html.j2", who, rows=rows, now=self.s.clock(),
                           message=request.query_params.get("msg"))

    # -- actions -----------------------------------------------------------------------------

    async def replay_one(self, request: Request, who: Principal, form: Any) -> Response:
        nid = _int(request.path_params["id"])
        done = await self.s.replay_ids([nid], who) if nid is not None else []
        msg = f"replayed by {who.name}" if done else "not replayable now (only failed, dead or undelivered)"
        return RedirectResponse(f"/notifications/{request.path_params['id']}?{urlencode({'msg': msg})}",
                                status_code=303)

    async def replay_filter(self, request: Request, who: Principal, form: Any) -> Response:
        statuses = [str(s) for s in form.getlist("status") if s] or sorted(s.value for s in REPLAYABLE)
        params = {k: str(v) for k, v in form.items() if k != "status"}
        flt = parse_filters(params, statuses, self.s.clock(), hash_phone=self.s.insights.recipient_hash,
                            region=self.s.region)
        context: dict[str, Any] = {"errors": flt.errors, "shown": flt.shown, "chosen": set(statuses), "next_url": None,
                   "first_url": None, "flows": sorted(self.s.flows), "statuses": [s.value for s in Status],
                   "replayable": sorted(s.value for s in REPLAYABLE), "channels": ["sms"], "page": None,
                   "dry_run": None, "replayed": None}
        if flt.errors:
            return self.render(request, "failed.html.j2", who, status_code=422, **context)
        ids = await self.s.replay_candidates(flt.query)
        if form.get("confirm") != "yes":
            context["dry_run"] = {"count": min(len(ids), REPLAY_CAP), "more": len(ids) > REPLAY_CAP,
                                  "fields": [(k, v) for k, v in flt.shown.items()] + [("status", s) for s in statuses]}
            return self.render(request, "failed.html.j2", who, **context)
        done = await self.s.replay_ids(ids[:REPLAY_CAP], who)
        context["replayed"] = len(done)
        return self.render(request, "failed.html.j2", who, **context)

    async def pause(self, request: Request, who: Principal, form: Any) -> Response:
        return await self._set_paused(request, who, True)

    async def resume(self, request: Request, who: Principal, form: Any) -> Response:
        return await self._set_paused(request, who, False)

    async def _set_paused(self, request: Request, who: Principal, paused: bool) -> Response:
        name = request.path_params["name"]
        if name not in self.s.flows:
            return self.render(request, "error.html.j2", who, status_code=404, title="Not found",
                               detail=f"There is no flow {name!r}.")
        try:
            await self.s.set_paused(name, paused, who)
        except PauseUnsupported as exc:
            return self.render(request, "error.html.j2", who, status_code=501, title="Not available", detail=str(exc))
        msg = f"{name} {'paused' if paused else 'resumed'} by {who.name}"
        return RedirectResponse("/flows?" + urlencode({"msg": msg}), status_code=303)


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 19 else None


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no //host, no scheme): sign-in must not redirect elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _describe_trigger(spec: Any) -> str:
    if spec is None:
        return "(flow no longer configured)"
    trigger = spec.trigger
    dumped = trigger.model_dump(exclude_none=True) if hasattr(trigger, "model_dump") else trigger
    return ", ".join(f"{k}: {v}" for k, v in dumped.items()) if isinstance(dumped, dict) else str(dumped)


def dashboard_app(surface: Surface, session_secret: str) -> Starlette:
    """The dashboard and API as an ASGI app over `surface`."""
    auth = Authenticator(surface.users, surface.settings.sso)
    pages = Pages(surface, auth)
    routes: list[BaseRoute] = [
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.action(pages.logout, operator=False), methods=["POST"]),
        Route("/", pages.page(pages.overview), methods=["GET"]),
        Route("/notifications", pages.page(pages.notifications), methods=["GET"]),
        Route("/notifications/{id}", pages.page(pages.journey), methods=["GET"]),
        Route("/notifications/{id}/replay", pages.action(pages.replay_one), methods=["POST"]),
        Route("/failed", pages.page(pages.failed), methods=["GET"]),
        Route("/failed/replay", pages.action(pages.replay_filter), methods=["POST"]),
        Route("/flows", pages.page(pages.flows), methods=["GET"]),
        Route("/flows/{name}/pause", pages.action(pages.pause), methods=["POST"]),
        Route("/flows/{name}/resume", pages.action(pages.resume), methods=["POST"]),
        *api_routes(surface, auth),
    ]
    settings = surface.settings
    return Starlette(routes=routes, middleware=[Middleware(
        SessionMiddleware, secret_key=session_secret, session_cookie=SESSION_COOKIE,
        max_age=int(settings.session_max_age.total_seconds()), same_site="strict",
        https_only=settings.secure_cookies,
    )])


def create_dashboard_app(connector: Any) -> Starlette:
    """The dashboard of a built Connector; the session key is derived from the master key."""
    return dashboard_app(surface_of(connector), connector.keyring.hash_lookup(_SESSION_KEY_LABEL))
