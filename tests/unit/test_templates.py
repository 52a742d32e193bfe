"""core.templates: sandboxed rendering, filters, and errors that name the template line."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from ml_connector.core.templates import (
    CompiledTemplate,
    check_template,
    compile_template,
    format_money,
    truncate,
)
from ml_connector.errors import TemplateError


def render(source: str, context: dict[str, Any] | None = None, **options: str) -> str:
    return compile_template("t", source, **options).render(context or {})


def render_error(source: str, context: dict[str, Any] | None = None, **options: str) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        render(source, context, **options)
    assert caught.value.template == "t"
    return caught.value


# --------------------------------------------------------------------------- rendering

def test_renders_record_data_and_nested_context() -> None:
    out = render(
        "PO {{ SEGMENT1 }} for {{ VENDOR }} approved ({{ flow }}, {{ record.key }})",
        {"SEGMENT1": "4500001", "VENDOR": "ACME & Sons <ltd>", "flow": "po-approved",
         "record": {"key": "42"}},
    )
    assert out == "PO 4500001 for ACME & Sons <ltd> approved (po-approved, 42)"  # no HTML escaping


def test_none_renders_empty_but_undefined_is_an_error() -> None:
    assert render("[{{ X }}]", {"X": None}) == "[]"
    err = render_error("line one\n[{{ MISSING }}]", {})
    assert err.line == 2
    assert "'MISSING' is undefined" in str(err)
    assert "template t, line 2" in str(err)


def test_compiled_template_is_reusable() -> None:
    tpl = compile_template("t", "Hi {{ n }}")
    assert isinstance(tpl, CompiledTemplate)
    assert [tpl.render({"n": i}) for i in range(3)] == ["Hi 0", "Hi 1", "Hi 2"]


# --------------------------------------------------------------------------- errors

def test_syntax_error_has_line() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template("po", "ok\nok\n{% if %}\n")
    assert caught.value.line == 3
    assert caught.value.template == "po"
    assert "TemplateSyntaxError" in str(caught.value)


def test_unknown_filter_fails_at_compile_time() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_template("t", "a\n{{ x | shout }}")
    assert caught.value.line == 2
    assert "shout" in str(caught.value)


@pytest.mark.parametrize(
    ("source", "context"),
    [
        ("a\nb\n{{ x.__class__.__mro__ }}", {"x": 1}),
        ("a\nb\n{{ x.append(4) }}", {"x": [1, 2]}),
        ("a\nb\n{{ x.update({'k': 1}) }}", {"x": {}}),
        ("a\nb\n{{ cycler.__init__.__globals__ }}", {}),
    ],
)
def test_sandbox_violations_are_template_errors(source: str, context: dict[str, Any]) -> None:
    err = render_error(source, context)
    assert err.line == 3
    assert "unsafe" in str(err) or "undefined" in str(err)


def test_record_is_not_mutated_by_a_template() -> None:
    data = {"x": [1, 2]}
    render_error("{{ x.append(3) }}", data)
    assert data == {"x": [1, 2]}


def test_runtime_error_in_a_filter_reports_the_template_line() -> None:
    err = render_error("Dear {{ name }},\n\ntotal: {{ amount | money }}", {"name": "A", "amount": "lots"})
    assert err.line == 3
    assert "money" in str(err)


def test_error_messages_do_not_leak_phone_numbers() -> None:
    err = render_error("{{ 1 + phone }}", {"phone": "+13125550142"})
    assert "5550142" not in str(err)


def test_unknown_time_zone_is_reported_at_compile_time() -> None:
    with pytest.raises(TemplateError, match="time zone"):
        compile_template("t", "x", timezone="Mars/Olympus")


def test_bad_time_zone_in_filter_argument() -> None:
    err = render_error("{{ d | date(tz='Nowhere/City') }}", {"d": datetime(2024, 5, 1, tzinfo=UTC)})
    assert "time zone" in str(err) and err.line == 1


# --------------------------------------------------------------------------- money

@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (1234.5, "USD", "$1,234.50"),
        (1234.5, "EUR", "€1,234.50"),
        (1234.5, "eur", "€1,234.50"),
        ("1,234.50", "USD", "$1,234.50"),
        ("  1234.5 ", "GBP", "£1,234.50"),
        (Decimal("0.005"), "USD", "$0.01"),         # half up
        (Decimal("2.675"), "USD", "$2.68"),          # no binary float surprise
        (2.675, "USD", "$2.68"),
        (-1234.5, "USD", "-$1,234.50"),
        (1234567, "JPY", "¥1,234,567"),
        (0, "USD", "$0.00"),
        (1234.5, "XYZ", "1,234.50 XYZ"),
        (1000000, "CHF", "1,000,000.00 CHF"),
    ],
)
def test_format_money(value: Any, currency: str, expected: str) -> None:
    assert format_money(value, currency) == expected


def test_money_filter_uses_flow_currency_unless_given() -> None:
    assert render("{{ a | money }}", {"a": 5}, currency="EUR") == "€5.00"
    assert render("{{ a | money('GBP') }}", {"a": 5}, currency="EUR") == "£5.00"
    assert render("{{ a | money(currency='USD') }}", {"a": 5}, currency="EUR") == "$5.00"


@pytest.mark.parametrize("bad", [None, "n/a", "", True, "nan", "inf", [1]])
def test_money_rejects_non_numbers(bad: Any) -> None:
    with pytest.raises(ValueError, match="money"):
        format_money(bad, "USD")


# --------------------------------------------------------------------------- date / datetime

WHEN = datetime(2024, 5, 1, 3, 30, tzinfo=UTC)
CHICAGO_WINTER = timezone(-timedelta(hours=5))


@pytest.mark.parametrize(
    ("source", "value", "tz", "expected"),
    [
        ("{{ v | date }}", WHEN, "UTC", "2024-05-01"),
        ("{{ v | date }}", WHEN, "America/Chicago", "2024-04-30"),           # converted to flow zone
        ("{{ v | datetime }}", WHEN, "America/Chicago", "2024-04-30 22:30 CDT"),
        ("{{ v | datetime }}", WHEN, "UTC", "2024-05-01 03:30 UTC"),
        # naive input is taken as UTC
        ("{{ v | datetime }}", datetime(2024, 1, 15, 12, 0), "Europe/London", "2024-01-15 12:00 GMT"),
        ("{{ v | datetime }}", "2024-05-01T03:30:00Z", "Europe/Paris", "2024-05-01 05:30 CEST"),
        ("{{ v | datetime }}", "2024-05-01T03:30:00+02:00", "UTC", "2024-05-01 01:30 UTC"),
        ("{{ v | datetime('%H:%M', tz='Asia/Kolkata') }}", WHEN, "UTC", "09:00"),
        # plain dates are not shifted
        ("{{ v | date('%d/%m/%Y') }}", date(2024, 5, 1), "America/Chicago", "01/05/2024"),
        ("{{ v | date }}", datetime(2024, 5, 1, 23, tzinfo=CHICAGO_WINTER), "UTC", "2024-05-02"),
    ],
)
def test_date_filters(source: str, value: Any, tz: str, expected: str) -> None:
    assert render(source, {"v": value}, timezone=tz) == expected


@pytest.mark.parametrize("bad", ["yesterday", 12345, None])
def test_date_filters_reject_non_dates(bad: Any) -> None:
    err = render_error("{{ v | datetime }}", {"v": bad})
    assert "datetime" in str(err)


# --------------------------------------------------------------------------- truncate, phone_mask

@pytest.mark.parametrize(
    ("text", "n", "end", "expected"),
    [
        ("ACME Corporation", 20, "…", "ACME Corporation"),
        ("ACME Corporation", 16, "…", "ACME Corporation"),
        ("ACME Corporation", 15, "…", "ACME Corporati…"),
        ("ACME Corporation", 8, "...", "ACME ..."),
        ("ACME Corporation", 2, "...", "AC"),
        ("ACME", 0, "…", ""),
        (None, 5, "…", ""),
        (12345678, 5, "…", "1234…"),
    ],
)
def test_truncate(text: Any, n: int, end: str, expected: str) -> None:
    out = truncate(text, n, end)
    assert out == expected
    assert len(out) <= n


def test_truncate_filter_overrides_jinja_builtin() -> None:
    assert render("{{ s | truncate(6) }}", {"s": "abcdefghij"}) == "abcde…"
    assert render("{{ s | truncate(6, end='') }}", {"s": "abcdefghij"}) == "abcdef"


def test_truncate_rejects_negative_length() -> None:
    with pytest.raises(ValueError):
        truncate("abc", -1)


def test_phone_mask_filter() -> None:
    assert render("{{ p | phone_mask }}", {"p": "+13125550142"}) == "+1312•••0142"
    assert render("[{{ p | phone_mask }}]", {"p": None}) == "[]"


# --------------------------------------------------------------------------- check_template

def test_check_template_returns_referenced_names() -> None:
    names = check_template("t", "{% set n = 1 %}{{ PO }} {{ record.key }} {{ AMOUNT | money }} {{ n }}")
    assert names == frozenset({"PO", "record", "AMOUNT"})


def test_check_template_raises_on_bad_source() -> None:
    with pytest.raises(TemplateError) as caught:
        check_template("flow-x", "{{ unclosed ")
    assert caught.value.template == "flow-x" and caught.value.line == 1


def test_date_only_strings_are_calendar_dates_not_utc_midnight() -> None:
    """ERP business dates come as 'YYYY-MM-DD' strings; west of UTC they must not move a day back."""
    from ml_connector.core.templates import compile_template

    t = compile_template("t", "{{ d | date }} {{ d | date('%d %b %Y') }}", timezone="America/Chicago")
    assert t.render({"d": "2024-02-29"}) == "2024-02-29 29 Feb 2024"
