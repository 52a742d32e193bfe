"""Composition root: builds the store, sources, channels, flows, dispatcher and web app from a config.

Everything that touches the outside world is created here and nowhere else, so tests and the
demo can hand in other transports (the Twilio simulator in-process) without monkeypatching.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ml_connector import app_channels, logctx
from ml_connector.channels.base import Channel
from ml_connector.channels.http import AiohttpTransport, HttpTransport
from ml_connector.channels.sms import SmsChannel
from ml_connector.channels.twilio_api import TwilioClient
from ml_connector.compliance.pacing import Pacer
from ml_connector.config import Config, template_lines
from ml_connector.config_ops import ADMIN_PORT_ENV
from ml_connector.core.retry import RetryPolicy
from ml_connector.core.templates import compile_template
from ml_connector.errors import ConfigError, MlcError, SourceError, TemplateError
from ml_connector.runtime.audit_retention import AuditPruner
from ml_connector.runtime.digests import DigestCloser
from ml_connector.runtime.dispatcher import Dispatcher, DispatcherSettings
from ml_connector.runtime.exposure_check import exposure_problems
from ml_connector.runtime.field_check import field_problems
from ml_connector.runtime.flow_activity import FlowActivityLog
from ml_connector.runtime.health import PollerHealth
from ml_connector.runtime.metrics import ConnectorMetrics
from ml_connector.runtime.poller import LOOKBACK, MAIN, FlowRuntime, Poller
from ml_connector.runtime.status_sweep import StatusSweep, SweepSettings
from ml_connector.runtime.store_wait import wait_for_store
from ml_connector.runtime.voice_retry import VoiceRetry
from ml_connector.runtime.writeback import WriteBackRunner
from ml_connector.sources import registry
from ml_connector.sources.base import Closeable, Source, WriteBack
from ml_connector.store.crypto import load_keyring
from ml_connector.store.sql import SqlStore

log = logging.getLogger(__name__)

ROLES = ("poller", "dispatcher", "web")
#: Overrides `webhooks.port`, so several processes on one machine can share one config file.
WEBHOOK_PORT_ENV = "MLC_WEBHOOK_PORT"
#: How often a process that does not poll a flow tries to take it over.
LEADER_RETRY = timedelta(seconds=2)


class PortInUse(MlcError):
    """The webhook port is taken by another process (not retriable until one of them moves)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Overrides:
    """Injected edges for tests and the demo."""

    twilio_transport: HttpTransport | None = None
    sendgrid_transport: HttpTransport | None = None
    webhook_transport: HttpTransport | None = None
    clock: Callable[[], datetime] = utcnow
    worker: str | None = None
    source_context: Mapping[str, Any] = field(default_factory=dict)
    leader_retry: timedelta = LEADER_RETRY


#: compile_flows' key suffix for a flow's digest template (`flows.NAME.digest.template`).
DIGEST_TEMPLATE = "#digest"


def compile_flows(config: Config, shown_path: str | None = None) -> dict[str, Any]:
    """Compile every flow's template; all errors together, as 'file:line: flows.NAME.template: ...'."""
    lines = template_lines(Path(config.path))
    shown = shown_path or str(config.path)
    compiled: dict[str, Any] = {}
    problems: list[str] = []
    for name, spec in config.flows.items():
        sources = [(name, f"flows.{name}.template", spec.template)]
        if spec.digest is not None:
            sources.append((name + DIGEST_TEMPLATE, f"flows.{name}.digest.template", spec.digest.template))
        for compiled_name, key, source in sources:
            try:
                compiled[compiled_name] = (
                    app_channels.compile_flow(key, spec) if spec.channel != "sms" and compiled_name == name
                    else compile_template(key, source, timezone=spec.timezone, currency=spec.currency,
                                          locale=spec.locale))
            except TemplateError as exc:
                where = f"{exc.template}, line {exc.line}" if exc.line else exc.template
                message = str(exc).removeprefix(f"template {where}: ")
                at = f"line {exc.line} of the template: " if exc.line else ""
                line = f":{lines[name]}" if name in lines else ""
                problems.append(f"{shown}{line}: {key}: {at}{message}")
        where = f"{shown}:{lines[name]}" if name in lines else shown
        problems += exposure_problems(config, name, spec, where) + field_problems(config, name, spec, where)
    if problems:
        raise ConfigError(f"{len(problems)} template error(s)", problems)
    return compiled


def build_sources(config: Config, context: Mapping[str, Any]) -> dict[str, Source]:
    """Each source gets the shared context plus its own `name` (transports are keyed by it)."""
    return {
        name: registry.factory(section.type)(section, {**context, "name": name})
        for name, section in config.sources.items()
    }


