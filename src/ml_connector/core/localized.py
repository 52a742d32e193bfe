"""Money and dates written the way a flow's readers write them, with Babel (CLDR data). Pure.

- Amounts are rounded half up to the currency's own number of decimals (ISO 4217: JPY 0,
  EUR 2, KWD 3) before Babel formats them, so 0.005 USD is $0.01 as accountants expect
  (Babel alone rounds half to even).
- A currency the locale has no symbol for is written after the number with its code
  ("1,234.50 XYZ"), except for a few whose common sign CLDR gives only in their home locale
  (the rand and the naira: "R1,234.50", "₦1,234.50").
- No-break spaces from CLDR (de_DE "2.529,27 €", fr_FR "1 234,50 €") become plain spaces: SMS
  bodies stay in the GSM-7 alphabet, which has no no-break space (one would make the message
  UCS-2 and cost up to three times the segments).
- A date format with a `%` is a strftime format (unchanged behaviour); anything else is a CLDR
  format name (short, medium, long, full) or a CLDR pattern ("d. MMMM y"), written in the locale.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, get_currency_precision, get_currency_symbol

DEFAULT_LOCALE = "en_US"

#: Signs CLDR keeps to the currency's home locale; used where the reader's locale has none.
_HOME_SIGNS = {"ZAR": "R", "NGN": "₦"}
#: CLDR spacing characters that are outside GSM-7 -> the plain space.
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " "})
_FORMAT_NAMES = frozenset({"short", "medium", "long", "full"})


@lru_cache(maxsize=128)
def parse_locale(name: str) -> Locale:
    """'de_DE' or 'de-DE' -> the Babel locale; ValueError naming the locale when CLDR has none."""
    text = name.strip()
    try:
        return Locale.parse(text, sep="-" if "-" in text else "_")
    except (UnknownLocaleError, ValueError, TypeError):
        raise ValueError(f"unknown locale {name!r} (write it like en_US, de_DE or pt_BR)") from None


def money(amount: Decimal, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """A finite Decimal in `currency` (ISO code, any case) written for `locale`."""
    code = currency.strip().upper()
    where = parse_locale(locale)
    places = get_currency_precision(code)
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = format_currency(rounded, code, locale=where, currency_digits=True).translate(_SPACES)
    if get_currency_symbol(code, where) != code:
        return text
    sign = _HOME_SIGNS.get(code)
    if sign is not None:
        return text.replace(code, sign)
    number = text.replace(code, "").strip()
    return f"{number} {code}"


def _strftime_style(fmt: str) -> bool:
    return "%" in fmt


def when(instant: datetime | date, fmt: str, locale: str, *, with_time: bool) -> str:
    """`instant` (already in the reader's time zone) as `fmt` says (see the module docstring)."""
    if _strftime_style(fmt):
        return instant.strftime(fmt)
    where = parse_locale(locale)
    try:
        if with_time and isinstance(instant, datetime):
            return format_datetime(instant, fmt, tzinfo=instant.tzinfo, locale=where).translate(_SPACES)
        return format_date(instant, fmt, locale=where).translate(_SPACES)
    except (ValueError, KeyError, AttributeError) as exc:
        kind = "format name" if fmt in _FORMAT_NAMES else "date pattern"
        raise ValueError(f"cannot use {kind} {fmt!r}: {exc}") from None
