"""A voice notification's content and its TwiML. Pure.

The stored body of a voice notification is a small JSON document: the rendered message and how
to speak it (core.flowspec.VoiceSpec), decided when the event is found, like an SMS body. The
voice channel turns it into inline TwiML at send time, when it knows the acknowledgement URL:

    <Response>
      <Gather numDigits="1" action="ACK_URL" method="POST" timeout="8">   (with acknowledge)
        <Say voice=V language=L>message</Say><Pause length="1"/><Say ...>message</Say>
        <Say voice=V language=L>Press 1 to confirm.</Say>
      </Gather>
    </Response>

Twilio takes at most 4000 characters of inline TwiML (twilio.md §8).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from ml_connector.core.flowspec import VoiceSpec
from ml_connector.core.templates import CompiledTemplate

__all__ = ["MAX_TWIML", "VoiceContent", "VoiceTemplate", "twiml_for"]

MAX_TWIML = 4000
GATHER_TIMEOUT = 8


@dataclass(frozen=True, slots=True)
class VoiceContent:
    say: str
    voice: str
    language: str
    repeat: int
    pause: int
    prompt: str | None  # None: no acknowledgement asked
    digit: str | None

    def dumps(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def parse(cls, body: str) -> VoiceContent:
        """Read a stored body; ValueError when it is not a voice message."""
        try:
            data = json.loads(body)
            return cls(**data)
        except (ValueError, TypeError):
            raise ValueError("the stored body is not a voice message") from None


def _say(text: str, content: VoiceContent) -> str:
    return f"<Say voice={quoteattr(content.voice)} language={quoteattr(content.language)}>{escape(text)}</Say>"


def twiml_for(content: VoiceContent, ack_url: str | None) -> str:
    """The call's TwiML; `ack_url` is the Gather action (required when an acknowledgement is asked).
    ValueError when it would exceed Twilio's inline limit."""
    parts = [_say(content.say, content)]
    for _ in range(content.repeat - 1):
        if content.pause:
            parts.append(f'<Pause length="{content.pause}"/>')
        parts.append(_say(content.say, content))
    spoken = "".join(parts)
    if content.prompt is not None:
        if not ack_url:
            raise ValueError("an acknowledged call needs the acknowledgement URL")
        spoken = (f'<Gather numDigits="1" action={quoteattr(ack_url)} method="POST" timeout="{GATHER_TIMEOUT}">'
                  f"{spoken}{_say(content.prompt, content)}</Gather>")
    twiml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{spoken}</Response>'
    if len(twiml) > MAX_TWIML:
        raise ValueError(f"the call's TwiML has {len(twiml)} characters; Twilio accepts at most {MAX_TWIML}")
    return twiml


@dataclass(frozen=True, slots=True)
class VoiceTemplate:
    """A voice flow's message template and speaking options; renders to a stored body."""

    name: str
    text: CompiledTemplate
    spec: VoiceSpec

    @property
    def variables(self) -> frozenset[str]:
        return self.text.variables

    def content(self, context: Mapping[str, Any]) -> VoiceContent:
        spec = self.spec
        return VoiceContent(
            say=" ".join(self.text.render(context).split()), voice=spec.voice, language=spec.language,
            repeat=spec.repeat, pause=spec.pause, prompt=spec.prompt if spec.acknowledge else None,
            digit=spec.digit if spec.acknowledge else None,
        )

    def render(self, context: Mapping[str, Any]) -> str:
        return self.content(context).dumps()
