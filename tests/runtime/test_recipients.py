"""RecipientResolver: numbers parsed once per poll, with the same answers as parsing each time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ml_connector.compliance import phones
from ml_connector.core.flowspec import FieldRecipient, StaticRecipients
from ml_connector.core.models import Record
from ml_connector.errors import RecipientError
from ml_connector.runtime import recipients as module
from ml_connector.runtime.recipients import RecipientResolver

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class NoLookups:
    """A source for specs that never look anything up."""

    async def fetch(self, entity: str, since: datetime | None, until: datetime) -> AsyncIterator[Record]:
        raise AssertionError("not used")
        yield  # pragma: no cover

    async def lookup(self, entity: str, key: str) -> Record | None:
        raise AssertionError("not used")


def why(raw: str) -> str:
    """The reason `normalise` itself gives, uncached."""
    with pytest.raises(RecipientError) as caught:
        phones.normalise(raw, "US", "any")
    return caught.value.reason


def record(i: int, **data: Any) -> Record:
    return Record(entity="po", key=str(i), changed_at=T0, data=data)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def counting(raw: str, region: str, field: str) -> str:
        seen.append(raw)
        return phones.normalise(raw, region, field)

    monkeypatch.setattr(module, "normalise", counting)
    return seen


async def test_a_static_number_and_a_shared_approver_are_parsed_once_per_poll(parses: list[str]) -> None:
    resolver = RecipientResolver(NoLookups(), "US")  # type: ignore[arg-type]
    specs = [StaticRecipients(static=["(312) 555-0100"]), FieldRecipient(field="approver_phone")]
    results = [await resolver.resolve(specs, record(i, approver_phone="312.555.0142 x12")) for i in range(5)]
    assert all([r.phone for r in found] == ["+13125550100", "+13125550142"] for found in results)
    assert parses == ["(312) 555-0100", "312.555.0142 x12"]
    # A new poll (a new resolver) parses again: nothing is kept beyond one poll.
    await RecipientResolver(NoLookups(), "US").resolve(specs, record(9, approver_phone="312.555.0142 x12"))  # type: ignore[arg-type]
    assert len(parses) == 4


async def test_a_bad_number_fails_each_record_with_its_own_field_and_the_same_reason(parses: list[str]) -> None:
    resolver = RecipientResolver(NoLookups(), "US")  # type: ignore[arg-type]
    spec = [FieldRecipient(field=["mobile", "work_phone"])]
    first = await resolver.resolve(spec, record(1, mobile="555-01", work_phone="not a number"))
    second = await resolver.resolve(spec, record(2, mobile="not a number", work_phone="555-01"))
    assert first[0].phone is None and second[0].phone is None
    assert first[0].reason == f"no usable phone number (mobile: {why('555-01')}; work_phone: {why('not a number')})"
    assert second[0].reason == f"no usable phone number (mobile: {why('not a number')}; work_phone: {why('555-01')})"
    assert [first[0].field, second[0].field] == ["mobile|work_phone", "mobile|work_phone"]
    assert parses == ["555-01", "not a number"]
