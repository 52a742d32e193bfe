"""SAP in RFC mode through the write-back runner: a final status goes through the Z module and
BAPI_TRANSACTION_COMMIT in one agent session; a refusal (BAPIRET2 E) ends visible with SAP's message."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from ml_connector.core.models import StatusEvent
from ml_connector.core.retry import RetryPolicy
from ml_connector.runtime.writeback import WriteBackRunner
from ml_connector.sim.sap_agent import SapAgentSim
from ml_connector.sources.sap_rfc_source import SapRfcSource
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.sql import SqlStore
from tests.contract.sap_rfc import TOKEN, rfc_config
from tests.store.builders import T0, notification, poll
from tests.support.clock import ManualClock


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    made = SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32))
    yield made
    made.close()


@pytest.fixture
async def rig() -> AsyncIterator[tuple[ManualClock, SapAgentSim, SapRfcSource]]:
    clock = ManualClock(T0)
    sim = SapAgentSim(clock=clock, token=TOKEN)
    source = SapRfcSource("sap", rfc_config(write_back={"enabled": True}),
                          transport=httpx.ASGITransport(sim.create_app()), clock=clock)
    yield clock, sim, source
    await source.aclose()


def delivered(store: SqlStore, sid: str) -> None:
    store.commit_poll(poll(notification(3, entity="purchase_orders", write_back="sap")))
    (claimed,) = store.claim_due("w", T0, timedelta(seconds=60), 10)
    store.finish_attempt(AttemptResult(claimed.id, claimed.attempt_no, Outcome.ACCEPTED, T0, T0, provider_id=sid))
    store.apply_status(StatusEvent(sid, "delivered", None, T0 + timedelta(minutes=1), {"MessageSid": sid}))


async def test_a_final_status_is_committed_in_sap(store: SqlStore, rig: tuple[ManualClock, SapAgentSim,
                                                                               SapRfcSource]) -> None:
    clock, sim, source = rig
    sid = "SM" + "d" * 32
    delivered(store, sid)
    clock.advance(timedelta(minutes=2))
    await WriteBackRunner(store, {"sap": source}, worker="wb", clock=clock,
                          policy=RetryPolicy.immediate(5)).run_once()
    [row] = sim.deliveries()
    assert (row["MESSAGE_SID"], row["STATUS"]) == (sid, "delivered")
    assert sim.calls[-2:] == ["Z_MLC_DELIVERY_STATUS", "BAPI_TRANSACTION_COMMIT"] and sim.sessions == {}
    assert [e.status for e in store.audit(None, None) if e.kind == "write_back"] == ["done"]


async def test_a_module_that_refuses_ends_with_sap_message_class_and_number(
        store: SqlStore, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    sim = SapAgentSim(clock=clock, token=TOKEN)
    source = SapRfcSource("sap", rfc_config(write_back={"enabled": True, "parameters": {"NOTIFICATION_ID":
                                                                                         "notification_id"}}),
                          transport=httpx.ASGITransport(sim.create_app()), clock=clock)
    try:
        delivered(store, "SM" + "e" * 32)
        runner = WriteBackRunner(store, {"sap": source}, worker="wb", clock=clock, policy=RetryPolicy.immediate(5),
                                 rejected_tries=1)
        clock.advance(timedelta(minutes=2))
        await runner.run_once()
    finally:
        await source.aclose()
    outcomes = [(e.status, str(e.detail.get("message"))) for e in store.audit(None, None) if e.kind == "write_back"]
    assert [status for status, _ in outcomes] == ["gave_up"]
    assert "ZMLC/002" in outcomes[0][1] and sim.deliveries() == []
