"""compliance.phones: ERP free-text phone fields to E.164, with clear, masked failures."""

from __future__ import annotations

import pytest

from ml_connector.compliance.phones import is_probably_mobile, normalise
from ml_connector.errors import ConfigError, RecipientError


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+13125550142", "US", "+13125550142"),
        ("(312) 555-0142", "US", "+13125550142"),
        ("312.555.0199 x12", "US", "+13125550199"),            # extension dropped
        ("312-555-0199 ext. 12", "US", "+13125550199"),
        ("+44 20 7946 0958", "US", "+442079460958"),           # explicit country beats region
        ("001 312 555 0142", "US", "+13125550142"),            # "00" international prefix
        ("011 44 20 7946 0958", "US", "+442079460958"),        # North American prefix
        ("0044 20 7946 0958", "GB", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),              # national trunk prefix
        ("07400 123456", "gb", "+447400123456"),               # region case-insensitive
        ("312\u00a0555\u00a00142", "US", "+13125550142"),      # non-breaking spaces
        ("\u202f312 555 0142\u202f", "US", "+13125550142"),
        ("tel:+13125550142", "US", "+13125550142"),
        ("TEL:+1-312-555-0142", "US", "+13125550142"),
        ("Mobile: (312) 555-0142", "US", "+13125550142"),
        ("Cell - 312 555 0142 (home)", "US", "+13125550142"),
        ("  3125550142  ", "US", "+13125550142"),
        ("1 312 555 0142", "US", "+13125550142"),
        ("+49 30 1234567", "DE", "+49301234567"),
    ],
)
def test_normalise(raw: str, region: str, e164: str) -> None:
    assert normalise(raw, region, "PHONE") == e164


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        (None, "US", "empty"),
        ("", "US", "empty"),
        ("   \u00a0", "US", "empty"),
        ("n/a", "US", "not a phone number"),
        ("12", "US", "not a phone number: too short"),
        ("31255501421234567890", "US", "not a phone number: too long"),
        ("555-0142", "US", "invalid number for region US"),
        ("123 456 7890", "US", "invalid number for region US"),
        ("+44 20 7946", "US", "invalid number for region GB"),
        ("+999 123456", "US", "not a phone number: unknown country code"),
    ],
)
def test_normalise_failures_give_a_reason(raw: str | None, region: str, reason: str) -> None:
    with pytest.raises(RecipientError) as caught:
        normalise(raw, region, "BUYER_PHONE")
    assert caught.value.field == "BUYER_PHONE"
    assert caught.value.reason.startswith(reason)
    assert "BUYER_PHONE" in str(caught.value)


@pytest.mark.parametrize("raw", ["123 456 7890", "+44 20 7946", "31255501421234567890", "Mobile 555-0142"])
def test_failure_never_shows_the_full_number(raw: str) -> None:
    with pytest.raises(RecipientError) as caught:
        normalise(raw, "US", "PHONE")
    digits = "".join(ch for ch in raw if ch.isdigit())
    message = str(caught.value)
    assert digits not in "".join(ch for ch in message if ch.isdigit())
    assert "•••" in message


def test_unknown_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="region"):
        normalise("3125550142", "XX", "PHONE")


@pytest.mark.parametrize(
    ("e164", "mobile"),
    [
        ("+447400123456", True),      # UK mobile range
        ("+442079460958", False),     # London landline
        ("+13125550142", None),       # North America: fixed line or mobile, cannot tell
        ("+18005550100", False),      # toll free
        ("not a number", None),
    ],
)
def test_is_probably_mobile(e164: str, mobile: bool | None) -> None:
    assert is_probably_mobile(e164) is mobile
