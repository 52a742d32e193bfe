"""Schemathesis against the live API (uvicorn on loopback): every operation, a bounded number of
generated requests each, every answer checked against the OpenAPI document (status codes,
content types, bodies) and never a server error."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from tests.web.dashboard_support import served  # noqa: E402


class LiveApi:
    """The dashboard app served by a thread of its own (schemathesis calls it synchronously)."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp = tmp_path
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.url = ""
        self.token = ""
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self.error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with served(self._tmp) as s:
            self.url, self.token = s.url, s.op_token
            self._ready.set()
            await self._stop.wait()

    def start(self) -> LiveApi:
        self._thread.start()
        self._ready.wait(60)
        if self.error:
            raise self.error
        return self

    def close(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    api = LiveApi(tmp_path_factory.mktemp("schemathesis")).start()
    yield api
    api.close()


def test_every_operation_answers_as_documented(live_api: LiveApi) -> None:
    auth = {"Authorization": f"Bearer {live_api.token}"}
    schema = schemathesis.openapi.from_url(f"{live_api.url}/api/openapi.json", headers=auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 11  # every /api/v1 route

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def answers_as_documented(case: Any) -> None:
            # A phone number's validity is more than a schema can say: a well-formed "0" gets a 422.
            excluded = [positive_data_acceptance] if case.operation.path == "/api/v1/recipient-hash" else []
            case.call_and_validate(base_url=live_api.url, headers=auth, excluded_checks=excluded)

        answers_as_documented()