def build_twilio_clients(config: Config, transport: HttpTransport | None) -> dict[str, TwilioClient]:
    clients: dict[str, TwilioClient] = {}
    for name, account in config.twilio.accounts.items():
        account_transport = transport or AiohttpTransport(
            max_connections=account.concurrency,
            verify=account.verify_tls,
            ca_bundle=str(account.ca_bundle) if account.ca_bundle else None,
            ca_bundle_only=account.ca_bundle_only,
        )
        clients[name] = TwilioClient(
            account.account_sid,
            auth_token=account.auth_token.get_secret_value() if account.auth_token else None,
            api_key_sid=account.api_key_sid,
            api_key_secret=account.api_key_secret.get_secret_value() if account.api_key_secret else None,
            base_url=account.base_urls.api,
            transport=account_transport,
        )
    return clients


def webhook_port(config: Config, env: Mapping[str, str]) -> int:
    """`MLC_WEBHOOK_PORT` when set, else `webhooks.port`."""
    raw = env.get(WEBHOOK_PORT_ENV, "").strip()
    if not raw:
        return config.webhooks.port
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ConfigError(f"{WEBHOOK_PORT_ENV}={raw!r}: must be a port number from 1 to 65535")
    return int(raw)


def admin_port(config: Config, env: Mapping[str, str]) -> int:
    """`MLC_ADMIN_PORT` when set, else `admin.port` (0: a free port)."""
    raw = env.get(ADMIN_PORT_ENV, "").strip()
    if not raw:
        return config.admin.port
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ConfigError(f"{ADMIN_PORT_ENV}={raw!r}: must be a port number from 0 to 65535")
    return int(raw)


def sender_value(config: Config, ref: str) -> tuple[str, str]:
    """"account.sender" -> (account name, From number or MG SID)."""
    _, sender = config.sender(ref)
    return ref.partition(".")[0], sender.address


