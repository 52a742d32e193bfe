"""SMS body templates: Jinja2 in an immutable sandbox, strict about undefined names. Pure.

Templates are written by ERP admins in the config, so they run sandboxed (no attribute escapes,
no mutation of the record) and every failure becomes one `errors.TemplateError` naming the
template and its line. Undefined variables are errors, not empty strings: a message saying
"PO  approved" is worse than a flow that stops and says why. A defined variable whose value is
None renders as the empty string (ERP nulls are normal data). Autoescape is off: SMS is text.

Filters: `money`, `date`, `datetime`, `truncate`, `phone_mask` (see each function). Money and
dates follow the flow's `locale` (core.localized); each filter also takes `locale=` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ml_connector.core import localized
from ml_connector.core.localized import DEFAULT_LOCALE
from ml_connector.core.redact import mask_phone, scrub_phones
from ml_connector.errors import TemplateError


def _filename(name: str) -> str:
    return f"<template {name}>"


# --------------------------------------------------------------------------- filters


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"money: expected a number, got {type(value).__name__}")
    if isinstance(value, float):
        value = str(value)
    if isinstance(value, str):
        value = value.strip().replace(",", "")
    try:
        result = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError("money: expected a number") from None
    if not result.is_finite():
        raise ValueError("money: expected a finite number")
    return result


def format_money(value: Any, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """1234.5, "USD" -> "$1,234.50"; "1,234.50", "EUR" -> "€1,234.50"; "XYZ" -> "1,234.50 XYZ";
    2529.27, "EUR", "de_DE" -> "2.529,27 €" (see core.localized). Input text is read the
    US way ("1,234.50"): that is how ERPs export numbers, whatever the reader's locale."""
    return localized.money(_decimal(value), currency, locale)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _instant(value: Any, what: str) -> datetime | date:
    """An aware datetime (naive input is taken as UTC), or a plain date left as is."""
    if isinstance(value, str):
        text = value.strip()
        try:
            # A calendar date ("2024-02-29", as ERPs store business dates) has no time zone to
            # convert from: keep it a date, or it shows a day early west of UTC.
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{what}: not an ISO-8601 date or time") from None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    raise ValueError(f"{what}: expected a date or time, got {type(value).__name__}")


def format_instant(value: Any, fmt: str, tz: str, what: str = "datetime", locale: str = DEFAULT_LOCALE) -> str:
    """Render a datetime/ISO string in time zone `tz`; a bare date is formatted unconverted.

    `fmt` is a strftime format ("%d.%m.%Y") or a CLDR name or pattern ("medium", "d. MMMM y")
    written in `locale`; the `date` filter shows only the date part of a CLDR format."""
    instant = _instant(value, what)
    if isinstance(instant, datetime):
        instant = instant.astimezone(_zone(tz))
    try:
        return localized.when(instant, fmt, locale, with_time=what == "datetime")
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def truncate(value: Any, length: int, end: str = "…") -> str:
    """Shorten to at most `length` characters, ending with `end` when something was cut."""
    if length < 0:
        raise ValueError("truncate: length must not be negative")
    text = "" if value is None else str(value)
    if len(text) <= length:
        return text
    if len(end) >= length:
        return text[:length]
    return text[: length - len(end)] + end


def alpha_out(value: Any) -> str:
    """SAP's ALPHA output conversion: ``0000100000`` -> ``100000``; other text unchanged."""
    if value is None:
        return ""
    text = str(value).strip()
    return (text.lstrip("0") or "0") if text.isdigit() else text


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _filters(timezone: str, default_currency: str, default_locale: str) -> dict[str, Callable[..., str]]:
    def money(value: Any, currency: str | None = None, locale: str | None = None) -> str:
        return format_money(value, currency or default_currency, locale or default_locale)

    def date_filter(value: Any, fmt: str = "%Y-%m-%d", tz: str | None = None, locale: str | None = None) -> str:
        return format_instant(value, fmt, tz or timezone, "date", locale or default_locale)

    def datetime_filter(
        value: Any, fmt: str = "%Y-%m-%d %H:%M %Z", tz: str | None = None, locale: str | None = None
    ) -> str:
        return format_instant(value, fmt, tz or timezone, "datetime", locale or default_locale)

    def phone_mask(value: Any) -> str:
        return mask_phone(None if value is None else str(value))

    return {
        "alpha": alpha_out,
        "money": money,
        "date": date_filter,
        "datetime": datetime_filter,
        "truncate": truncate,
        "phone_mask": phone_mask,
    }


