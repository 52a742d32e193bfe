"""compliance.phones: the E.164 fast path gives the general path's answer for every input."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ml_connector.compliance.phones import _check_region, _normalise_parsed, _valid_e164, normalise
from ml_connector.errors import RecipientError

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _examples() -> list[str]:
    """phonenumbers' own example numbers of every region and type, as E.164."""
    found: set[str] = set()
    for region in REGIONS:
        for kind in phonenumbers.PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(found)


EXAMPLES = _examples()


def _outcome(call: object, raw: str | None, region: str) -> tuple[str, ...]:
    try:
        return ("ok", call(raw, region, "PHONE"))  # type: ignore[operator]
    except RecipientError as exc:
        return ("error", exc.field, exc.reason)


def _general(raw: str | None, region: str, field: str) -> str:
    return _normalise_parsed(raw, _check_region(region), field)


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A real number, then sometimes one digit changed, digits added or dropped, or a zero inserted."""
    text = draw(st.sampled_from(EXAMPLES))
    digits = list(text[1:])
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(digits)))
        action = draw(st.sampled_from(("replace", "insert", "delete", "zero")))
        if action == "replace" and at < len(digits):
            digits[at] = draw(st.sampled_from("0123456789"))
        elif action == "insert":
            digits.insert(at, draw(st.sampled_from("0123456789")))
        elif action == "delete" and at < len(digits) and len(digits) > 1:
            del digits[at]
        elif action == "zero":
            digits.insert(at, "0")
    return "+" + "".join(digits)


_PLUS_DIGITS = st.builds(
    lambda code, rest: f"+{code}{rest}",
    st.sampled_from(CODES),
    st.text(alphabet="0123456789", max_size=16),
)
#: Near-E.164 text: other pluses, spaces, separators, non-ASCII digits, letters.
_NEAR = st.text(alphabet="+0123456789 -().x#;,\u00a0\u0661\uff11ext:tel", max_size=20)


@settings(max_examples=2000, deadline=None)
@given(raw=st.one_of(_mutated(), _PLUS_DIGITS, _NEAR, st.sampled_from(EXAMPLES)), region=st.sampled_from(REGIONS))
@example(raw="+13125550142", region="US")
@example(raw="+11312555014", region="US")   # a national prefix after the calling code
@example(raw="+390612345678", region="IT")  # Italian leading zero
@example(raw="+4402079460958", region="GB")
@example(raw="+80012345678", region="US")   # non-geographic calling code
@example(raw="+12", region="US")
@example(raw="+02015550123", region="US")  # "020" would read as +20 without the zero rule
@example(raw="+", region="US")
@example(raw="+1\u0663125550142", region="US")
def test_fast_path_agrees_with_the_general_path(raw: str, region: str) -> None:
    assert _outcome(normalise, raw, region) == _outcome(_general, raw, region)


@pytest.mark.parametrize("raw", ["+13125550142", "+442079460958", "+49301234567", "+80012345678"])
def test_valid_e164_takes_the_fast_path(raw: str) -> None:
    assert _valid_e164(raw)
    assert normalise(raw, "US", "PHONE") == raw


@pytest.mark.parametrize(
    "raw",
    ["13125550142", "+1 312 555 0142", "+11312555014", "+390612345678", "+1312555014", "+999123456",
     "+1\u0663125550142"],
)
def test_anything_else_takes_the_general_path(raw: str) -> None:
    assert not _valid_e164(raw)
