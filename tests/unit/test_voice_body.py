"""core.voice_body: the call's TwiML says the message twice with a pause and gathers one digit."""

from __future__ import annotations

import defusedxml.ElementTree as SafeXml
import pytest

from ml_connector.core.flowspec import VoiceSpec
from ml_connector.core.templates import compile_template
from ml_connector.core.voice_body import MAX_TWIML, VoiceContent, VoiceTemplate, twiml_for

ACK = "https://hooks.example.com/twilio/voice/ack?n=7&d=1"


def content(**spec: object) -> VoiceContent:
    template = VoiceTemplate("t", compile_template("t", "PO {{ po }} approved\nfor {{ vendor }}"),
                             VoiceSpec.model_validate(spec))
    return VoiceContent.parse(template.render({"po": "4711", "vendor": "Smith & <Sons>"}))


def test_said_twice_with_a_pause_in_the_voice_and_language_asked() -> None:
    root = SafeXml.fromstring(twiml_for(content(voice="Polly.Hans", language="de-DE"), None))
    assert [child.tag for child in root] == ["Say", "Pause", "Say"]
    says = root.findall("Say")
    assert {s.get("voice") for s in says} == {"Polly.Hans"} and {s.get("language") for s in says} == {"de-DE"}
    assert [s.text for s in says] == ["PO 4711 approved for Smith & <Sons>"] * 2  # escaped, then read back
    assert root.find("Pause").get("length") == "1"  # type: ignore[union-attr]


def test_acknowledgement_gathers_one_digit_posted_to_our_webhook() -> None:
    root = SafeXml.fromstring(twiml_for(content(acknowledge=True, prompt="Press 1 to confirm."), ACK))
    [gather] = list(root)
    assert gather.tag == "Gather" and gather.get("numDigits") == "1" and gather.get("method") == "POST"
    assert gather.get("action") == ACK
    assert [c.tag for c in gather] == ["Say", "Pause", "Say", "Say"]
    assert gather[-1].text == "Press 1 to confirm."


def test_an_acknowledged_call_without_its_url_and_an_overlong_one_are_refused() -> None:
    with pytest.raises(ValueError, match="acknowledgement URL"):
        twiml_for(content(acknowledge=True), None)
    long = VoiceContent(say="x" * MAX_TWIML, voice="alice", language="en-US", repeat=1, pause=0, prompt=None,
                        digit=None)
    with pytest.raises(ValueError, match="at most 4000"):
        twiml_for(long, None)


def test_a_body_that_is_not_a_voice_message_is_refused() -> None:
    with pytest.raises(ValueError, match="not a voice message"):
        VoiceContent.parse("PO 4711 approved")