@lru_cache(maxsize=64)
def _environment(timezone: str, currency: str, locale: str, autoescape: bool = False) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=autoescape, finalize=_finalize, keep_trailing_newline=False
    )
    env.filters.update(_filters(timezone, currency, locale))
    return env


# --------------------------------------------------------------------------- errors


def _template_line(tb: TracebackType | None, filename: str) -> int | None:
    """The innermost traceback line that belongs to the template (Jinja maps frames to it)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return scrub_phones(f"{type(exc).__name__}: {message}")


# --------------------------------------------------------------------------- API


#: A template that is only text and `{{ name }}`: (True, name) or (False, text) per piece.
Pieces = tuple[tuple[bool, str], ...]


def _plain_pieces(parsed: nodes.Template) -> Pieces | None:
    """The pieces of a template with no filters, tags or attribute access; None for any other."""
    if not parsed.body:
        return ()
    if len(parsed.body) != 1 or not isinstance(parsed.body[0], nodes.Output):
        return None
    pieces: list[tuple[bool, str]] = []
    for node in parsed.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            pieces.append((False, node.data))
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            pieces.append((True, node.name))
        else:
            return None
    return tuple(pieces)


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A template ready to render many times. Build with `compile_template`."""

    name: str
    template: Template
    variables: frozenset[str]
    #: Set for text-and-names templates ("{{ message }}"), rendered here at a tenth of Jinja's
    #: cost with Jinja's result (`str(finalize(value))` per name); anything unusual, such as an
    #: undefined name, still goes through Jinja for its error.
    pieces: Pieces | None = None

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with `context` (record data plus `record` and `flow`, built by the caller)."""
        if self.pieces is not None:
            try:
                return "".join([str(_finalize(context[text])) if is_name else text for is_name, text in self.pieces])
            except Exception:  # noqa: S110 - Jinja below renders it, or reports the error
                pass
        try:
            return self.template.render(dict(context))
        except Exception as exc:
            line = _template_line(exc.__traceback__, _filename(self.name))
            raise TemplateError(self.name, line, _describe(exc)) from exc


def compile_template(
    name: str, source: str, *, timezone: str = "UTC", currency: str = "USD", locale: str = DEFAULT_LOCALE,
    autoescape: bool = False,
) -> CompiledTemplate:
    """Compile `source`; raises TemplateError (with line) on a syntax error, a bad time zone or locale.

    `autoescape`: HTML-escape every value (email HTML parts); such templates always render
    through Jinja, never through the plain-pieces shortcut, which does not escape."""
    try:
        _zone(timezone)
        localized.parse_locale(locale)
    except ValueError as exc:
        raise TemplateError(name, None, str(exc)) from None
    env = _environment(timezone, currency.strip().upper(), locale.strip(), autoescape)
    try:
        parsed = env.parse(source, name=name, filename=_filename(name))
        code = env.compile(parsed, name=name, filename=_filename(name))
    except TemplateSyntaxError as exc:
        raise TemplateError(name, exc.lineno, _describe(exc)) from exc
    template = env.template_class.from_code(env, code, env.make_globals(None))
    template.name = name
    pieces = None if autoescape else _plain_pieces(parsed)
    return CompiledTemplate(name, template, frozenset(meta.find_undeclared_variables(parsed)), pieces)


def check_template(
    name: str, source: str, *, timezone: str = "UTC", currency: str = "USD", locale: str = DEFAULT_LOCALE
) -> frozenset[str]:
    """Compile only (for `ml-connector validate`); returns the top-level names the template uses."""
    return compile_template(name, source, timezone=timezone, currency=currency, locale=locale).variables
