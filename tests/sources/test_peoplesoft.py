"""PeopleSoft source against its simulator: maxrows splitting, column keys, IB errors, auth, effective dating."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from ml_connector.errors import SourceAuthError, SourceError, SourcePayloadError, SourceUnavailable
from ml_connector.sim.peoplesoft import PsSim
from ml_connector.sim.peoplesoft_idp import TOKEN_PATH
from ml_connector.sources.peoplesoft import PeopleSoftConfig, PeopleSoftSource
from ml_connector.sources.peoplesoft_auth import TokenError
from tests.support.clock import ManualClock

START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
BASE = "http://hr.test"
JOBS = {"query": "XX_MLC_JOB_CHANGES", "key": ["EMPLID", "EMPL_RCD", "EFFDT", "EFFSEQ"], "effective": {}}


class Counting:
    """The simulator's app, counting requests per path."""

    def __init__(self, app: Any) -> None:
        self.app, self.paths = app, []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


def make(sim: PsSim, clock: ManualClock, *, auth: dict[str, Any] | None = None, **overrides: Any
         ) -> tuple[PeopleSoftSource, Counting]:
    raw: dict[str, Any] = {"type": "peoplesoft", "base_url": BASE, "node": "PSFT_HR", "timezone": "America/Chicago",
                           "retry_delay": 0, "retries": 1,
                           "auth": auth or {"type": "basic", "user": "MLC_REST", "password": "mlc-pass"},
                           "entities": {"jobs": JOBS}}
    raw.update(overrides)
    app = Counting(sim.create_app())
    return PeopleSoftSource("ps", PeopleSoftConfig.model_validate(raw), transport=httpx.ASGITransport(app),
                            clock=clock), app


def oauth(**extra: Any) -> dict[str, Any]:
    return {"type": "oauth2", "token_url": BASE + TOKEN_PATH, "client_id": "mlc-connector",
            "client_secret": "idp-secret", "scope": "psft.hcm.read", "user": "MLC_REST", **extra}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def sim(clock: ManualClock) -> PsSim:
    return PsSim(clock=clock)


async def read(source: PeopleSoftSource, since: datetime, until: datetime, entity: str = "jobs") -> list[Any]:
    return [r async for r in source.fetch(entity, since, until)]


async def test_thousands_of_rows_in_one_window_are_split_at_maxrows_and_read_once(sim: PsSim,
                                                                                 clock: ManualClock) -> None:
    made = []
    for n in range(3000):  # 3000 hires over 25 minutes, up to ten in one second
        if n % 10 == 0:
            clock.advance(5)
        made.append(sim.job_action(None, "HIR").key)
    source, _ = make(sim, clock, entities={"jobs": {**JOBS, "maxrows": 250}})
    records = await read(source, START, clock() + timedelta(seconds=1))
    keys = [r.key for r in records]
    assert keys == made  # every hire once, in (changed_at, key) order
    assert source.split_stats.splits > 10


async def test_a_second_holding_more_than_maxrows_raises_maxrows_for_that_call(sim: PsSim,
                                                                              clock: ManualClock) -> None:
    made = [sim.job_action(None, "HIR").key for _ in range(1200)]  # all in one second
    source, _ = make(sim, clock, entities={"jobs": {**JOBS, "maxrows": 100, "maxrows_ceiling": 5000}})
    records = await read(source, clock() - timedelta(minutes=5), clock() + timedelta(seconds=1))
    assert [r.key for r in records] == made
    assert source.split_stats.raised >= 1
    narrow, _ = make(sim, clock, entities={"jobs": {**JOBS, "maxrows": 100, "maxrows_ceiling": 400}})
    with pytest.raises(SourceError, match="within one second.*raise `maxrows_ceiling`"):
        await read(narrow, clock() - timedelta(minutes=5), clock() + timedelta(seconds=1))


@pytest.mark.parametrize("style", ["prefixed", "plain"])
async def test_both_column_key_styles_are_read(clock: ManualClock, style: str) -> None:
    sim = PsSim(clock=clock, column_style=style)  # type: ignore[arg-type]
    key = sim.job_action(None, "HIR").key
    source, _ = make(sim, clock)
    records = await read(source, clock() - timedelta(minutes=1), clock() + timedelta(seconds=1))
    assert [r.key for r in records] == [key]
    assert records[0].data["ACTION"] == "HIR" and records[0].data["EFFDT"] == date(2024, 3, 5)
    assert records[0].changed_at == START
    other = "plain" if style == "prefixed" else "prefixed"
    strict, _ = make(sim, clock, column_keys=other)
    with pytest.raises(SourcePayloadError, match="column_keys"):
        await read(strict, clock() - timedelta(minutes=1), clock() + timedelta(seconds=1))


async def test_blank_columns_are_empty_and_datetimes_are_server_wall_time(sim: PsSim, clock: ManualClock) -> None:
    emplid = next(iter(sim.tables.people))
    sim.change_shift(emplid, 2)
    source, _ = make(sim, clock, entities={"shifts": {"query": "XX_MLC_SHIFT_CHANGES", "key": ["SHIFT_ID"],
                                                      "datetimes": ["START_DTTM", "OLD_START_DTTM"]}})
    [shift] = await read(source, clock() - timedelta(minutes=1), clock() + timedelta(seconds=1), "shifts")
    old, new = shift.data["OLD_START_DTTM"], shift.data["START_DTTM"]
    assert new - old == timedelta(hours=2) and old.tzinfo is not None
    assert old == datetime(2024, 3, 6, 13, 0, tzinfo=UTC)  # 07:00 in Chicago (CST, UTC-6)


