"""UtcDateTime binds: every instant as UTC text on SQLite, remembered only by identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from ml_connector.store.types import UtcDateTime


def test_sqlite_binds_utc_text_and_the_memo_never_mixes_instants() -> None:
    process = UtcDateTime().bind_processor(sqlite.dialect())
    assert process is not None
    a = datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC)
    b = datetime(2024, 5, 1, 7, 0, tzinfo=timezone(timedelta(hours=-5)))
    same_as_a = datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC)
    answers = [process(x) for x in (a, a, b, a, same_as_a, None, b)]
    assert answers == ["2024-05-01T12:00:00.000005Z", "2024-05-01T12:00:00.000005Z", "2024-05-01T12:00:00.000000Z",
                       "2024-05-01T12:00:00.000005Z", "2024-05-01T12:00:00.000005Z", None,
                       "2024-05-01T12:00:00.000000Z"]


def test_naive_timestamps_are_refused_every_time() -> None:
    process = UtcDateTime().bind_processor(sqlite.dialect())
    assert process is not None
    naive = datetime(2024, 5, 1, 12, 0)
    for _ in range(2):
        with pytest.raises(ValueError, match="timezone-aware"):
            process(naive)


def test_postgresql_binds_aware_datetimes() -> None:
    process = UtcDateTime().bind_processor(postgresql.dialect())
    value = datetime(2024, 5, 1, 7, 0, tzinfo=timezone(timedelta(hours=-5)))
    bound = process(value) if process is not None else UtcDateTime().process_bind_param(value, postgresql.dialect())
    assert bound == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
