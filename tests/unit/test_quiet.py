"""core.quiet: the recipient's zone decides, bad zones fall back visibly, critical flows never wait."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ml_connector.core.flowspec import BusinessHoursSpec
from ml_connector.core.models import Status
from ml_connector.core.quiet import Hold, hold, initial_state

SPEC = BusinessHoursSpec.model_validate({"windows": [{"days": "mon-fri", "from": "08:00", "to": "20:00"}],
                                         "timezone_field": "TZ"})
#: Tuesday 8 December 2026 15:30 UTC: 09:30 in Chicago, 07:30 in Los Angeles, 16:30 in Berlin.
NOW = datetime(2026, 12, 8, 15, 30, tzinfo=UTC)


def test_the_recipients_own_zone_decides() -> None:
    assert hold(SPEC, critical=False, data={"TZ": "America/Chicago"}, default_zone="UTC", now=NOW) is None
    held = hold(SPEC, critical=False, data={"TZ": "America/Los_Angeles"}, default_zone="UTC", now=NOW)
    assert held == Hold(datetime(2026, 12, 8, 16, 0, tzinfo=UTC),
                        "quiet hours: held until 2026-12-08 08:00 PST (America/Los_Angeles)")


def test_a_zone_that_is_not_one_falls_back_to_the_flows_and_says_so() -> None:
    held = hold(SPEC, critical=False, data={"TZ": "Pacific Standard"}, default_zone="America/Los_Angeles", now=NOW)
    assert held is not None and held.until == datetime(2026, 12, 8, 16, 0, tzinfo=UTC)
    assert held.reason.endswith("TZ 'Pacific Standard' is not a time zone; used America/Los_Angeles")
    missing = hold(SPEC, critical=False, data={}, default_zone="America/Los_Angeles", now=NOW)
    assert missing is not None and missing.reason.endswith("no TZ on the record; used America/Los_Angeles")


def test_critical_flows_and_flows_without_hours_send_now() -> None:
    data = {"TZ": "America/Los_Angeles"}
    assert hold(SPEC, critical=True, data=data, default_zone="UTC", now=NOW) is None
    assert hold(None, critical=False, data=data, default_zone="UTC", now=NOW) is None


def test_initial_state() -> None:
    later = Hold(datetime(2026, 12, 9, tzinfo=UTC), "quiet hours")
    assert initial_state(usable=False, failure="no phone", held=later, now=NOW) == (Status.FAILED, "no phone", NOW)
    assert initial_state(usable=True, failure=None, held=later, now=NOW) == (Status.DEFERRED, "quiet hours",
                                                                            later.until)
    assert initial_state(usable=True, failure=None, held=None, now=NOW) == (Status.PENDING, None, NOW)


@pytest.mark.parametrize("windows", [[], [{"days": "funday", "from": "08:00", "to": "20:00"}],
                                     [{"days": "mon", "from": "8am", "to": "20:00"}]])
def test_bad_business_hours_are_refused(windows: list[dict[str, str]]) -> None:
    with pytest.raises(ValidationError):
        BusinessHoursSpec.model_validate({"windows": windows})
