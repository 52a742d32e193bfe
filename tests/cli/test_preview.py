"""`ml-connector preview FLOW` on each example config against its ERP simulator on loopback.

Each example is run as a user would after `ml-connector simulate`: its simulator is served on a
loopback port, a few business events are made, and preview must list what the flow would send
(masked recipient or the reason there is none, text, segments, encoding, channel, sender), send
nothing and store nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ml_connector.config import load_config
from ml_connector.demo import EbsEvents, SysproEvents, syspro_simulator
from ml_connector.demo_peoplesoft import PeopleSoftEvents, peoplesoft_simulator
from ml_connector.demo_sap import SapEvents, sap_simulator
from ml_connector.sim.oracle_ebs import EbsSim
from ml_connector.web.server import serving
from tests.cli.conftest import Invoke, write_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` on a loopback port from its own thread (the CLI runs its own event loop)."""
    ready, url, loop, stop = threading.Event(), [], asyncio.new_event_loop(), asyncio.Event()

    async def serve() -> None:
        async with serving(app) as base_url:
            url.append(base_url)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the simulator did not start"
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def _ebs(source: Any) -> tuple[Any, Any]:
    sim = EbsSim(server_tz=source.timezone)
    return sim, EbsEvents(sim)


def _sap(source: Any) -> tuple[Any, Any]:
    sim = sap_simulator(source)
    return sim, SapEvents(sim)


def _peoplesoft(source: Any) -> tuple[Any, Any]:
    sim = peoplesoft_simulator(source)
    return sim, PeopleSoftEvents(sim)


def _syspro(source: Any) -> tuple[Any, Any]:
    sim = syspro_simulator(source)
    return sim, SysproEvents(sim)


#: example file -> (source name, simulator and its event maker, URL keys to point at it)
SIMULATED: dict[str, tuple[str, Callable[[Any], tuple[Any, Any]], tuple[str, ...]]] = {
    "oracle-ebs.yaml": ("ebs", _ebs, ("base_url",)),
    "sap-ecc.yaml": ("sap", _sap, ("base_url",)),
    "peoplesoft.yaml": ("hcm", _peoplesoft, ("base_url",)),
    "syspro.yaml": ("syspro", _syspro, ("base_url", "odata_url")),
}


