"""core.channel_kinds and the composition of channels: one declaration per channel, read by all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ml_connector.app_channels import channel_rates
from ml_connector.config import load_config
from ml_connector.core.channel_kinds import CHANNEL_KINDS, channel_kind, route_key
from ml_connector.core.flowspec import FlowSpec
from ml_connector.core.lifecycle import STATUS_TABLES
from ml_connector.demo import demo_config


def test_every_channel_a_flow_can_name_is_declared_with_its_own_status_table() -> None:
    names = set(FlowSpec.model_fields["channel"].annotation.__args__)  # type: ignore[union-attr]
    assert names <= set(CHANNEL_KINDS)
    for name in names:
        assert channel_kind(name).statuses is STATUS_TABLES[name]
    assert channel_kind("voice").pacing == "account" and channel_kind("sms").pacing == "sender"
    assert channel_kind("email").address == "email" and not channel_kind("email").lookup
    with pytest.raises(KeyError, match="channels: email, mms, sms, voice, webhook, whatsapp"):
        channel_kind("fax")


def test_route_keys_keep_sms_on_the_account_name() -> None:
    assert route_key("main", "sms") == "main"
    assert route_key("main", "voice") == "main/voice" != route_key("main", "email")


def test_calls_are_paced_per_account_apart_from_messages(tmp_path: Path) -> None:
    config: dict[str, Any] = demo_config(tmp_path, "http://127.0.0.1:1", 8080)
    config["twilio"]["accounts"]["main"]["calls_per_second"] = 3
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    rates = channel_rates(load_config(path, {}))
    assert rates == {"main/voice": 3.0}


def test_voice_options_only_on_voice_flows() -> None:
    base = {"source": "s", "entity": "e", "trigger": {"field": "x", "eq": 1}, "recipients": [{"field": "p"}],
            "sender": "a.b", "template": "t"}
    assert FlowSpec.model_validate({**base, "channel": "voice", "voice": {"acknowledge": True}}).voice is not None
    with pytest.raises(ValueError, match="only voice flows"):
        FlowSpec.model_validate({**base, "voice": {"acknowledge": True}})
    with pytest.raises(ValueError, match="subject template"):
        FlowSpec.model_validate({**base, "channel": "email"})