async def test_ibresponse_with_http_200_is_a_typed_error(sim: PsSim, clock: ManualClock) -> None:
    source, _ = make(sim, clock)
    sim.fail_next_ib(1)
    with pytest.raises(SourceUnavailable, match=r"Integration Broker error.*IBResponse 10010"):
        await read(source, clock() - timedelta(minutes=1), clock())


async def test_ib_domain_down_is_unavailable_and_says_so(sim: PsSim, clock: ManualClock) -> None:
    source, app = make(sim, clock)
    sim.domain_down()
    with pytest.raises(SourceUnavailable, match="HTTP 500.*IB domain"):
        await source.check()
    assert len(app.paths) == 2  # retried once
    sim.domain_down(False)
    assert (await source.check()).details["peopletools"] == "8.60.05"


async def test_inactive_service_operation_names_it(sim: PsSim, clock: ManualClock) -> None:
    source, _ = make(sim, clock)
    sim.deactivate("QAS_EXECUTEQRY_REST_GET")
    with pytest.raises(SourceError, match="activate the service operation QAS_EXECUTEQRY_REST_GET") as info:
        await source.check()
    assert not info.value.retriable


async def test_unauthorised_operation_says_what_to_grant(sim: PsSim, clock: ManualClock) -> None:
    source, _ = make(sim, clock, auth={"type": "basic", "user": "NOPERM", "password": "welcome1"})
    with pytest.raises(SourceAuthError, match="grant the service operation QAS_EXECUTEQRY_REST_GET to user NOPERM"):
        await source.check()


async def test_locked_account_and_wrong_password(sim: PsSim, clock: ManualClock) -> None:
    locked, _ = make(sim, clock, auth={"type": "basic", "user": "LOCKED", "password": "welcome1"})
    with pytest.raises(SourceAuthError, match="locked"):
        await locked.check()
    wrong, _ = make(sim, clock, auth={"type": "basic", "user": "MLC_REST", "password": "nope"})
    with pytest.raises(SourceAuthError, match="OPRID and password") as info:
        await wrong.check()
    assert "nope" not in str(info.value)


async def test_unknown_query_is_a_qas_fault(sim: PsSim, clock: ManualClock) -> None:
    source, _ = make(sim, clock, entities={"jobs": {**JOBS, "query": "XX_NOPE"}})
    with pytest.raises(SourceError, match="QAS_QUERY_NOT_FOUND.*XX_NOPE"):
        await source.check()


async def test_a_prompt_value_with_a_comma_is_refused_before_sending(sim: PsSim, clock: ManualClock) -> None:
    source, app = make(sim, clock, entities={"jobs": {**JOBS, "fixed_prompts": {"SETID": "A,B"}}})
    with pytest.raises(SourceError, match="prompt SETID: the value contains a comma"):
        await read(source, clock() - timedelta(minutes=1), clock())
    assert app.paths == []


async def test_oauth_token_is_cached_and_refreshed_before_expiry(sim: PsSim, clock: ManualClock) -> None:
    source, app = make(sim, clock, auth=oauth(refresh_before=60))
    await source.check()
    await source.check()
    assert app.paths.count(TOKEN_PATH) == 1
    clock.advance(3600 - 59)  # within a minute of expires_in
    await source.check()
    assert app.paths.count(TOKEN_PATH) == 2
    sim.expire_tokens()  # revoked early: one 401, one new token, the call repeated
    result = await source.check()
    assert app.paths.count(TOKEN_PATH) == 3 and result.details["auth"] == "oauth2"


@pytest.mark.parametrize(("auth", "code", "words"), [
    (oauth(client_secret="wrong"), "invalid_client", "client secret is wrong"),
    (oauth(scope="payroll.write"), "invalid_scope", "scope is not granted"),
])
async def test_idp_errors_are_reported_in_words(sim: PsSim, clock: ManualClock, auth: dict[str, Any],
                                                code: str, words: str) -> None:
    source, _ = make(sim, clock, auth=auth)
    with pytest.raises(TokenError, match=f"identity provider refused.*{code}.*{words}") as info:
        await source.check()
    assert info.value.code == code and "wrong" not in str(info.value).split(code)[0]


async def test_peoplesoft_401_on_a_fresh_token_is_told_apart_from_the_idp(clock: ManualClock) -> None:
    sim = PsSim(clock=clock)
    sim.users.pop("MLC_REST")  # the IdP issues tokens, PeopleSoft maps them to no user
    source, _ = make(sim, clock, auth=oauth())
    with pytest.raises(SourceAuthError, match="PeopleSoft refused the bearer token") as info:
        await source.check()
    assert not isinstance(info.value, TokenError)


async def test_future_dated_row_becomes_current_on_its_date_without_any_update(sim: PsSim,
                                                                              clock: ManualClock) -> None:
    emplid = next(iter(sim.tables.people))
    key = sim.job_action(emplid, "TER", effdt=date(2024, 3, 8)).key
    source, _ = make(sim, clock)
    now = clock()
    assert [r.key for r in await read(source, now - timedelta(minutes=5), now + timedelta(seconds=1))] == []
    midnight = datetime(2024, 3, 8, 6, 0, tzinfo=UTC)  # 00:00 in Chicago
    assert [r.key for r in await read(source, now, midnight)] == []
    [row] = await read(source, midnight - timedelta(minutes=5), midnight + timedelta(minutes=5))
    assert row.key == key and row.changed_at == midnight and row.data["ACTION"] == "TER"
    assert await read(source, midnight + timedelta(minutes=5), midnight + timedelta(days=1)) == []
