"""Pure parts of the store: timestamps, masking, URL rules, the finish plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select

from ml_connector.core.models import Status
from ml_connector.errors import ConfigError
from ml_connector.store.engine import parse_url
from ml_connector.store.finish import plan_finish
from ml_connector.store.port import AttemptResult, Outcome
from ml_connector.store.scrub import mask_numbers
from ml_connector.store.types import UtcDateTime

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_sqlite_timestamps_sort_as_instants_and_come_back_aware_utc(tmp_path: object) -> None:
    meta = MetaData()
    t = Table("t", meta, Column("id", Integer, primary_key=True), Column("at", UtcDateTime))
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    plus5 = timezone(timedelta(hours=5))
    values = [
        datetime(2024, 5, 1, 16, 0, tzinfo=plus5),  # 11:00 UTC
        datetime(2024, 5, 1, 10, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 5, 1, 11, 0, 0, 1, tzinfo=UTC),
        datetime(999, 1, 1, tzinfo=UTC),
    ]
    with engine.begin() as conn:
        conn.execute(insert(t), [{"at": v} for v in values])
        got = conn.execute(select(t.c.at).order_by(t.c.at)).scalars().all()
        later = (
            conn.execute(select(t.c.id).where(t.c.at > datetime(2024, 5, 1, 11, tzinfo=UTC))).scalars().all()
        )
    assert got == sorted(values)
    assert all(v.tzinfo is UTC for v in got)
    assert later == [3]
    engine.dispose()


def test_naive_timestamps_are_refused() -> None:
    meta = MetaData()
    t = Table("t", meta, Column("id", Integer, primary_key=True), Column("at", UtcDateTime))
    engine = create_engine("sqlite://")
    meta.create_all(engine)
    with engine.begin() as conn, pytest.raises(Exception, match="timezone-aware"):
        conn.execute(insert(t).values(at=datetime(2024, 5, 1)))
    engine.dispose()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("The 'To' number +13125550142 is not a valid phone number.", "The 'To' number +1312•••0142 is not"),
        ("call (312) 555-0142 now", "call 312•••0142 now"),
        ("error 21211", "error 21211"),
    ],
)
def test_phone_numbers_are_masked(text: str, masked: str) -> None:
    out = mask_numbers(text)
    assert out is not None and out.startswith(masked)
    assert "3125550142" not in out and "555-0142" not in out


def test_urls() -> None:
    assert parse_url("postgresql://u:pw@h/db").drivername == "postgresql+psycopg"
    assert parse_url("postgresql+psycopg://u@h/db?options=-csearch_path%3Ds").query == {
        "options": "-csearch_path=s"
    }
    assert parse_url("sqlite:///x.db").database == "x.db"
    with pytest.raises(ConfigError, match="unsupported") as caught:
        parse_url("mysql://u:secretpw@h/db")
    assert "secretpw" not in str(caught.value)
    with pytest.raises(ConfigError, match="in-memory"):
        parse_url("sqlite://")


def _result(outcome: Outcome, **kw: object) -> AttemptResult:
    return AttemptResult(1, 1, outcome, T0, T0 + timedelta(seconds=1), **kw)  # type: ignore[arg-type]


def test_finish_plans() -> None:
    later = T0 + timedelta(minutes=5)
    accepted = plan_finish(_result(Outcome.ACCEPTED, provider_id="SM1", provider_status="sent"), T0)
    assert (accepted.status, accepted.notification["in_doubt_since"]) == (Status.SENT, None)
    assert plan_finish(_result(Outcome.ADOPTED, provider_id="SM1"), None).status is Status.QUEUED
    with pytest.raises(ValueError, match="provider id"):
        plan_finish(_result(Outcome.ACCEPTED), None)
    assert plan_finish(_result(Outcome.TRANSIENT, next_attempt_at=later), None).status is Status.PENDING
    assert plan_finish(_result(Outcome.TRANSIENT), None).status is Status.DEAD
    failed = plan_finish(_result(Outcome.PERMANENT, error_code=21211, error_message="bad +13125550142"), None)
    assert failed.status is Status.FAILED and failed.notification["error_message"] == "bad +1312•••0142"
    doubt = plan_finish(_result(Outcome.IN_DOUBT, next_attempt_at=later), None)
    assert doubt.notification["in_doubt_since"] == T0 and doubt.notification["next_attempt_at"] == later
    earlier = T0 - timedelta(hours=1)
    assert plan_finish(_result(Outcome.IN_DOUBT), earlier).notification["in_doubt_since"] == earlier
    deferred = plan_finish(_result(Outcome.DEFERRED, next_attempt_at=later), None)
    assert (deferred.status, deferred.attempts_delta, deferred.drop_attempt) == (Status.PENDING, -1, True)


def test_stored_errors_keep_urls_and_sids_readable() -> None:
    """Every digit run was once masked: `POST http://127.0.0.1:***********01/Accounts/AC********89...`."""
    message = ("POST http://127.0.0.1:8080/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json: "
               "ResponseLost for SM0123456789abcdef0123456789abcdef to +13125550142")
    planned = plan_finish(_result(Outcome.TRANSIENT, next_attempt_at=T0, error_message=message), None)
    assert planned.notification["error_message"] == message.replace("+13125550142", "+1312•••0142")