class Connector:
    """One configured ml-connector: `run()` is `ml-connector run`."""

    def __init__(self, config: Config, *, env: Mapping[str, str] | None = None,
                 overrides: Overrides | None = None) -> None:
        self.config = config
        self.overrides = overrides or Overrides()
        self.clock = self.overrides.clock
        env = os.environ if env is None else env
        self.webhook_port = webhook_port(config, env)
        #: Which setting chose the port, for an error that names it.
        self.webhook_port_setting = (f"{WEBHOOK_PORT_ENV}={self.webhook_port}" if env.get(WEBHOOK_PORT_ENV, "").strip()
                                     else f"webhooks.port in {config.path}")
        self.admin_port = admin_port(config, env)
        #: The admin listener's base URL while it is served (`run`), else None.
        self.admin_url: str | None = None
        self._admin_serving = False
        #: Roles of every `run()` under way (the demo runs two), for the admin listener's checks.
        self.running_roles: set[str] = set()
        self.metrics = ConnectorMetrics()
        self.web_registries: list[Any] = []  # the served webhook app's, scraped with the rest
        self.keyring = load_keyring(config.store.key_file, env)
        self.store = SqlStore(config.store.url, self.keyring)
        self.templates = compile_flows(config)
        self.sources = build_sources(config, {"clock": self.clock, **self.overrides.source_context})
        self.clients = build_twilio_clients(config, self.overrides.twilio_transport)
        self.channels: dict[str, Channel] = {name: SmsChannel(client) for name, client in self.clients.items()}
        self.channels.update(app_channels.build_channels(config, self.overrides.sendgrid_transport, self.clients,
                                                         self.overrides.webhook_transport))
        self.flows = self._flow_runtimes()
        self.pollers = {name: Poller(flow, self.store, self.clock) for name, flow in self.flows.items()}
        self.poll_health = PollerHealth(self.clock)
        for name, flow in self.flows.items():
            self.poll_health.watch(name, flow.spec.schedule.every)
        self.worker = self.overrides.worker or f"{socket.gethostname()}:{os.getpid()}"
        self.dispatcher = self._dispatcher()
        self._next_lookback: dict[str, datetime] = {}
        self.activity = FlowActivityLog()  # what this process saw of its polls (dashboard)
        check_after = config.dispatcher.status_check_after
        self.status_sweep = StatusSweep(self.store, self.channels, clock=self.clock, settings=SweepSettings(
            stale_after=check_after, every=min(timedelta(minutes=1), max(check_after / 2, timedelta(seconds=1))),
        ))
        self.voice_retry = VoiceRetry(self.store, {n: s.voice for n, s in config.flows.items()
                                                   if s.channel == "voice" and s.voice}, clock=self.clock)
        audit = config.audit
        self.audit_pruner = AuditPruner(
            self.store, audit.retention, clock=self.clock, every=audit.prune_every, batch=audit.prune_batch,
            max_batches=audit.prune_max_batches,
        ) if audit.retention is not None else None
        self.digests = DigestCloser(self.store, self.flows, clock=self.clock)
        self.write_backs = WriteBackRunner(self.store, self.sources, worker=self.worker, clock=self.clock,
                                           drain_for=config.dispatcher.shutdown_grace, metrics=self.metrics)

    def _flow_runtimes(self) -> dict[str, FlowRuntime]:
        flows: dict[str, FlowRuntime] = {}
        for name, spec in self.config.flows.items():
            if not spec.enabled:
                continue
            account, sender = (spec.sender.partition(".")[0], app_channels.flow_sender(spec) or "") \
                if spec.channel in ("email", "webhook") else sender_value(self.config, spec.sender)
            flows[name] = FlowRuntime(
                name=name, spec=spec, source=self.sources[spec.source], template=self.templates[name],
                account=account, sender=sender,
                default_region=getattr(self.config.sources[spec.source], "default_region", "US"),
                write_back_source=spec.source if self._writes_back(spec.source) else None,
                digest_template=self.templates.get(name + DIGEST_TEMPLATE),
            )
        return flows

    def _writes_back(self, source_name: str) -> bool:
        """A source records deliveries when it can and its config has not turned that off."""
        section = self.config.sources[source_name]
        enabled = getattr(getattr(section, "write_back", None), "enabled", False)
        return bool(enabled) and isinstance(self.sources[source_name], WriteBack)

    def _dispatcher(self) -> Dispatcher:
        mps: dict[str, float] = {}
        for account_name, account in self.config.twilio.accounts.items():
            for sender in account.senders.values():
                mps[f"{account_name}.{sender.address}"] = sender.effective_mps
        mps.update(app_channels.channel_rates(self.config))
        policies = {name: RetryPolicy.from_spec(spec.retry) for name, spec in self.config.flows.items()}
        d = self.config.dispatcher
        settings = DispatcherSettings(
            worker=self.worker, concurrency=d.concurrency, lease=d.lease, batch_size=d.batch_size,
            idle_poll=d.idle_poll, status_callback_url=self.config.webhooks.status_callback_url,
            account_probe_every=d.account_probe_every,
        )
        return Dispatcher(
            self.store, self.channels, Pacer(mps), policies, settings, clock=self.clock,
            account_limits={n: a.concurrency for n, a in self.config.twilio.accounts.items()},
            metrics=self.metrics,
        )

    def webhook_app(self, registry: Any = None) -> Any:
        from prometheus_client import CollectorRegistry
        from starlette.routing import Route

        from ml_connector.web.health import AccountHoldCollector
        from ml_connector.web.webhooks import create_webhook_app

        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        registry.register(AccountHoldCollector(self.dispatcher.holds, list(self.config.twilio.accounts)))

        tokens = {
            a.account_sid: a.auth_token.get_secret_value()
            for a in self.config.twilio.accounts.values() if a.auth_token
        }
        inbound = self._inbound_endpoint(tokens)
        return create_webhook_app(
            store=self.store, auth_tokens=tokens,
            status_callback_url=self.config.webhooks.status_callback_url or "http://127.0.0.1/twilio/status",
            max_body_bytes=self.config.webhooks.max_body_bytes, clock=self.clock, registry=registry,
            extra_routes=[*(Route(path, inbound.handle, methods=["POST"]) for path in inbound.paths),
                          *app_channels.webhook_routes(self.config, self.store, self.clock)],
        )

    def _inbound_endpoint(self, tokens: Mapping[str, str]) -> Any:
        from ml_connector.core.keywords import HELP_WORDS, OPT_IN_WORDS, OPT_OUT_WORDS, Keywords
        from ml_connector.web.inbound import InboundEndpoint, InboundSettings

        talk = self.config.conversations
        settings = InboundSettings(
            help_text=talk.help_text, opt_out_reply=talk.opt_out_reply, opt_in_reply=talk.opt_in_reply,
            opt_out_everywhere=talk.opt_out_scope == "everywhere",
            keywords=Keywords.of(opt_out=[*OPT_OUT_WORDS, *talk.opt_out_keywords],
                                 opt_in=[*OPT_IN_WORDS, *talk.opt_in_keywords],
                                 help=[*HELP_WORDS, *talk.help_keywords]),
        )
        windows = {name: spec.replies.window for name, spec in self.config.flows.items() if spec.replies}
        return InboundEndpoint(
            store=self.store, tokens=tokens, public_url=self.config.webhooks.inbound_url or
            "http://127.0.0.1/twilio/inbound", reply_windows=windows, settings=settings, clock=self.clock,
            max_body_bytes=self.config.webhooks.max_body_bytes,
        )

    # -- running ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, roles: Iterable[str] = ROLES) -> None:
        """Run the chosen roles until `stop` is set, then shut down cleanly."""
        roles = set(roles)
        # Bound first: a port in use stops the start before any other role runs.
        web_socket = self.bind_webhooks() if "web" in roles else None
        self.running_roles.update(roles)
        tasks: list[asyncio.Task[None]] = []
        writing_back: asyncio.Task[None] | None = None
        write_backs_stop = asyncio.Event()
        if "poller" in roles:
            tasks += [asyncio.create_task(self._poll_loop(name, stop)) for name in self.pollers]
        if "dispatcher" in roles:
            tasks.append(asyncio.create_task(self.dispatcher.run(stop)))
            tasks.append(asyncio.create_task(self.status_sweep.run(stop)))
            tasks.append(asyncio.create_task(self.voice_retry.run(stop)))
            if self.audit_pruner is not None:
                tasks.append(asyncio.create_task(self.audit_pruner.run(stop)))
            if self.digests.wanted:
                tasks.append(asyncio.create_task(self.digests.run(stop)))
            if any(flow.write_back_source for flow in self.flows.values()):
                writing_back = self._write_back_until_drained(stop, write_backs_stop)
        if web_socket is not None:
            tasks.append(asyncio.create_task(self._serve_web(stop, web_socket)))
        if self.config.admin.enabled and not self._admin_serving:  # one listener per connector
            self._admin_serving = True
            tasks.append(asyncio.create_task(self._serve_admin(stop)))
        try:
            await asyncio.gather(*tasks)
        finally:
            # One role ended (a stop, or a failure): the others wind down as on a stop, listeners
            # included (cancelling a server mid-start can leave it waiting forever); stragglers are
            # cancelled after the grace period.
            stop.set()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=self.config.dispatcher.shutdown_grace.total_seconds())
                for task in pending:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if writing_back is not None:  # last: the final statuses the other roles recorded
                write_backs_stop.set()
                await writing_back

    def _write_back_until_drained(self, stop: asyncio.Event, own_stop: asyncio.Event) -> asyncio.Task[None]:
        """The write-back runner, stopped (`own_stop`) only after the other roles, then draining what
        is due within `dispatcher.shutdown_grace`; a crash of it stops the process as before."""
        task = asyncio.create_task(self.write_backs.run(own_stop))
        task.add_done_callback(lambda done: stop.set() if not done.cancelled() and done.exception() else None)
        return task

    async def _poll_loop(self, name: str, stop: asyncio.Event) -> None:
        """Poll one flow on its schedule while this process holds the flow's lock; else stand by.

        Only one process polls a flow at a time (store.locks). The others try to take it over
        every `leader_retry`, so a dead poller is replaced within seconds. Each poll's commit is
        fenced by the lock: a process that lost it commits nothing.
        """
        logctx.bind(flow=name)  # this task's log lines name the flow
        lock = self.store.flow_lock(name, label=f"ml-connector {self.worker}")
        poller = Poller(self.flows[name], self.store.fenced(lock), self.clock)
        leading = paused = False
        try:
            while not stop.is_set():
                if self.store.outage() is not None and not await wait_for_store(self.store, stop):
                    break  # a store outage: wait it out (logged once), then re-take the lock afresh
                if await asyncio.to_thread(lock.acquire):
                    if not leading:
                        log.info("flow %s: polled by this process (%s)", name, self.worker)
                        leading = True
                        self.poll_health.leading(name, True)
                    if paused != (paused := name in await asyncio.to_thread(self.store.paused_flows)):
                        log.warning("flow %s: %s", name, "paused; not polled, watermark kept" if paused
                                    else "resumed")
                    if paused:
                        self.poll_health.polled(name)  # paused on purpose: not stuck
                    elif not await self._poll_once(poller):
                        return
                    wait = poller.flow.spec.schedule.every
                else:
                    if leading:
                        log.warning("flow %s: no longer polled by this process; another one takes over", name)
                        leading = False
                        self.poll_health.leading(name, False)
                    wait = self.overrides.leader_retry
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait.total_seconds())
        finally:
            await asyncio.to_thread(lock.release)

    async def _poll_once(self, poller: Poller) -> bool:
        """One main poll (and the lookback when due); False when the flow must stop."""
        name, schedule = poller.flow.name, poller.flow.spec.schedule
        kind, channel = MAIN, poller.flow.spec.channel
        try:
            report = await poller.poll(MAIN)
            self.metrics.poll_done(name, MAIN, channel, report.read, report.fired, report.inserted)
            self.activity.polled(name, self.clock(), report.read, report.fired, schedule.every)
            await self._note_poll(name, MAIN, None, report.read, report.inserted)
            if report.inserted:
                log.info("flow %s: %s new notification(s) from %s record(s)", name, report.inserted, report.read)
            now = self.clock()  # one reading: the first lookback is due at once, the next `every` later
            if schedule.lookback and now >= self._next_lookback.get(name, now):
                kind = LOOKBACK
                late = await poller.poll(LOOKBACK)
                self.metrics.poll_done(name, LOOKBACK, channel, late.read, late.fired, late.inserted)
                await self._note_poll(name, LOOKBACK, None, late.read, late.inserted)
                self._next_lookback[name] = now + schedule.lookback.every
            self.poll_health.polled(name)
        except TemplateError as exc:
            log.error("flow %s stopped: %s. Fix the template and restart; nothing was sent.", name, exc)
            self.metrics.poll_failed(name)
            self.poll_health.stopped(name, f"template error: {exc}")
            await self._note_poll(name, kind, f"stopped: {exc}")
            return False
        except SourceError as exc:
            log.warning("flow %s: poll failed, will retry: %s", name, exc)
            self.metrics.poll_failed(name)
            self.poll_health.failed(name, str(exc))
            self.activity.failed(name, self.clock(), str(exc), schedule.every)
            await self._note_poll(name, kind, str(exc))
        except MlcError as exc:
            log.error("flow %s: poll failed: %s", name, exc)
            self.metrics.poll_failed(name)
            self.poll_health.failed(name, str(exc))
            self.activity.failed(name, self.clock(), str(exc), schedule.every)
            await self._note_poll(name, kind, str(exc))
        return True

    async def _note_poll(self, name: str, kind: str, error: str | None, read: int | None = None,
                         inserted: int | None = None) -> None:
        """Keep the poll's outcome for `ml-connector flows`; a store that cannot take it is no poll error."""
        try:
            await asyncio.to_thread(self.store.record_poll, name, at=self.clock(), kind=kind, error=error,
                                    read=read, inserted=inserted, worker=self.worker)
        except Exception as exc:  # noqa: BLE001 - the poll's own outcome stands; the store is watched elsewhere
            log.debug("flow %s: could not record the poll's outcome: %r", name, exc)

    def bind_webhooks(self) -> socket.socket:
        """The webhook server's listening socket; a port in use is an error naming the port and its setting."""
        from ml_connector.web.server import bind

        host = self.config.webhooks.host
        try:
            return bind(host, self.webhook_port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUse(
                f"webhook port {self.webhook_port} on {host} is already in use (another ml-connector, or "
                f"another program); it was chosen by {self.webhook_port_setting}: stop the other process or "
                f"choose another port ({WEBHOOK_PORT_ENV} overrides webhooks.port for one process)"
            ) from None

    def dashboard_app(self) -> Any:
        """The dashboard and REST API (web.dashboard), on their own listener."""
        from ml_connector.web.dashboard import create_dashboard_app

        return create_dashboard_app(self)

    async def _serve_web(self, stop: asyncio.Event, sock: socket.socket) -> None:
        from prometheus_client import CollectorRegistry

        from ml_connector.web.server import serve_until

        webhooks, dashboard = self.config.webhooks, self.config.dashboard
        registry = CollectorRegistry(auto_describe=True)
        self.web_registries.append(registry)
        try:
            serving = [serve_until(self.webhook_app(registry), webhooks.host, self.webhook_port, stop, sock)]
            if dashboard is not None and dashboard.enabled:
                serving.append(serve_until(self.dashboard_app(), dashboard.host, dashboard.port, stop))
            await asyncio.gather(*serving)
        finally:
            self.web_registries.remove(registry)
            sock.close()

    async def _serve_admin(self, stop: asyncio.Event) -> None:
        from ml_connector.web.admin import serve_admin

        try:
            await serve_admin(self, stop)
        finally:
            self._admin_serving = False

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        await app_channels.aclose(self.channels)
        for source in self.sources.values():
            if isinstance(source, Closeable):
                await source.aclose()
        self.store.close()


