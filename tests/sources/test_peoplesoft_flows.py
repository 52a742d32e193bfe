"""PeopleSoft flows through the real Poller and SqlStore: pay-run fan-out, effective dating, phone
snapshot diffs, and the exposed_fields allow-list (records minimised, validate refusing templates)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.templates import compile_template
from ml_connector.runtime.poller import LOOKBACK, FlowRuntime, Poller
from ml_connector.sim.peoplesoft import PsSim
from ml_connector.sources.peoplesoft import PeopleSoftConfig, PeopleSoftSource
from ml_connector.store.crypto import KeyRing
from ml_connector.store.port import NotificationFilter
from ml_connector.store.sql import SqlStore
from tests.cli.conftest import run_cli
from tests.support.clock import ManualClock

START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "peoplesoft.yaml"


def example() -> dict[str, Any]:
    loaded = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[[], SqlStore]]:
    opened: list[SqlStore] = []

    def make() -> SqlStore:
        opened.append(SqlStore(f"sqlite:///{tmp_path / 'store.db'}", KeyRing(b"k" * 32)))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def source_for(sim: PsSim, clock: ManualClock, **overrides: Any) -> PeopleSoftSource:
    raw = dict(example()["sources"]["hcm"])
    raw.update({"base_url": "http://hr.test", "retry_delay": 0,
                "auth": {"type": "basic", "user": "MLC_REST", "password": "mlc-pass"}, **overrides})
    return PeopleSoftSource("hcm", PeopleSoftConfig.model_validate(raw),
                            transport=httpx.ASGITransport(sim.create_app()), clock=clock)


def poller_for(flow: str, source: PeopleSoftSource, store: SqlStore, clock: ManualClock, **spec: Any) -> Poller:
    raw = {**example()["flows"][flow], "schedule": {"every": "1m", "overlap": "10m", "clock_skew": "5s",
                                                    "lookback": {"every": "1h", "window": "3d"}}, **spec}
    flow_spec = FlowSpec.model_validate(raw)
    runtime = FlowRuntime(name=flow, spec=flow_spec, source=source, account="demo", sender="+15005550006",
                          template=compile_template(flow, flow_spec.template, timezone=flow_spec.timezone),
                          default_region="US")
    return Poller(runtime, store, clock)


def sent(store: SqlStore, flow: str) -> list[Any]:
    return list(store.list_notifications(NotificationFilter(flow=flow, limit=100_000)))


async def test_a_pay_run_notifies_each_employee_of_the_pay_group_once(clock: ManualClock,
                                                                     make_store: Callable[[], SqlStore]) -> None:
    sim = PsSim(clock=clock, employees=5)
    sim.add_employees(1200)
    other = sim.add_employees(3, paygroup="MN1")  # another pay group: not notified
    source = source_for(sim, clock, entities={**example()["sources"]["hcm"]["entities"],
                                              "paygroup_employees": {"query": "XX_MLC_PAYGROUP_EES", "key": ["EMPLID"],
                                                                     "members": {}, "maxrows": 100}})
    store = make_store()
    poller = poller_for("payroll_posted", source, store, clock)
    await poller.poll()
    clock.advance(60)
    sim.post_payrun("BW1")
    clock.advance(60)
    report = await poller.poll()
    rows = sent(store, "payroll_posted")
    employees = {r.recipient_field for r in rows}
    assert report.inserted == len(rows) == 1205 and employees == {"paygroup_employees.PHONE_PREFERRED"}
    assert len({r.id for r in rows}) == 1205 and not any(o in r.body for r in rows for o in other)
    assert all(r.body.startswith("Hi ") and "has posted" in r.body for r in rows)
    # Re-read by the overlap, the lookback and a restarted process: nothing more.
    clock.advance(60)
    await poller.poll()
    await poller.poll(LOOKBACK)
    restarted = poller_for("payroll_posted", source_for(sim, clock), make_store(), clock)
    assert (await restarted.poll()).inserted == 0 and (await restarted.poll(LOOKBACK)).inserted == 0
    assert len(sent(store, "payroll_posted")) == 1205


async def test_a_phone_changed_between_reads_of_a_pay_run_does_not_notify_twice(
        clock: ManualClock, make_store: Callable[[], SqlStore]) -> None:
    sim = PsSim(clock=clock, employees=4)
    store = make_store()
    poller = poller_for("payroll_posted", source_for(sim, clock), store, clock)
    await poller.poll()
    clock.advance(60)
    sim.post_payrun("BW1")
    clock.advance(60)
    await poller.poll()
    sim.set_phone("KU0001", "CELL", "312/555-0199", preferred=True)
    clock.advance(60)
    restarted = poller_for("payroll_posted", source_for(sim, clock), store, clock)
    assert (await restarted.poll()).inserted == 0
    assert len(sent(store, "payroll_posted")) == 4


async def test_a_future_dated_hire_is_notified_once_on_its_date(clock: ManualClock,
                                                               make_store: Callable[[], SqlStore]) -> None:
    sim = PsSim(clock=clock)
    store = make_store()
    poller = poller_for("employee_hired", source_for(sim, clock), store, clock)
    await poller.poll()
    clock.advance(60)
    sim.job_action(None, "HIR", effdt=date(2024, 3, 7))
    for _ in range(3):
        clock.advance(60)
        await poller.poll()
    assert sent(store, "employee_hired") == []
    clock.now = datetime(2024, 3, 7, 6, 0, 30, tzinfo=UTC)  # 00:00:30 in Chicago, the hire date
    await poller.poll()
    clock.advance(60)
    await poller.poll()
    await poller.poll(LOOKBACK)
    [hired] = sent(store, "employee_hired")
    assert hired.body.startswith("Welcome, ")


async def test_phone_changes_are_found_by_snapshot_diff(clock: ManualClock,
                                                        make_store: Callable[[], SqlStore]) -> None:
    sim = PsSim(clock=clock, employees=6)
    store = make_store()
    poller = poller_for("phone_changed", source_for(sim, clock), store, clock)
    await poller.poll()  # the baseline: every phone known, nobody notified
    clock.advance(60)
    await poller.poll()
    assert sent(store, "phone_changed") == []
    sim.set_phone("KU0002", "HOME", "415/555-0111", preferred=True)  # no timestamp moves anywhere
    sim.set_phone("KU0004", "BUSN", "212/555-0100", extension="214")
    clock.advance(60)
    await poller.poll()
    clock.advance(60)
    await poller.poll()
    rows = sent(store, "phone_changed")
    assert sorted(r.record_key for r in rows) == ["KU0002", "KU0004"]
    by_key = {r.record_key: r for r in rows}
    assert by_key["KU0002"].recipient == "+14155550111"  # the preferred phone, country code applied
    assert by_key["KU0004"].recipient != "+12125550100"  # a line with an extension comes last


async def test_records_keep_only_exposed_fields(clock: ManualClock) -> None:
    sim = PsSim(clock=clock)
    sim.job_action(None, "HIR")
    source = source_for(sim, clock)
    [record] = [r async for r in source.fetch("jobs", clock() - timedelta(minutes=1), clock() + timedelta(seconds=1))]
    assert "ANNUAL_RT" not in record.data and "LASTUPDOPRID" not in record.data
    assert {"EMPLID", "NAME_DISPLAY", "DEPTNAME", "JOBTITLE", "ACTION", "EFFDT"} <= set(record.data)
    everything = source_for(sim, clock, exposed_fields=None)
    [full] = [r async for r in everything.fetch("jobs", clock() - timedelta(minutes=1), clock() + timedelta(seconds=1))]
    assert "ANNUAL_RT" in full.data


def test_validate_refuses_a_template_using_a_field_outside_the_allow_list(tmp_path: Path) -> None:
    config = tmp_path / "peoplesoft.yaml"
    shutil.copy(EXAMPLE, config)
    assert run_cli(["--config", str(config), "validate"]).exit_code == 0
    text = config.read_text(encoding="utf-8").replace(
        '"Welcome, {{ NAME_DISPLAY }}! You start today',
        '"Welcome, {{ NAME_DISPLAY }}! Salary {{ ANNUAL_RT }}. You start today')
    config.write_text(text, encoding="utf-8")
    result = run_cli(["--config", str(config), "validate"])
    assert result.exit_code == 2
    assert "flows.employee_hired.template: line 1 of the template: field 'ANNUAL_RT' is not in " \
           "sources.hcm.exposed_fields" in result.output + result.stderr


async def test_a_due_date_fires_once_per_record_at_the_local_time_without_any_change(
        clock: ManualClock, make_store: Callable[[], SqlStore]) -> None:
    sim = PsSim(clock=clock)  # three open steps due 2024-03-08, -09 and -10
    step = sim.tables.steps[1]
    store = make_store()
    poller = poller_for("benefits_deadline", source_for(sim, clock), store, clock)
    clock.advance(-3600)  # 08:00 in Chicago: the first step fires at 09:00 today
    await poller.poll()
    fired_at: dict[str, datetime] = {}
    for _ in range(4 * 8):  # every six hours for eight days, nothing in the rows changes
        clock.advance(hours=6)
        await poller.poll()
        if clock().hour == 21:
            await poller.poll(LOOKBACK)
        for row in sent(store, "benefits_deadline"):
            fired_at.setdefault(row.record_key, clock())
    rows = sent(store, "benefits_deadline")
    assert sorted(r.record_key for r in rows) == sorted(f"{s.emplid}/{s.step_id}" for s in sim.tables.steps)
    assert "Benefits enrolment is due on Sat Mar 09" in {r.record_key: r.body for r in rows}[
        f"{step.emplid}/{step.step_id}"]
    first = f"{sim.tables.steps[0].emplid}/{sim.tables.steps[0].step_id}"
    assert fired_at[first] <= datetime(2024, 3, 5, 20, 0, tzinfo=UTC)  # read by the first poll after 09:00


def test_due_fires_at_the_local_time_before_the_date() -> None:
    from zoneinfo import ZoneInfo

    from ml_connector.core.due import DueSpec, fire_at

    spec = DueSpec.model_validate({"field": "DUE_DT", "before": "3d", "at": "09:00"})
    assert fire_at(date(2024, 3, 8), spec, ZoneInfo("America/Chicago")) == datetime(2024, 3, 5, 15, tzinfo=UTC)
    # across the spring change (10 March 2024): still 09:00 local, now CDT
    assert fire_at(date(2024, 3, 13), spec, ZoneInfo("America/Chicago")) == datetime(2024, 3, 10, 14, tzinfo=UTC)
    with pytest.raises(ValueError, match="HH:MM"):
        DueSpec.model_validate({"field": "DUE_DT", "at": "9am"})
