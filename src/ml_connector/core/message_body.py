"""MMS and WhatsApp content: text, media URLs, an approved Content template. Pure.

An SMS body is its text. An MMS or WhatsApp notification also carries media URLs (rendered
from templates, so a PO's PDF link can name the PO) and, for WhatsApp, the approved Content
template that may start a conversation (ContentSid HX...) with its variables built from the
record (ContentVariables, a JSON object of strings). The stored body is then a small JSON
document, rendered when the event is found, read back by channels.messages at send time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ml_connector.core.templates import CompiledTemplate

__all__ = ["MessageContent", "MessageTemplate"]


@dataclass(frozen=True, slots=True)
class MessageContent:
    text: str
    media: tuple[str, ...] = ()
    content_sid: str | None = None
    content_variables: Mapping[str, str] | None = None

    def dumps(self) -> str:
        return json.dumps({"text": self.text, "media": list(self.media), "content_sid": self.content_sid,
                           "content_variables": dict(self.content_variables) if self.content_variables else None},
                          ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def parse(cls, body: str) -> MessageContent:
        """Read a stored body; ValueError when it is not one."""
        try:
            data = json.loads(body)
            media = tuple(data["media"])
            variables = data["content_variables"]
            content = cls(str(data["text"]), media, data["content_sid"], variables)
        except (ValueError, TypeError, KeyError):
            raise ValueError("the stored body is not a media/template message") from None
        if not all(isinstance(m, str) for m in media) or (
                variables is not None and not all(isinstance(v, str) for v in variables.values())):
            raise ValueError("the stored body is not a media/template message")
        return content

    @property
    def variables_json(self) -> str | None:
        if not self.content_variables:
            return None
        return json.dumps(dict(self.content_variables), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """A flow's text template plus media URL and Content variable templates."""

    name: str
    text: CompiledTemplate
    media: tuple[CompiledTemplate, ...] = ()
    content_sid: str | None = None
    variables: tuple[tuple[str, CompiledTemplate], ...] = ()

    @property
    def variable_names(self) -> frozenset[str]:
        found = set(self.text.variables)
        for template in (*self.media, *(t for _, t in self.variables)):
            found |= template.variables
        return frozenset(found)

    def content(self, context: Mapping[str, Any]) -> MessageContent:
        return MessageContent(
            text=self.text.render(context),
            media=tuple(m.render(context).strip() for m in self.media),
            content_sid=self.content_sid,
            content_variables={key: t.render(context) for key, t in self.variables} or None,
        )

    def render(self, context: Mapping[str, Any]) -> str:
        return self.content(context).dumps()
