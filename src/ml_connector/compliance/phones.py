"""Turn ERP phone fields (free text typed by people) into E.164, or say clearly why not.

ERP phone columns hold things like "Mobile: (312) 555-0142", "312.555.0199 x12", "001 312 555
0142" or "tel:+44 20 7946 0958", with non-breaking spaces pasted from spreadsheets. `normalise`
cleans those up and lets `phonenumbers` decide; a failure is a `RecipientError` whose reason never
shows the full number (it is masked through core.redact).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberType, ValidationResult

from ml_connector.core.redact import mask_phone
from ml_connector.errors import ConfigError, RecipientError

#: Unicode spaces that spreadsheets and web forms put inside numbers.
_ODD_SPACES = re.compile(r"[\u00a0\u2007\u202f\u2009\u200b\u2060\ufeff]")
#: Leading text before the number ("Mobile: ", "tel:", "Cell -"), kept if it is "+" or "(".
_LEADING_JUNK = re.compile(r"^(?:tel:)?[^\d+(]*", re.IGNORECASE)
#: Trailing text after the last digit ("(home)", "mobile", "- do not call after 6").
_TRAILING_JUNK = re.compile(r"\D+$")

_PARSE_REASONS: Mapping[int, str] = {
    NumberParseException.INVALID_COUNTRY_CODE: "not a phone number: unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "not a phone number: too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "not a phone number: too short",
    NumberParseException.TOO_LONG: "not a phone number: too long",
}

_POSSIBILITY_REASONS: Mapping[int, str] = {
    ValidationResult.INVALID_COUNTRY_CODE: "not a phone number: unknown country code",
    ValidationResult.TOO_SHORT: "not a phone number: too short",
    ValidationResult.TOO_LONG: "not a phone number: too long",
    ValidationResult.INVALID_LENGTH: "invalid length",
}

#: phonenumbers' number type -> is it (probably) a mobile? None when the type does not say.
MOBILE_BY_TYPE: Mapping[int, bool | None] = {
    PhoneNumberType.MOBILE: True,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: None,
    PhoneNumberType.FIXED_LINE: False,
    PhoneNumberType.TOLL_FREE: False,
    PhoneNumberType.PREMIUM_RATE: False,
    PhoneNumberType.SHARED_COST: False,
    PhoneNumberType.VOIP: None,
    PhoneNumberType.PERSONAL_NUMBER: None,
    PhoneNumberType.PAGER: False,
    PhoneNumberType.UAN: False,
    PhoneNumberType.VOICEMAIL: False,
    PhoneNumberType.UNKNOWN: None,
}


def _clean(raw: str) -> str:
    text = _ODD_SPACES.sub(" ", raw).strip()
    text = _LEADING_JUNK.sub("", text, count=1)
    text = _TRAILING_JUNK.sub("", text).strip()
    if text.startswith("00") and not text.startswith("000"):
        # International access code "00" (most of the world); phonenumbers only knows the IDD of
        # the default region, so "001 312 ..." would fail for region US. "+" is unambiguous.
        text = "+" + text[2:].lstrip()
    return text


def _fail(field: str, reason: str, cleaned: str) -> RecipientError:
    shown = mask_phone(cleaned) if any(ch.isdigit() for ch in cleaned) else ""
    return RecipientError(field, f"{reason} (got {shown})" if shown else reason)


def _check_region(default_region: str) -> str:
    region = default_region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"unknown default phone region {default_region!r} (use a code such as US, GB)")
    return region


@cache
def _national_prefix(country_code: int) -> re.Pattern[str] | None:
    """The pattern `phonenumbers.parse` strips as a national prefix after this calling code."""
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    prefix = metadata.national_prefix_for_parsing if metadata is not None else None
    return re.compile(prefix) if prefix else None


def _valid_e164(raw: str) -> bool:
    """True when `raw` is already a valid E.164 number, decided without `phonenumbers.parse`.

    `normalise` runs once per firing record, and cleaning and parsing cost more than validating
    (the bench's numbers are all different, so the per-poll memo in runtime.recipients does not
    help). For "+" and ASCII digits, no leading zero, `_clean` changes nothing and `parse` only
    splits off the calling code: no punctuation, extension, IDD or leading zero to handle, and
    (checked here) no national prefix it would strip; the number it builds is this one, and its
    E.164 form is `raw` itself. Anything else, and every number not valid, returns False and
    takes the general path, which alone words the reasons. tests/unit/test_phones_fast.py
    checks the two paths agree on generated and real numbers of every region.
    """
    digits = raw[1:]
    if raw[:1] != "+" or not (3 <= len(digits) <= 15 and digits.isascii() and digits.isdigit()):
        return False
    if digits[0] == "0":
        return False  # no calling code starts with 0
    for size in (1, 2, 3):  # the shortest known calling code, as phonenumbers reads it
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return False
    national = digits[size:]
    if len(national) < 2 or national[0] == "0":
        return False  # too short, or leading zeros kept as such: the general path decides
    prefix = _national_prefix(code)
    if prefix is not None and prefix.match(national):
        return False  # parse might strip a national prefix
    number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    return bool(phonenumbers.is_valid_number(number))


def normalise(raw: str | None, default_region: str, field: str) -> str:
    """The E.164 form of `raw`, read as a number of `default_region` unless it says otherwise.

    Extensions are dropped. Raises RecipientError(field, reason) for empty or unusable input, and
    ConfigError for an unknown `default_region`.
    """
    region = _check_region(default_region)
    if raw is not None and raw[:1] == "+" and _valid_e164(raw):
        return raw
    return _normalise_parsed(raw, region, field)


def _normalise_parsed(raw: str | None, region: str, field: str) -> str:
    """`normalise` for any input, through `phonenumbers.parse` (`region` already checked)."""
    if raw is None or not raw.strip():
        raise RecipientError(field, "empty")
    cleaned = _clean(raw)
    if not cleaned:
        raise _fail(field, "not a phone number: no digits", cleaned)
    try:
        number = phonenumbers.parse(cleaned, region)
    except NumberParseException as exc:
        raise _fail(field, _PARSE_REASONS.get(exc.error_type, "not a phone number"), cleaned) from None
    if phonenumbers.is_valid_number(number):  # a valid number is a possible one: no reason needed
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != ValidationResult.IS_POSSIBLE and possible in _POSSIBILITY_REASONS:
        raise _fail(field, _POSSIBILITY_REASONS[possible], cleaned)
    code = number.country_code or 0
    number_region = phonenumbers.region_code_for_country_code(code)
    where = f"region {number_region}" if number_region != "ZZ" else f"country code +{code}"
    raise _fail(field, f"invalid number for {where}", cleaned)


def is_probably_mobile(e164: str) -> bool | None:
    """True for a mobile number, False for a landline/toll-free/premium one, None when unknown.

    North American numbers are usually None: their numbering plan does not tell mobiles apart.
    """
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return None
    return MOBILE_BY_TYPE.get(phonenumbers.number_type(number))
