"""The write-back runner: refused write-backs end visible after a bounded number of tries, statuses a
source does not record are skipped, and a graceful stop drains what is due."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml_connector.core.models import Status, StatusEvent
from ml_connector.core.retry import RetryPolicy
from ml_connector.runtime.writeback import WriteBackRunner
from ml_connector.sim.oracle_ebs import EbsSim
from ml_connector.sources.oracle_ebs import OracleEbsConfig, OracleEbsSource
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.sql import SqlStore
from tests.store.builders import T0, notification, poll
from tests.support.clock import ManualClock

ENTITIES = {"invoices": {"method": "get_changed_invoices", "output": "X_INVOICES", "key": "INVOICE_ID",
                         "table": "AP_INVOICES_ALL"}}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    made = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
    yield made
    made.close()


@pytest.fixture
async def ebs(clock: ManualClock) -> AsyncIterator[Callable[..., tuple[EbsSim, OracleEbsSource]]]:
    built: list[OracleEbsSource] = []

    def make(sim: dict[str, Any] | None = None, **write_back: Any) -> tuple[EbsSim, OracleEbsSource]:
        the_sim = EbsSim(clock=clock, **(sim or {}))
        config = OracleEbsConfig.model_validate({
            "type": "oracle_ebs", "base_url": "http://ebs.test", "username": "ISGUSER", "password": "welcome1",
            "timezone": "America/New_York", "retry_delay": 0, "entities": ENTITIES,
            "context": {"responsibility": "PAYABLES_MANAGER", "application": "SQLAP", "org_id": 204},
            "write_back": write_back})
        source = OracleEbsSource("ebs", config, transport=httpx.ASGITransport(the_sim.create_app()), clock=clock)
        built.append(source)
        return the_sim, source

    yield make
    for source in built:
        await source.aclose()


def failed_without_sid(store: SqlStore, i: int = 1) -> int:
    """A notification that failed before reaching Twilio (no usable phone): final, no SID."""
    note = notification(i, entity="invoices", status=Status.FAILED, reason="no usable phone number",
                        write_back="ebs")
    (nid,) = store.commit_poll(poll(note))
    return nid


def runner(store: SqlStore, source: OracleEbsSource, clock: ManualClock, **kwargs: Any) -> WriteBackRunner:
    return WriteBackRunner(store, {"ebs": source}, worker="wb", clock=clock,
                           policy=RetryPolicy.immediate(20), **kwargs)


def write_back_audit(store: SqlStore) -> list[tuple[str | None, str]]:
    return [(e.status, str(e.detail.get("message"))) for e in store.audit(None, None) if e.kind == "write_back"]


async def test_refused_write_back_gives_up_after_bounded_tries_with_the_erps_message(
        store: SqlStore, ebs: Any, clock: ManualClock) -> None:
    sim, source = ebs()  # the shop's audit table requires MESSAGE_SID
    failed_without_sid(store)
    wb = runner(store, source, clock)
    for _ in range(10):
        clock.advance(timedelta(minutes=1))
        await wb.run_once()
    outcomes = write_back_audit(store)
    assert [status for status, _ in outcomes] == ["retry", "retry", "gave_up"]
    assert "P_MESSAGE_SID is required." in outcomes[-1][1] and "3 time(s)" in outcomes[-1][1]
    assert sim.audit_rows() == []


async def test_rejected_tries_is_configuration(store: SqlStore, ebs: Any, clock: ManualClock) -> None:
    _, source = ebs(rejected_tries=1)
    failed_without_sid(store)
    await runner(store, source, clock).run_once()
    assert [status for status, _ in write_back_audit(store)] == ["gave_up"]


async def test_an_unreachable_erp_is_retried_longer_than_a_refusal(store: SqlStore, ebs: Any,
                                                                   clock: ManualClock) -> None:
    sim, source = ebs({"audit_required": frozenset()})
    failed_without_sid(store)
    wb = runner(store, source, clock)
    for _ in range(5):
        sim.fail_next(4)  # the adapter's own retries (3) and then one more: unreachable this round
        clock.advance(timedelta(minutes=1))
        await wb.run_once()
    await wb.run_once()
    assert [status for status, _ in write_back_audit(store)] == ["retry"] * 5 + ["done"]
    assert [(r["status"], r["message_sid"]) for r in sim.audit_rows()] == [("FAILED", None)]


async def test_statuses_not_recorded_are_skipped_not_sent(store: SqlStore, ebs: Any, clock: ManualClock) -> None:
    sim, source = ebs(statuses=["delivered", "undelivered"])
    failed_without_sid(store)
    await runner(store, source, clock).run_once()
    assert write_back_audit(store) == [("skipped", "ebs does not record failed deliveries")]
    assert sim.audit_rows() == []
    clock.advance(timedelta(days=1))
    assert await runner(store, source, clock).run_once() == 0


async def test_a_twilio_outcome_is_written_with_its_sid_and_code(store: SqlStore, ebs: Any,
                                                                  clock: ManualClock) -> None:
    sim, source = ebs()
    store.commit_poll(poll(notification(2, entity="invoices", write_back="ebs")))
    (claimed,) = store.claim_due("w", T0, timedelta(seconds=60), 10)
    sid = "SM" + "c" * 32
    store.finish_attempt(AttemptResult(claimed.id, claimed.attempt_no, Outcome.ACCEPTED, T0, T0, provider_id=sid))
    store.apply_status(StatusEvent(sid, "undelivered", 30003, T0 + timedelta(minutes=1), {"MessageSid": sid}))
    clock.advance(timedelta(minutes=2))
    await runner(store, source, clock).run_once()
    (row,) = sim.audit_rows()
    assert (row["status"], row["message_sid"], row["error_code"]) == ("UNDELIVERED", sid, "30003")


# -- at shutdown ------------------------------------------------------------------------------


async def test_a_graceful_stop_writes_back_what_is_due(store: SqlStore, ebs: Any, clock: ManualClock) -> None:
    sim, source = ebs({"audit_required": frozenset()})
    failed_without_sid(store)
    stop = asyncio.Event()
    stop.set()  # the final status was recorded just before the stop
    await runner(store, source, clock).run(stop)
    assert [r["status"] for r in sim.audit_rows()] == ["FAILED"]


class Hanging(httpx.AsyncBaseTransport):
    """An ERP that never answers (until released)."""

    def __init__(self, app: httpx.AsyncBaseTransport) -> None:
        self.app = app
        self.release = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.release.wait()
        return await self.app.handle_async_request(request)


async def test_what_the_grace_period_cannot_drain_is_sent_at_the_next_start(
        store: SqlStore, clock: ManualClock) -> None:
    sim = EbsSim(clock=clock, audit_required=frozenset())
    config = OracleEbsConfig.model_validate({
        "type": "oracle_ebs", "base_url": "http://ebs.test", "username": "ISGUSER", "password": "welcome1",
        "auth": "basic", "timezone": "America/New_York", "retry_delay": 0, "entities": ENTITIES})
    hanging = Hanging(httpx.ASGITransport(sim.create_app()))
    slow = OracleEbsSource("ebs", config, transport=hanging, clock=clock)
    failed_without_sid(store, 1)
    failed_without_sid(store, 2)
    stop = asyncio.Event()
    stop.set()
    try:
        await runner(store, slow, clock, drain_for=timedelta(milliseconds=50)).run(stop)  # returns: bounded
    finally:
        hanging.release.set()
        await slow.aclose()
    assert sim.audit_rows() == []
    # The next start: the cut-off call's lease runs out and both are sent.
    clock.advance(timedelta(minutes=2))
    restarted = OracleEbsSource("ebs", config, transport=httpx.ASGITransport(sim.create_app()), clock=clock)
    try:
        await runner(store, restarted, clock).run(stop)
    finally:
        await restarted.aclose()
    assert sorted(r["source_id"] for r in sim.audit_rows()) == ["1", "2"]


async def test_connector_stop_drains_write_backs_after_the_other_roles(tmp_path: Path) -> None:
    """`Connector.run`: write-back stops last and drains, so a status recorded at the stop lands."""
    import yaml

    from ml_connector.app import Connector, Overrides
    from ml_connector.channels.http import AsgiTransport
    from ml_connector.config import load_config
    from ml_connector.demo import demo_config
    from ml_connector.sim.twilio import TwilioSim
    from ml_connector.store.crypto import create_key_file

    sim = EbsSim(audit_required=frozenset())
    config = demo_config(tmp_path, "http://127.0.0.1:1", 8080, ebs_url="http://ebs.test")
    path = tmp_path / "ml-connector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    create_key_file(tmp_path / "ml-connector.key")
    connector = Connector(load_config(path, {}), env={}, overrides=Overrides(
        twilio_transport=AsgiTransport(TwilioSim().create_app()), worker="test",
        source_context={"transports": {"ebs": httpx.ASGITransport(sim.create_app())}}))
    try:
        note = notification(1, flow="ebs_invoice_validated", entity="invoices", status=Status.FAILED,
                            reason="no usable phone number", write_back="ebs", next_attempt_at=T0)
        connector.store.commit_poll(poll(note, flow="ebs_invoice_validated"))
        stop = asyncio.Event()
        stop.set()
        await connector.run(stop, ("dispatcher",))
    finally:
        await connector.aclose()
    assert [(r["source_table"], r["status"]) for r in sim.audit_rows()] == [("AP_INVOICES_ALL", "FAILED")]
