"""Config field types every source shares: the ERP's clock and the region its phone numbers assume."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import AfterValidator


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'America/Chicago' or 'UTC'") from None
    return value


def _known_region(value: str) -> str:
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {value!r}; use a two-letter code such as 'US'")
    return value


#: The ERP's own clock (an IANA zone name): naive ERP dates are read in it.
TimeZoneName = Annotated[str, AfterValidator(_known_zone)]
#: Country assumed for phone numbers written without a country code.
PhoneRegion = Annotated[str, AfterValidator(_known_region)]
