"""The pure parts of the dashboard: the chart's geometry, the filter reader, the SSO proxy check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from ml_connector.config_dashboard import SsoConfig
from ml_connector.core.models import Status
from ml_connector.web.chart import HEIGHT, hourly_chart
from ml_connector.web.filters import parse_filters

NOW = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)


def test_the_chart_stacks_delivered_failed_and_the_rest_up_to_the_peak() -> None:
    hours = [(NOW - timedelta(hours=1), 4, 2, 1), (NOW, 2, 2, 0)]
    chart = hourly_chart(hours)
    assert chart.peak == 4
    first = [b for b in chart.bars if b.x == chart.bars[0].x]
    assert [b.kind for b in first] == ["delivered", "failed", "other"]
    assert sum(b.height for b in first) == pytest.approx(HEIGHT - 30)
    assert hourly_chart([(NOW, 0, 0, 0)]).bars == []


def test_filters_hash_a_typed_phone_and_name_each_bad_parameter() -> None:
    seen: list[str] = []

    def hashed(e164: str) -> str:
        seen.append(e164)
        return "ab" * 32

    ok = parse_filters({"recipient": "(312) 555-0187", "since": "24h", "flow": "po"}, ["failed"], NOW,
                       hash_phone=hashed, region="US")
    assert ok.errors == [] and seen == ["+13125550187"]
    assert ok.query.recipient_hash == "ab" * 32 and "recipient" not in ok.shown  # only the hash travels on
    assert ok.query.since == NOW - timedelta(hours=24) and ok.query.statuses == (Status.FAILED,)
    bad = parse_filters({"recipient": "12", "until": "soon", "limit": "9999", "cursor": "-1"}, ["nope"], NOW,
                        hash_phone=hashed, region="US")
    assert [name for name, _ in bad.errors] == ["status", "until", "recipient", "cursor", "limit"]


def test_the_sso_header_is_trusted_only_from_configured_networks() -> None:
    sso = SsoConfig(proxies=["10.0.0.0/8", "::1"])
    assert sso.trusts("10.2.3.4") and sso.trusts("::1")
    assert not sso.trusts("127.0.0.1") and not sso.trusts(None) and not sso.trusts("not-an-ip")
    with pytest.raises(ValidationError):
        SsoConfig(proxies=[])