def example_copy(tmp_path: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """The example with its store and key file in `tmp_path` (nothing written next to the example)."""
    data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    data["store"]["url"] = f"sqlite:///{tmp_path / 'store.db'}"
    data["store"]["key_file"] = str(tmp_path / "ml-connector.key")
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path, data


def preview_json(invoke: Invoke, path: Path, flow: str, *extra: str) -> dict[str, Any]:
    result = invoke(["-c", str(path), "preview", flow, "--json", *extra])
    assert result.exit_code == 0, result.output + result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def assert_shown_fully(found: dict[str, Any]) -> None:
    """Every listed item says who (masked) or why nobody, what, how many segments, how and from whom."""
    assert found["items"], found
    for item in found["items"]:
        assert item["record_key"] and item["event"]
        assert item["channel"] == "sms" and item["sender"] and item["account"]
        if item["recipient"] is None:
            assert item["reason"], item
        else:
            assert "•••" in item["recipient"], item  # masked
        if item["text"] is not None:
            assert item["segments"] >= 1 and item["encoding"] in ("GSM-7", "UCS-2")


@pytest.mark.parametrize(("example", "flow", "ticks"), [
    ("oracle-ebs.yaml", "po_approved", 12),
    ("oracle-ebs.yaml", "invoice_validated", 12),
    ("sap-ecc.yaml", "po_created", 3),
    ("peoplesoft.yaml", "payroll_posted", 1),
    ("syspro.yaml", "po_approved", 6),
    ("syspro.yaml", "invoice_posted", 6),
])
def test_preview_lists_what_an_example_flow_would_send(tmp_path: Path, invoke: Invoke, served_twilio: Any,
                                                       example: str, flow: str, ticks: int) -> None:
    path, data = example_copy(tmp_path, example)
    source_name, simulator, url_keys = SIMULATED[example]
    source = load_config(path, {}).sources[source_name]
    sim, events = simulator(source)
    rng = random.Random(7)
    for _ in range(ticks):
        events.tick(rng)
    with served(sim.create_app()) as url:
        for key in url_keys:
            old = str(data["sources"][source_name][key])
            data["sources"][source_name][key] = old.replace("http://127.0.0.1:8920", url).replace(
                "http://127.0.0.1:8930", url).replace("http://127.0.0.1:8940", url)
        data["twilio"]["accounts"]["demo"]["base_urls"]["api"] = served_twilio.url
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        found = preview_json(invoke, path, flow)
    assert found["flow"] == flow
    assert found["fired"] >= 1 and found["read"] >= found["fired"]
    assert_shown_fully(found)
    assert found["notes"] == ["this flow has not run yet: every change in the window counts as new"]
    assert not (tmp_path / "store.db").exists(), "preview created the store"
    assert served_twilio.sim.messages() == []


# -- the SQL example against the demo ERP, with a store that has polled before -------------------


def _dump(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.iterdump())


def _sql_setup(tmp_path: Path, twilio_url: str) -> Path:
    _erp(tmp_path, hours_ago=1).create()  # seeded an hour ago: older than any poll of the test
    config_path = write_config(tmp_path, twilio_url)  # the key file (the ERP database is there)
    path, data = example_copy(tmp_path, "sql.yaml")
    data["sources"]["erp"]["url"] = f"sqlite:///{tmp_path / 'demo-erp.db'}"
    data["twilio"]["accounts"]["demo"]["base_urls"]["api"] = twilio_url
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert config_path.exists()
    return path


def _erp(tmp_path: Path, hours_ago: int = 0) -> Any:
    """The demo ERP; its changes stamped `hours_ago` in the past (ERP clocks are whole seconds: a
    change in the very second a flow first starts counts as new, so the past keeps tests exact)."""
    from ml_connector.demo import DEMO_TZ
    from ml_connector.sim.demo_erp import DemoErp

    return DemoErp(tmp_path / "demo-erp.db", tz=DEMO_TZ,
                   clock=lambda: datetime.now(UTC) - timedelta(hours=hours_ago))


def _approve_open_po(erp: Any) -> int:
    """Approve the first open PO; its id."""
    po_id = next(int(str(r["po_id"])) for r in erp.rows("po_headers") if r["status"] in ("INCOMPLETE", "IN PROCESS"))
    erp.approve_po(po_id)
    return po_id


def _approve_invoice_with_phone(tmp_path: Path, erp: Any, phone: str) -> int:
    invoice_id = next(int(str(r["invoice_id"])) for r in erp.rows("ap_invoices")
                      if r["approval_status"] == "NEVER APPROVED")
    with contextlib.closing(sqlite3.connect(tmp_path / "demo-erp.db")) as conn, conn:
        conn.execute("UPDATE ap_invoices SET approver_phone = ? WHERE invoice_id = ?", (phone, invoice_id))
    erp.validate_invoice(invoice_id)
    return invoice_id


async def _poll_once(path: Path, flow: str, ahead: timedelta = timedelta(0)) -> None:
    """One poll of `flow`; `ahead` moves its clock past the clock skew margin (it reads to now - 5 s)."""
    from ml_connector.app import Connector, Overrides

    connector = Connector(load_config(path, {}), overrides=Overrides(clock=lambda: datetime.now(UTC) + ahead))
    try:
        await connector.pollers[flow].poll()
    finally:
        await connector.aclose()


def test_sql_preview_honours_the_stored_last_seen_values_and_changes_nothing(
        tmp_path: Path, invoke: Invoke, served_twilio: Any) -> None:
    path = _sql_setup(tmp_path, served_twilio.url)
    past, erp = _erp(tmp_path, hours_ago=1), _erp(tmp_path)
    before_poll = _approve_open_po(past)  # approved before the flow first ran: baseline, not an event
    past.create_po(random.Random(3))      # a new PO, INCOMPLETE: the poll stores that as its last-seen value
    created = max(int(str(r["po_id"])) for r in erp.rows("po_headers"))
    asyncio.run(_poll_once(path, "po_approved"))
    erp.approve_po(created)              # since the poll: INCOMPLETE -> APPROVED
    store = tmp_path / "store.db"
    dumped = _dump(store)
    found = preview_json(invoke, path, "po_approved")
    assert [item["record_key"] for item in found["items"]] == [str(created)], (before_poll, found)
    assert found["notes"] == []
    assert found["items"][0]["event"] == "status: INCOMPLETE -> APPROVED"
    assert _dump(store) == dumped, "preview changed the store"
    # Twice gives the same answer: nothing was remembered.
    assert preview_json(invoke, path, "po_approved")["items"] == found["items"]
    assert served_twilio.sim.messages() == []
    # Once the flow has polled it, the event is no longer to come.
    asyncio.run(_poll_once(path, "po_approved", ahead=timedelta(minutes=1)))
    assert preview_json(invoke, path, "po_approved")["items"] == []


def test_preview_marks_what_is_already_notified(tmp_path: Path, invoke: Invoke, served_twilio: Any) -> None:
    """A trigger without a transition fires again on every read; the store's keys say it was sent."""
    path = _sql_setup(tmp_path, served_twilio.url)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["flows"]["invoice_validated"]["trigger"] = {"field": "approval_status", "eq": "APPROVED"}
    data["flows"]["invoice_validated"]["first_sighting"] = "fire"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    _approve_invoice_with_phone(tmp_path, _erp(tmp_path, hours_ago=1), "+13125550142")
    before = preview_json(invoke, path, "invoice_validated")
    assert before["would_send"] >= 1 and before["already_stored"] == 0
    asyncio.run(_poll_once(path, "invoice_validated", ahead=timedelta(minutes=1)))
    after = preview_json(invoke, path, "invoice_validated")
    assert after["fired"] == before["fired"]
    assert after["would_send"] == 0
    assert after["already_stored"] == before["would_send"] + before["without_recipient"]
    assert all(item["already_stored"] for item in after["items"])


def test_sql_preview_says_why_a_record_has_no_recipient(tmp_path: Path, invoke: Invoke, served_twilio: Any) -> None:
    path = _sql_setup(tmp_path, served_twilio.url)
    erp = _erp(tmp_path)
    invoice = _approve_invoice_with_phone(tmp_path, erp, "not a number")
    found = preview_json(invoke, path, "invoice_validated")
    item = next(i for i in found["items"] if i["record_key"] == str(invoice))
    assert item["recipient"] is None
    assert "approver_phone" in item["reason"]
    assert found["without_recipient"] >= 1


def test_preview_human_output_and_limit(tmp_path: Path, invoke: Invoke, served_twilio: Any) -> None:
    path = _sql_setup(tmp_path, served_twilio.url)
    erp = _erp(tmp_path)
    for _ in range(2):
        _approve_open_po(erp)
    result = invoke(["-c", str(path), "preview", "po_approved", "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "segment" in result.stdout and "GSM-7" in result.stdout
    assert "nothing was sent or stored" in result.stdout
    assert "more not listed" in result.stderr
    assert "+1312" not in result.stdout.replace("+1312•••", "")  # numbers only masked


def test_preview_of_an_unknown_flow_names_the_flows(tmp_path: Path, invoke: Invoke, served_twilio: Any) -> None:
    path = _sql_setup(tmp_path, served_twilio.url)
    result = invoke(["-c", str(path), "preview", "nope"])
    assert result.exit_code == 2
    assert "po_approved" in result.stderr


def test_preview_since_must_be_a_duration(tmp_path: Path, invoke: Invoke, served_twilio: Any) -> None:
    path = _sql_setup(tmp_path, served_twilio.url)
    result = invoke(["-c", str(path), "preview", "po_approved", "--since", "yesterday"])
    assert result.exit_code == 2
    assert "30m, 12h, 2d or 1w" in result.stderr


def test_since_takes_the_usual_durations() -> None:
    from ml_connector.cli_preview import Ago

    assert Ago().convert("2d", None, None) == timedelta(days=2)
    assert Ago().convert("30m", None, None) == timedelta(minutes=30)
    assert Ago().convert("1w", None, None) == timedelta(weeks=1)
