"""An email notification's content: subject, text part and HTML part, as one stored body. Pure.

The outbox keeps one encrypted body per notification, rendered when the event is found (so a
replay sends what was decided then). For email that body is a small JSON document holding the
three rendered parts; `EmailTemplate.render` writes it and `EmailContent.parse` reads it back.
The text part is always present: mail clients that do not show HTML, and spam filters, want it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ml_connector.core.localized import DEFAULT_LOCALE
from ml_connector.core.templates import CompiledTemplate, compile_template

__all__ = ["EmailContent", "EmailTemplate", "compile_email"]

#: Longest subject we send; longer renders are cut (RFC 5322 advises 78 characters a line).
MAX_SUBJECT = 998


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str | None

    def dumps(self) -> str:
        return json.dumps({"subject": self.subject, "text": self.text, "html": self.html},
                          ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def parse(cls, body: str) -> EmailContent:
        """Read a stored body; ValueError when it is not one (a flow switched channel mid-way)."""
        try:
            data = json.loads(body)
        except ValueError:
            raise ValueError("the stored body is not an email (subject, text, html)") from None
        if not isinstance(data, dict) or not isinstance(data.get("subject"), str) \
                or not isinstance(data.get("text"), str) or not isinstance(data.get("html"), str | None):
            raise ValueError("the stored body is not an email (subject, text, html)")
        return cls(data["subject"], data["text"], data["html"])


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    """The three templates of an email flow; renders like a CompiledTemplate, to a stored body."""

    name: str
    subject: CompiledTemplate
    text: CompiledTemplate
    html: CompiledTemplate | None

    @property
    def variables(self) -> frozenset[str]:
        found = self.subject.variables | self.text.variables
        return found | self.html.variables if self.html else found

    def content(self, context: Mapping[str, Any]) -> EmailContent:
        # A subject is one line: line breaks from the data would end the header.
        subject = " ".join(self.subject.render(context).split())[:MAX_SUBJECT]
        html = self.html.render(context) if self.html else None
        return EmailContent(subject, self.text.render(context), html)

    def render(self, context: Mapping[str, Any]) -> str:
        return self.content(context).dumps()


def compile_email(
    name: str, *, subject: str, text: str, html: str | None, timezone: str = "UTC", currency: str = "USD",
    locale: str = DEFAULT_LOCALE,
) -> EmailTemplate:
    """Compile an email flow's templates (`name` is the flow's template key, e.g. flows.x.template);
    the HTML one autoescaped. Raises TemplateError naming the template that is wrong."""
    base = name.removesuffix(".template")
    return EmailTemplate(
        name,
        compile_template(f"{base}.subject", subject, timezone=timezone, currency=currency, locale=locale),
        compile_template(name, text, timezone=timezone, currency=currency, locale=locale),
        compile_template(f"{base}.html", html, timezone=timezone, currency=currency, locale=locale,
                         autoescape=True)
        if html is not None else None,
    )
