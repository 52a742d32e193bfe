"""The admin listener of every process: /healthz, /readyz (each check) and /metrics, over HTTP.

The connector runs its roles for real (in-process Twilio simulator, demo ERP) and the listener
is asked on its own loopback port, as Prometheus, a load balancer or systemd would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ml_connector.app import admin_port
from ml_connector.errors import ConfigError
from ml_connector.runtime.health import HealthSettings, PollerHealth, Readiness
from ml_connector.web.admin import create_admin_app
from tests.support.pipeline import FakeClock as ManualClock
from tests.support.pipeline import Pipeline, pipeline


async def _until(check: Callable[[], bool], what: str) -> None:
    """Wait for `check` (polls run every few seconds; a loaded machine is slower): at most a minute."""
    for _ in range(6000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Pipeline, str]]:
    """The pipeline's connector running poller and dispatcher roles; the admin listener's URL."""
    async with pipeline(tmp_path) as p:
        stop = asyncio.Event()
        task = asyncio.create_task(p.connector.run(stop, ("poller", "dispatcher")))
        await _until(lambda: p.connector.admin_url is not None, "the admin listener is bound")
        assert p.connector.admin_url is not None
        try:
            yield p, p.connector.admin_url
        finally:
            stop.set()
            await task


async def test_healthz_readyz_and_metrics_answer_on_the_admin_address(running: tuple[Pipeline, str]) -> None:
    p, url = running
    await _until(lambda: all(f.last_ok for f in p.connector.poll_health.flows.values()), "every flow polled")
    async with httpx.AsyncClient(base_url=url) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
    assert (health.status_code, health.text) == (200, "ok\n")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["ready"] is True
    assert set(body["checks"]) == {"store", "migrations", "pollers", "queue"}
    assert body["checks"]["pollers"]["detail"] == "2 flow(s) polled here, 0 on standby"
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    samples = _samples(metrics.text)
    assert samples[("mlc_polls_total", (("flow", "po_approved"), ("kind", "main")))] >= 1
    assert samples[("mlc_store_up", ())] == 1.0
    assert samples[("mlc_queue_depth", ())] == 0.0
    assert samples[("mlc_twilio_account_held", (("account", "main"),))] == 0.0  # no web role: shown from here
    assert ("mlc_status_callbacks_total", (("result", "applied"),)) not in samples  # no webhooks served here


async def test_metrics_count_polls_sends_errors_and_show_the_outbox(running: tuple[Pipeline, str]) -> None:
    p, url = running
    po = next(int(str(r["po_id"])) for r in p.erp.rows("po_headers") if r["status"] in ("INCOMPLETE", "IN PROCESS"))
    p.clock.advance(10)
    p.erp.approve_po(po)
    p.clock.advance(10)  # past the clock-skew margin: the next poll reads it
    registry = p.connector.metrics.registry

    def sent() -> float:
        return sum(registry.get_sample_value("mlc_send_attempts_total", {"account": "main", "outcome": o}) or 0
                   for o in ("accepted", "permanent"))

    def fired() -> float:
        return registry.get_sample_value("mlc_events_fired_total", {"flow": "po_approved"}) or 0

    await _until(lambda: fired() >= 1 and sent() >= 1, "the approval fired and a send attempt was recorded")
    async with httpx.AsyncClient(base_url=url) as client:
        samples = _samples((await client.get("/metrics")).text)
    assert samples[("mlc_events_fired_total", (("flow", "po_approved"),))] >= 1
    assert samples[("mlc_notifications_created_total", (("channel", "sms"), ("flow", "po_approved")))] >= 1
    assert samples[("mlc_send_seconds_count", (("account", "main"),))] >= 1
    created = sum(v for (name, labels), v in samples.items() if name == "mlc_notifications")
    assert created >= 1


async def test_a_bad_number_counts_twilios_error_code(tmp_path: Path) -> None:
    async with pipeline(tmp_path) as p:
        p.erp.create_invoice(random.Random(1))
        invoice = max(int(str(r["invoice_id"])) for r in p.erp.rows("ap_invoices"))
        with contextlib.closing(sqlite3.connect(tmp_path / "demo-erp.db")) as conn, conn:
            conn.execute("UPDATE ap_invoices SET approver_phone = '+15005550001' WHERE invoice_id = ?", (invoice,))
        await p.poll()
        p.erp.validate_invoice(invoice)
        await p.poll()
        await p.dispatch()
        registry = p.connector.metrics.registry
        assert registry.get_sample_value("mlc_twilio_errors_total", {"code": "21211"}) == 1.0
        assert registry.get_sample_value("mlc_send_attempts_total", {"account": "main", "outcome": "permanent"}) == 1.0


# -- readiness failing, check by check ----------------------------------------------------------


class _Probe:
    def __init__(self, revision: str | None = "0002", fails: Exception | None = None,
                 oldest_due: Any = None) -> None:
        self._revision, self._fails, self._oldest = revision, fails, oldest_due

    def revision(self) -> str | None:
        if self._fails:
            raise self._fails
        return self._revision

    @staticmethod
    def expected_revision() -> str:
        return "0002"

    def outbox(self, now: Any, recent: Any, *, counts: bool = True) -> Any:
        from ml_connector.store.probe import OutboxStats

        return OutboxStats(due=1 if self._oldest else 0, oldest_due=self._oldest, oldest_awaiting_callback=None,
                           by_status_channel={}, delivery_errors={})


async def _ready(probe: Any, pollers: PollerHealth, roles: set[str], clock: ManualClock,
                 store_problem: Callable[[], str | None] = lambda: None) -> tuple[int, dict[str, Any]]:
    readiness = Readiness(probe=probe, store_problem=store_problem, pollers=pollers, roles=roles, clock=clock,
                          settings=HealthSettings(stuck_after=3, max_pending_age=timedelta(minutes=15)))
    app = create_admin_app(readiness, lambda: [])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://admin") as client:
        answer = await client.get("/readyz")
    return answer.status_code, answer.json()


async def test_readyz_fails_when_the_store_cannot_be_read() -> None:
    clock = ManualClock()
    status, body = await _ready(_Probe(fails=OSError("connection refused")), PollerHealth(clock), {"web"}, clock)
    assert status == 503
    assert body == {"ready": False, "checks": {"store": {"ok": False, "detail": "unreachable (OSError)"}}}


async def test_readyz_fails_while_the_store_reports_an_outage() -> None:
    clock = ManualClock()
    status, body = await _ready(_Probe(), PollerHealth(clock), {"web"}, clock,
                                store_problem=lambda: "store unavailable (connection lost)")
    assert status == 503
    assert body["checks"]["store"] == {"ok": False, "detail": "store unavailable (connection lost)"}


async def test_readyz_fails_when_migrations_are_behind() -> None:
    clock = ManualClock()
    status, body = await _ready(_Probe(revision="0001"), PollerHealth(clock), {"web"}, clock)
    assert status == 503
    assert body["checks"]["migrations"]["ok"] is False
    assert "ml-connector db upgrade" in body["checks"]["migrations"]["detail"]


async def test_readyz_fails_when_a_polled_flow_is_stuck_past_its_intervals() -> None:
    clock = ManualClock()
    pollers = PollerHealth(clock)
    pollers.watch("po_approved", timedelta(seconds=30))
    pollers.watch("standby_flow", timedelta(seconds=30))
    pollers.leading("po_approved", True)
    pollers.polled("po_approved")
    clock.advance(90)  # exactly three intervals: still fine
    assert (await _ready(_Probe(), pollers, {"poller"}, clock))[0] == 200
    pollers.failed("po_approved", "ERP unreachable")
    clock.advance(1)
    status, body = await _ready(_Probe(), pollers, {"poller"}, clock)
    assert status == 503
    assert body["checks"]["pollers"] == {"ok": False, "detail": (
        "po_approved: last poll 91s ago, more than 3 intervals of 30s (ERP unreachable)")}
    pollers.polled("po_approved")
    assert (await _ready(_Probe(), pollers, {"poller"}, clock))[0] == 200


async def test_readyz_fails_when_a_flow_stopped() -> None:
    clock = ManualClock()
    pollers = PollerHealth(clock)
    pollers.watch("po_approved", timedelta(seconds=30))
    pollers.leading("po_approved", True)
    pollers.stopped("po_approved", "template error: undefined variable")
    status, body = await _ready(_Probe(), pollers, {"poller"}, clock)
    assert status == 503
    assert "po_approved stopped: template error" in body["checks"]["pollers"]["detail"]


async def test_readyz_queue_check_on_dispatchers_only() -> None:
    clock = ManualClock()
    old = clock() - timedelta(minutes=16)
    status, body = await _ready(_Probe(oldest_due=old), PollerHealth(clock), {"dispatcher"}, clock)
    assert status == 503
    assert body["checks"]["queue"] == {"ok": False, "detail": "1 due, oldest waiting 16m (more than 15m)"}
    status, body = await _ready(_Probe(oldest_due=old), PollerHealth(clock), {"web"}, clock)
    assert status == 200 and "queue" not in body["checks"]


async def test_readyz_on_a_real_store_with_a_notification_waiting_too_long(tmp_path: Path) -> None:
    from ml_connector.store.probe import StoreProbe

    async with pipeline(tmp_path) as p:
        po = next(int(str(r["po_id"])) for r in p.erp.rows("po_headers")
                  if r["status"] in ("INCOMPLETE", "IN PROCESS"))
        await p.poll()
        p.erp.approve_po(po)
        await p.poll()  # a notification is due; no dispatcher runs
        probe = StoreProbe(p.connector.config.store.url)
        try:
            assert (await _ready(probe, PollerHealth(p.clock), {"dispatcher"}, p.clock))[0] == 200
            p.clock.advance(16 * 60)
            status, body = await _ready(probe, PollerHealth(p.clock), {"dispatcher"}, p.clock)
        finally:
            probe.close()
    assert status == 503
    assert body["checks"]["queue"]["detail"].startswith("1 due, oldest waiting 16m")
    assert body["checks"]["migrations"]["ok"] is True


def test_admin_port_from_the_environment(tmp_path: Path) -> None:
    from ml_connector.config import load_config
    from tests.cli.conftest import write_config

    config = load_config(write_config(tmp_path), {})
    assert admin_port(config, {}) == 0  # the demo config: a free port per process
    assert admin_port(config, {"MLC_ADMIN_PORT": "9470"}) == 9470
    with pytest.raises(ConfigError, match="MLC_ADMIN_PORT='x'"):
        admin_port(config, {"MLC_ADMIN_PORT": "x"})


async def test_no_admin_listener_when_disabled(tmp_path: Path) -> None:
    def off(config: dict[str, Any]) -> None:
        config["admin"] = {"enabled": False}

    async with pipeline(tmp_path, tweak=off) as p:
        stop = asyncio.Event()
        task = asyncio.create_task(p.connector.run(stop, ("poller",)))
        await _until(lambda: all(f.last_ok for f in p.connector.poll_health.flows.values()), "polled")
        assert p.connector.admin_url is None
        stop.set()
        await task


async def test_the_web_roles_callback_metrics_are_scraped_on_the_admin_address(tmp_path: Path) -> None:
    from ml_connector.demo import free_port

    port = free_port()

    def own_port(config: dict[str, Any]) -> None:
        config["webhooks"]["port"] = port

    async with pipeline(tmp_path, tweak=own_port) as p:
        stop = asyncio.Event()
        task = asyncio.create_task(p.connector.run(stop, ("web",)))
        await _until(lambda: p.connector.admin_url is not None and bool(p.connector.web_registries), "serving")
        try:
            async with httpx.AsyncClient() as client:
                await _until_answered(client, f"http://127.0.0.1:{port}/healthz")
                forged = await client.post(f"http://127.0.0.1:{port}/twilio/status", data={"MessageSid": "SM1"})
                text = (await client.get(f"{p.connector.admin_url}/metrics")).text
                ready = (await client.get(f"{p.connector.admin_url}/readyz")).json()
        finally:
            stop.set()
            await task
    assert forged.status_code == 403
    samples = _samples(text)
    assert samples[("mlc_status_callbacks_total", (("result", "unsigned"),))] == 1.0
    assert samples[("mlc_twilio_account_held", (("account", "main"),))] == 0.0
    assert set(ready["checks"]) == {"store", "migrations"}  # no poller, no dispatcher here
    assert p.connector.web_registries == []


async def _until_answered(client: httpx.AsyncClient, url: str) -> None:
    for _ in range(500):
        try:
            await client.get(url)
            return
        except httpx.TransportError:
            await asyncio.sleep(0.01)
    raise AssertionError(f"{url} never answered")


async def test_a_taken_admin_port_is_a_clear_configuration_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        def same_port(config: dict[str, Any]) -> None:
            config["admin"] = {"host": "127.0.0.1", "port": port}

        async with pipeline(tmp_path, tweak=same_port) as p:
            with pytest.raises(ConfigError, match=f"admin listener 127.0.0.1:{port}: .*MLC_ADMIN_PORT"):
                await p.connector.run(asyncio.Event(), ("poller",))
