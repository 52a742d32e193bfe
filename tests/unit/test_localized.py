"""Money and dates by locale (core.localized), through the template filters and the flow setting."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.localized import money, parse_locale, when
from ml_connector.core.templates import compile_template, format_instant, format_money
from ml_connector.errors import TemplateError


def render(source: str, data: dict[str, Any], **options: Any) -> str:
    return compile_template("t", source, **options).render(data)


# --------------------------------------------------------------------------- money

@pytest.mark.parametrize(
    ("value", "currency", "locale", "expected"),
    [
        (2529.27, "EUR", "de_DE", "2.529,27 €"),
        ("2529.27", "eur", "de_DE", "2.529,27 €"),
        (-2529.27, "EUR", "de_DE", "-2.529,27 €"),
        (2529.27, "USD", "de_DE", "2.529,27 $"),
        (1234567.891, "EUR", "fr_FR", "1 234 567,89 €"),
        (1234.5, "CHF", "de_CH", "1'234.50 CHF"),  # CLDR has no sign for it but its code
        (1234.5, "GBP", "en_GB", "£1,234.50"),
        (1234.5, "EUR", "en_IE", "€1,234.50"),
        (1234.5, "BRL", "pt_BR", "R$ 1.234,50"),
        (1234567, "JPY", "ja_JP", "￥1,234,567"),
        (1234567.5, "INR", "en_IN", "₹12,34,567.50"),
        (1234.5, "XYZ", "de_DE", "1.234,50 XYZ"),
        (1234.5, "KWD", "en_US", "1,234.500 KWD"),  # three decimals, from ISO 4217
        (Decimal("0.005"), "EUR", "de_DE", "0,01 €"),  # half up, not half even
        (Decimal("2.5"), "JPY", "en_US", "¥3"),
        (Decimal("3.5"), "JPY", "en_US", "¥4"),
        (1234.5, "EUR", "de-DE", "1.234,50 €"),  # BCP 47 spelling too
    ],
)
def test_money_by_locale(value: Any, currency: str, locale: str, expected: str) -> None:
    assert format_money(value, currency, locale) == expected


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [  # en_US (the default) keeps the output of earlier versions, for every currency they knew
        (1234.5, "USD", "$1,234.50"),
        (1234.5, "EUR", "€1,234.50"),
        (1234.5, "GBP", "£1,234.50"),
        (1234567, "JPY", "¥1,234,567"),
        (1234.5, "INR", "₹1,234.50"),
        (1234.5, "ZAR", "R1,234.50"),
        (1234567, "KRW", "₩1,234,567"),
        (1234.5, "NGN", "₦1,234.50"),
        (-1234.5, "USD", "-$1,234.50"),
        (-1234.5, "XYZ", "-1,234.50 XYZ"),
        (1000000, "CHF", "1,000,000.00 CHF"),
        (Decimal("2.675"), "USD", "$2.68"),
    ],
)
def test_en_us_is_the_default_and_unchanged(value: Any, currency: str, expected: str) -> None:
    assert format_money(value, currency) == expected
    assert format_money(value, currency, "en_US") == expected


@pytest.mark.parametrize("locale", ["de_DE", "fr_FR", "de_CH", "pt_BR", "en_US"])
def test_money_has_no_character_outside_gsm7_spaces(locale: str) -> None:
    text = money(Decimal("1234567.5"), "EUR", locale)
    assert not {"\u00a0", "\u202f", "\u2009"} & set(text)


def test_money_filter_takes_locale_from_flow_or_argument() -> None:
    data = {"a": "2529.27", "c": "EUR"}
    assert render("{{ a | money(c) }}", data) == "€2,529.27"
    assert render("{{ a | money(c) }}", data, locale="de_DE") == "2.529,27 €"
    assert render("{{ a | money }}", data, currency="EUR", locale="de_DE") == "2.529,27 €"
    assert render("{{ a | money(c, 'fr_FR') }}", data, locale="de_DE") == "2 529,27 €"
    assert render("{{ a | money(c, locale='en_US') }}", data, locale="de_DE") == "€2,529.27"
    assert render("{{ a | money(locale='de_DE') }}", data, currency="GBP") == "2.529,27 £"


def test_unknown_locale_is_refused_at_compile_and_in_a_filter() -> None:
    with pytest.raises(TemplateError, match="unknown locale 'xx_QQ'"):
        compile_template("t", "{{ a | money }}", locale="xx_QQ")
    template = compile_template("t", "{{ a | money('EUR', 'zz_ZZ') }}")
    with pytest.raises(TemplateError, match="unknown locale 'zz_ZZ'") as caught:
        template.render({"a": 1})
    assert caught.value.line == 1


@pytest.mark.parametrize("bad", ["", "en_", "123", "de_DE_XX_YY"])
def test_parse_locale_names_the_bad_value(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown locale"):
        parse_locale(bad)


def test_parse_locale_accepts_both_spellings() -> None:
    assert str(parse_locale("pt_BR")) == str(parse_locale("pt-BR")) == "pt_BR"


# --------------------------------------------------------------------------- dates

WHEN = datetime(2024, 5, 1, 13, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fmt", "locale", "tz", "expected"),
    [
        ("medium", "de_DE", "Europe/Berlin", "01.05.2024"),
        ("long", "de_DE", "Europe/Berlin", "1. Mai 2024"),
        ("full", "fr_FR", "Europe/Paris", "mercredi 1 mai 2024"),
        ("short", "en_US", "America/New_York", "5/1/24"),
        ("medium", "en_US", "UTC", "May 1, 2024"),
        ("d. MMMM y", "de_DE", "UTC", "1. Mai 2024"),
        ("%d.%m.%Y", "de_DE", "UTC", "01.05.2024"),  # strftime stays strftime
        ("medium", "de_DE", "Pacific/Auckland", "02.05.2024"),  # converted before formatting
    ],
)
def test_date_filter_by_locale(fmt: str, locale: str, tz: str, expected: str) -> None:
    assert render("{{ d | date(f) }}", {"d": WHEN, "f": fmt}, locale=locale, timezone=tz) == expected


@pytest.mark.parametrize(
    ("fmt", "locale", "tz", "expected"),
    [
        ("medium", "de_DE", "Europe/Berlin", "01.05.2024, 15:05:00"),
        ("short", "en_US", "UTC", "5/1/24, 1:05 PM"),
        ("dd.MM.y HH:mm zzz", "de_DE", "Europe/Berlin", "01.05.2024 15:05 MESZ"),
        ("%Y-%m-%d %H:%M %Z", "de_DE", "Europe/Berlin", "2024-05-01 15:05 CEST"),
    ],
)
def test_datetime_filter_by_locale(fmt: str, locale: str, tz: str, expected: str) -> None:
    assert render("{{ d | datetime(f) }}", {"d": WHEN, "f": fmt}, locale=locale, timezone=tz) == expected


def test_date_defaults_are_unchanged() -> None:
    data = {"d": WHEN, "b": "2024-02-29"}
    assert render("{{ d | date }} {{ b | date }} {{ d | datetime }}", data, locale="de_DE") == (
        "2024-05-01 2024-02-29 2024-05-01 13:05 UTC"
    )


def test_a_calendar_date_is_not_shifted_by_the_time_zone() -> None:
    assert render("{{ b | date('long') }}", {"b": "2024-02-29"}, locale="de_DE",
                  timezone="America/Los_Angeles") == "29. Februar 2024"
    assert format_instant(date(2024, 2, 29), "full", "UTC", "datetime", "en_US") == "Thursday, February 29, 2024"


def test_date_filter_locale_argument_wins() -> None:
    assert render("{{ d | date('long', locale='fr_FR') }}", {"d": WHEN}, locale="de_DE") == "1 mai 2024"


def test_bad_date_pattern_is_a_template_error_naming_the_filter() -> None:
    with pytest.raises(TemplateError, match="date: cannot use date pattern"):
        render("{{ d | date('y-MM-dd qqqqqq') }}", {"d": WHEN})


def test_when_keeps_cldr_spacing_out_of_sms() -> None:
    assert "\u202f" not in when(WHEN, "short", "en_US", with_time=True)


# --------------------------------------------------------------------------- the flow setting

def _flow(**extra: Any) -> FlowSpec:
    return FlowSpec.model_validate({
        "source": "erp", "entity": "po", "trigger": {"field": "STATUS", "becomes": "APPROVED"},
        "recipients": [{"field": "PHONE"}], "sender": "main.sms", "template": "x", **extra,
    })


def test_flow_locale_defaults_to_en_us_and_is_validated() -> None:
    assert _flow().locale == "en_US"
    assert _flow(locale="de_DE").locale == "de_DE"
    with pytest.raises(ValueError, match="unknown locale 'klingon'"):
        _flow(locale="klingon")
