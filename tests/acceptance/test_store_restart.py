"""`ml-connector run` rides out a restart of its PostgreSQL database under load.

A private PostgreSQL cluster (initdb/pg_ctl in a temporary directory, on a free port) holds the
store; the connector runs every role as a real process against the Twilio simulator while the
ERP keeps producing events. Mid-run the cluster is stopped (every session cut), stays down a few
seconds and comes back. The process must never exit; afterwards every event has exactly one
message at the simulator (0 lost, 0 doubled), and the outage is one log line, not a storm.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ml_connector.core.models import Status
from tests.support import pgcluster
from tests.support.processes import EventMaker, Rig, crash_seed, judge, wait_for

pytestmark = pytest.mark.skipif(pgcluster.available() is not None,
                                reason=f"no private PostgreSQL cluster: {pgcluster.available()}")

DOWN_FOR = 4.0


def _produce(maker: EventMaker, stop: threading.Event, errors: list[BaseException]) -> None:
    try:
        while not stop.wait(0.08):
            maker.step()
    except BaseException as exc:  # surfaced by the test after join()
        errors.append(exc)


@pytest.mark.slow
def test_a_postgresql_restart_under_load_loses_nothing_and_the_process_never_exits(tmp_path: Path) -> None:
    seed = crash_seed(default=7)
    with pgcluster.private_cluster() as cluster, Rig.open(tmp_path, store_url=cluster.url, mps=50) as rig:
        rig.start_simulator()
        connector = rig.start_connector()
        rig.wait_polling()
        maker = EventMaker(rig.erp, seed)
        stop, errors = threading.Event(), list[BaseException]()
        producer = threading.Thread(target=_produce, args=(maker, stop, errors), daemon=True)
        producer.start()
        try:
            wait_for(lambda: any(n.status is Status.DELIVERED for n in rig.notifications()), timeout=30,
                     what="the first delivery", diagnose=rig.diagnose)
            time.sleep(1.0)  # sends, callbacks and polls under way
            rig.store.close()  # this test's own view of the store reconnects afterwards
            cluster.restart(DOWN_FOR)
            assert connector.alive, f"the connector exited during the outage\n{connector.log_tail()}"
            time.sleep(3.0)  # events keep coming after the restart
        finally:
            stop.set()
            producer.join(timeout=10)
        assert not errors, f"the ERP event producer failed: {errors[0]!r}"
        assert connector.alive, f"the connector exited after the outage\n{connector.log_tail()}"

        rig.wait_settled(len(maker.events), timeout=90)
        verdict = judge(maker.events, rig.notifications(), rig.sim.messages(), rig.audit_export())
        log = connector.log_path.read_text(errors="replace")
        rig.stop_connector()  # asserts it is still alive and stops cleanly

    print(f"{len(maker.events)} events; {verdict.summary()}; postgres down {DOWN_FOR:g} s")
    assert verdict.problems == [], "\n".join(verdict.problems)
    assert verdict.accepted + verdict.failed == len(maker.events)
    assert log.count("store postgresql unavailable") >= 1, "the outage was never noticed"
    assert log.count("store postgresql unavailable") <= 3, "one line per outage, not one per request"
    assert log.count("Traceback") == 0, "no traceback storm"
    assert "no longer polled by this process" not in log, "the poller locks were taken again at once"
