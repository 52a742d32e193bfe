"""PeopleSoft harnesses: Query Access Services with Basic (OPRID/password) and with OAuth2 bearer tokens.

The contract entity is effective-dated PS_JOB (`XX_MLC_JOB_CHANGES`): each `change()` hires a
person effective today. `page_size` is the query's `maxrows`: QAS has no paging, so a window
answered with `maxrows` rows is split and asked again (and a one-second window gets a larger
`maxrows`); the paging test thus exercises the split. With OAuth2, "sessions" are the IdP's
bearer tokens and "logins" the token requests the IdP served.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from ml_connector.sim.peoplesoft import PsSim
from ml_connector.sim.peoplesoft_idp import TOKEN_PATH
from ml_connector.sources.base import Source
from ml_connector.sources.peoplesoft import PeopleSoftConfig, PeopleSoftSource
from tests.support.clock import ManualClock

from .harness import START, LoginCounter, SimulatedErp

BASE = "http://hr.example.test:8000"

JOBS = {"query": "XX_MLC_JOB_CHANGES", "key": ["EMPLID", "EMPL_RCD", "EFFDT", "EFFSEQ"],
        "effective": {"date": "EFFDT", "sequence": "EFFSEQ"}}


def auth_section(auth: str) -> dict[str, Any]:
    if auth == "basic":
        return {"type": "basic", "user": "MLC_REST", "password": "mlc-pass"}
    return {"type": "oauth2", "token_url": BASE + TOKEN_PATH, "client_id": "mlc-connector",
            "client_secret": "idp-secret", "scope": "psft.hcm.read", "user": "MLC_REST"}


class PeopleSoftHarness(SimulatedErp):
    page_size = 3

    def __init__(self, name: str, *, auth: str = "basic", column_style: str = "prefixed") -> None:
        self.name = name
        self.auth = auth
        self.clock = ManualClock(START)
        self.sim = PsSim(clock=self.clock, column_style=column_style)  # type: ignore[arg-type]
        self.app = LoginCounter(self.sim.create_app(), lambda path: path == TOKEN_PATH)  # type: ignore[arg-type]
        self.entity = "jobs"
        self.key_field = "EMPLID"
        self.expected_check = {"node": "PSFT_HR", "user": "MLC_REST", "peopletools": "8.60.05",
                               "auth": auth, "queries": "XX_MLC_JOB_CHANGES"}
        self._built: list[Source] = []

    def config(self, **overrides: Any) -> PeopleSoftConfig:
        raw: dict[str, Any] = {
            "type": "peoplesoft", "base_url": BASE, "node": "PSFT_HR", "auth": auth_section(self.auth),
            "timezone": "America/Chicago", "retry_delay": 0,
            "entities": {self.entity: {**JOBS, "maxrows": self.page_size, "maxrows_ceiling": 1000}},
        }
        raw.update(overrides)
        return PeopleSoftConfig.model_validate(raw)

    def build(self, **overrides: Any) -> Source:
        source = PeopleSoftSource(f"ps-{self.name}", self.config(**overrides),
                                  transport=httpx.ASGITransport(self.app),  # type: ignore[arg-type]
                                  clock=self.clock)
        self._built.append(source)
        return source

    def change(self, count: int) -> list[str]:
        """Hires now; of several, the first half a second earlier (LASTUPDDTTM has whole seconds).

        A busy pair of seconds: a window then holds two parts for the `maxrows` split, so a token
        that expires after the first part is met again in the middle of the read.
        """
        made: list[str] = []
        for n in range(count):
            early = n < count // 2
            self.clock.advance(-1 if early else 0)
            made.append(self.sim.job_action(None, "HIR").key)
            self.clock.advance(1 if early else 0)
        return made

    def late(self, age: timedelta) -> str:
        self.clock.advance(-age)
        result = self.sim.job_action(None, "HIR", commit=False)
        self.clock.advance(age)
        assert result.txn is not None
        self.sim.commit(result.txn)
        return result.key

    def expire_sessions(self) -> bool:
        if self.auth == "basic":
            return False
        self.sim.expire_tokens()
        return True
