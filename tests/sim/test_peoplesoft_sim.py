"""The PeopleSoft simulator's wire format, read directly (no adapter): what the source must survive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ml_connector.sim.peoplesoft import PsSim
from tests.support.clock import ManualClock

QAS = "/PSIGW/RESTListeningConnector/PSFT_HR/ExecuteQuery.v1/PUBLIC/{}/JSON/NONFILE"
AUTH = ("MLC_REST", "mlc-pass")


@pytest.fixture
def sim() -> PsSim:
    return PsSim(clock=ManualClock(datetime(2024, 3, 5, 15, 0, tzinfo=UTC)))


@pytest.fixture
async def client(sim: PsSim) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.create_app()), base_url="http://ps") as c:
        yield c


def window(**extra: str) -> dict[str, str]:
    return {"isconnectedquery": "N", "json_resp": "true", "prompt_uniquepromptname": "FROM_DTTM,TO_DTTM",
            "prompt_fieldvalue": "2024-03-05-08.00.00.000000,2024-03-05-10.00.00.000000", **extra}


async def test_maxrows_truncates_silently(sim: PsSim, client: httpx.AsyncClient) -> None:
    for _ in range(5):
        sim.change_shift(next(iter(sim.tables.people)), 1)
        sim.change_shift(list(sim.tables.people)[1], 1)
    body = (await client.get(QAS.format("XX_MLC_SHIFT_CHANGES"), params=window(maxrows="1"), auth=AUTH)).json()
    query = body["data"]["query"]
    assert body["status"] == "success" and query["numrows"] == 1 and len(query["rows"]) == 1
    assert set(query["rows"][0]) >= {"attr:rownumber", "A.EMPLID", "A.START_DTTM"}
    assert query["rows"][0]["A.START_DTTM"].count(".") == 3  # 2024-03-06-08.00.00.000000


async def test_blank_character_columns_are_one_space(client: httpx.AsyncClient) -> None:
    rows = (await client.get(QAS.format("XX_MLC_PAYGROUP_EES"), auth=AUTH, params={
        "isconnectedquery": "N", "maxrows": "2", "prompt_uniquepromptname": "COMPANY,PAYGROUP,AFTER_EMPLID",
        "prompt_fieldvalue": "HCM,BW1, "})).json()["data"]["query"]["rows"]
    assert rows[0]["A.EXTENSION"] == " "


async def test_ib_errors_come_as_ibresponse_with_http_200(sim: PsSim, client: httpx.AsyncClient) -> None:
    sim.deactivate("QAS_EXECUTEQRY_REST_GET")
    response = await client.get(QAS.format("XX_MLC_TOOLS"), params={"maxrows": "1"}, auth=AUTH)
    assert response.status_code == 200 and "<IBResponse type=\"error\">" in response.text
    assert "QAS_EXECUTEQRY_REST_GET is inactive" in response.text
    sim.domain_down()
    down = await client.get(QAS.format("XX_MLC_TOOLS"), auth=AUTH)
    assert down.status_code == 500 and "IBResponse" not in down.text


async def test_three_wrong_passwords_lock_the_profile(sim: PsSim, client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await client.get(QAS.format("XX_MLC_TOOLS"), auth=("MLC_REST", "x"))).status_code == 401
    locked = await client.get(QAS.format("XX_MLC_TOOLS"), auth=AUTH)
    assert locked.status_code == 401 and "is locked" in locked.text


async def test_prompt_lists_must_match_and_unknown_queries_fault(client: httpx.AsyncClient) -> None:
    bad = await client.get(QAS.format("XX_MLC_SHIFT_CHANGES"), auth=AUTH, params={
        "prompt_uniquepromptname": "FROM_DTTM,TO_DTTM", "prompt_fieldvalue": "2024-03-05-08.00.00.000000"})
    assert bad.json()["data"]["faultcode"] == "QAS_PROMPT"
    unknown = await client.get(QAS.format("XX_NOPE"), auth=AUTH)
    assert unknown.status_code == 200 and unknown.json()["data"]["faultcode"] == "QAS_QUERY_NOT_FOUND"


async def test_idp_issues_expiring_tokens_and_rfc6749_errors(sim: PsSim, client: httpx.AsyncClient) -> None:
    wrong = await client.post("/oauth2/v1/token", data={"grant_type": "client_credentials"},
                              auth=("mlc-connector", "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = await client.post("/oauth2/v1/token", data={"grant_type": "password"}, auth=("mlc-connector", "idp-secret"))
    assert grant.json()["error"] == "unsupported_grant_type"
    token = (await client.post("/oauth2/v1/token", data={"grant_type": "client_credentials"},
                               auth=("mlc-connector", "idp-secret"))).json()
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert (await client.get(QAS.format("XX_MLC_TOOLS"), headers=bearer)).status_code == 200
    sim.set_clock_offset(timedelta(seconds=token["expires_in"]).total_seconds())
    expired = await client.get(QAS.format("XX_MLC_TOOLS"), headers=bearer)
    assert expired.status_code == 401 and "invalid_token" in expired.headers["www-authenticate"]


async def test_employee_directory_view(client: httpx.AsyncClient) -> None:
    people = (await client.get("/PSIGW/RESTListeningConnector/PSFT_HR/employeedirectory/viewemployee/KU0001",
                               auth=AUTH)).json()["employees"]
    assert set(people[0]) == {"emplid", "emplnamedisplay", "emplemail", "emplcellphone", "empljobtitle",
                              "empldepartment"}
