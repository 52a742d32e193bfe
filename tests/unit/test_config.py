"""The config loader: every problem reported at once, as `file:line: key.path: message`."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ml_connector import config as cfg
from ml_connector.errors import ConfigError
from ml_connector.sources import registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "sql.yaml"
SID = "AC" + "0123456789abcdef" * 2
KEY_SID = "SK" + "fedcba9876543210" * 2
MG_SID = "MG" + "0123456789abcdef" * 2
TOKEN = "tok-5ecret-value-1234"


# ---------------------------------------------------------------------------- a stand-in "sql" model


class _Entity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    table: str | None = None
    query: str | None = None
    key: str
    changed_at: str
    columns: list[str] | None = None
    page_size: int = 500

    @model_validator(mode="after")
    def _one_source(self) -> _Entity:
        if (self.table is None) == (self.query is None):
            raise ValueError("set exactly one of table or query")
        return self


class StandInSqlConfig(BaseModel):
    """Same shape as sources.sql.SqlSourceConfig, so these tests do not depend on that adapter."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["sql"]
    url: str
    timezone: str = "UTC"
    default_region: str = "US"
    connect_args: dict[str, Any] = Field(default_factory=dict)
    entities: dict[str, _Entity]


class NoEntitiesConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["feed"]
    endpoint: str


@pytest.fixture(autouse=True)
def stand_in_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("mlc_test_stand_in_sources")
    module.StandInSqlConfig = StandInSqlConfig  # type: ignore[attr-defined]
    module.NoEntitiesConfig = NoEntitiesConfig  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(
        registry,
        "SOURCE_TYPES",
        {
            "sql": (f"{module.__name__}:StandInSqlConfig", f"{module.__name__}:build"),
            "feed": (f"{module.__name__}:NoEntitiesConfig", f"{module.__name__}:build"),
        },
    )


# ---------------------------------------------------------------------------- helpers

BASE = f"""\
twilio:
  accounts:
    main:
      account_sid: {SID}
      auth_token: ${{TOKEN}}
      senders:
        ops: {{from: "+13125550100"}}
sources:
  erp:
    type: sql
    url: sqlite:///erp.db
    entities:
      po: {{table: po_headers, key: po_id, changed_at: last_update_date}}
      people: {{table: people, key: person_id, changed_at: last_update_date}}
flows:
  po_approved:
    source: erp
    entity: po
    trigger: {{field: status, becomes: APPROVED}}
    recipients:
      - lookup: {{entity: people, key_field: buyer_id, fields: [mobile_phone]}}
    sender: main.ops
    template: "PO {{{{ po_number }}}} approved"
"""
ENV = {"TOKEN": TOKEN}


def write(tmp_path: Path, text: str, name: str = "mlc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing `needle` (so tests state lines without counting)."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def at(tmp_path: Path, text: str, needle: str) -> str:
    """The `file:line: ` prefix of a problem on the line containing `needle`."""
    return f"{tmp_path / 'mlc.yaml'}:{line_of(text, needle)}: "


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        cfg.load_config(path, ENV if env is None else env)
    return caught.value.problems


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> cfg.Config:
    return cfg.load_config(write(tmp_path, text), ENV if env is None else env)


# ---------------------------------------------------------------------------- happy paths


def test_minimal_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, BASE)
    assert config.version == 1
    assert config.path == tmp_path / "mlc.yaml"
    assert config.webhooks.status_callback_url is None
    assert config.dispatcher.lease.total_seconds() == 60
    assert config.dispatcher.idle_poll.total_seconds() == pytest.approx(0.2)
    account, sender = config.sender("main.ops")
    assert account.auth_token is not None and account.auth_token.get_secret_value() == TOKEN
    assert account.base_urls.api == "https://api.twilio.com"
    assert sender.kind == "long_code" and sender.effective_mps == 1.0
    assert isinstance(config.sources["erp"], StandInSqlConfig)


def test_example_sql_config_validates(tmp_path: Path) -> None:
    config = cfg.load_config(EXAMPLE, {})
    here = EXAMPLE.parent.resolve()
    assert config.webhooks.status_callback_url == "http://127.0.0.1:8080/twilio/status"
    assert config.store.url == f"sqlite:///{here / 'ml-connector.db'}"
    assert config.sources["erp"].url == f"sqlite:///{here / 'demo-erp.db'}"
    account, sender = config.sender("demo.ops")
    assert account.account_sid == "AC" + "a" * 32
    assert account.auth_token is not None and account.auth_token.get_secret_value() == "simulator-token"
    assert account.base_urls.api == "http://127.0.0.1:8910"
    assert sender.address == "+15005550006"
    assert set(config.flows) == {"po_approved", "invoice_validated"}


def test_example_and_starter_validate_with_the_real_sql_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if importlib.util.find_spec("ml_connector.sources.sql") is None:
        pytest.skip("sources/sql.py is not in this tree yet")
    monkeypatch.setattr(
        registry,
        "SOURCE_TYPES",
        {"sql": ("ml_connector.sources.sql:SqlSourceConfig", "ml_connector.sources.sql:build")},
    )
    config = cfg.load_config(EXAMPLE, {"TWILIO_AUTH_TOKEN": "x"})
    assert type(config.sources["erp"]).__name__ == "SqlSourceConfig"
    starter = cfg.load_config(write(tmp_path, cfg.starter_config()), STARTER_ENV)
    assert type(starter.sources["erp"]).__name__ == "SqlSourceConfig"


SAMPLE_ROW = {
    "po_number": "PO-1001", "vendor_name": "ACME", "amount": "1234.5", "currency": "USD",
    "invoice_num": "INV-7", "approver_phone": "+13125550142",
}


@pytest.mark.parametrize("source", ["example", "starter"])
def test_shipped_flow_templates_render(source: str, tmp_path: Path) -> None:
    from ml_connector.core.templates import compile_template

    config = (
        cfg.load_config(EXAMPLE, {})
        if source == "example"
        else load(tmp_path, cfg.starter_config(), STARTER_ENV)
    )
    for name, flow in config.flows.items():
        body = compile_template(name, flow.template, timezone=flow.timezone, currency=flow.currency)
        assert "$1,234.50" in body.render(SAMPLE_ROW)


STARTER_ENV = {
    "TWILIO_ACCOUNT_SID": SID,
    "TWILIO_AUTH_TOKEN": TOKEN,
    "TWILIO_FROM_NUMBER": "+13125550100",
    "MLC_PUBLIC_URL": "https://notify.example.com",
    "ERP_DATABASE_URL": "postgresql://reader@erp-db.example.com/erp",
}


def test_starter_config_validates(tmp_path: Path) -> None:
    text = cfg.starter_config()
    assert text == (REPO / "src/ml_connector/starter.yaml").read_text(encoding="utf-8")
    config = load(tmp_path, text, STARTER_ENV)
    assert config.webhooks.status_callback_url == "https://notify.example.com/twilio/status"
    assert config.flows["po_approved"].sender == "main.ops"
    assert config.store.key_file == tmp_path / "ml-connector.key"


def test_starter_config_names_each_missing_variable(tmp_path: Path) -> None:
    text = cfg.starter_config()
    env = {k: v for k, v in STARTER_ENV.items() if k != "ERP_DATABASE_URL"}
    found = problems(tmp_path, text, env)
    assert found == [
        f"{tmp_path / 'mlc.yaml'}:{line_of(text, 'url: ${ERP_DATABASE_URL}')}: sources.erp.url: "
        "environment variable ERP_DATABASE_URL is not set (set it, or give a default: "
        "${ERP_DATABASE_URL:-...})"
    ]


def test_all_flows_may_be_disabled(tmp_path: Path) -> None:
    text = BASE.replace('    sender: main.ops', '    sender: main.ops\n    enabled: false')
    assert load(tmp_path, text).flows["po_approved"].enabled is False


def test_env_settings_and_default_path() -> None:
    names = [setting.name for setting in cfg.env_settings()]
    assert names == [cfg.CONFIG_ENV, "MLC_MASTER_KEY", "MLC_WEBHOOK_PORT", "MLC_ADMIN_PORT", "MLC_EVENT_LOOP"]
    assert cfg.CONFIG_ENV == "MLC_CONFIG"
    assert cfg.default_config_path({}) == Path("ml-connector.yaml")
    assert cfg.default_config_path({"MLC_CONFIG": "/etc/mlc.yaml"}) == Path("/etc/mlc.yaml")


# ---------------------------------------------------------------------------- file-level errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        cfg.load_config(path, {})
    assert caught.value.problems == [f"{path}: file not found"]


def test_not_yaml_reports_line_and_column(tmp_path: Path) -> None:
    text = BASE.replace("    entity: po\n", "    entity: [po\n")
    found = problems(tmp_path, text)
    assert len(found) == 1
    assert found[0].startswith(at(tmp_path, text, "trigger:") + "not valid YAML (column ")


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("", "empty"), ("42\n", "a int")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'mlc.yaml'}:1: (top level): must be a mapping of sections "
        f"(twilio, sources, flows, ...), the file is {kind}"
    ]


def test_duplicate_keys_are_reported_with_both_lines(tmp_path: Path) -> None:
    text = BASE.replace("    entity: po\n", "    entity: po\n    entity: people\n")
    found = problems(tmp_path, text)
    first, second = line_of(text, "entity: po"), line_of(text, "entity: people", 1)
    assert found == [
        f"{tmp_path / 'mlc.yaml'}:{second}: flows.po_approved.entity: "
        f"duplicate key (first defined on line {first})"
    ]


def test_unknown_source_type_lists_known_types(tmp_path: Path) -> None:
    text = BASE.replace("    type: sql", "    type: oracle")
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'mlc.yaml'}:{line_of(text, 'type: oracle')}: sources.erp.type: "
        "unknown source type 'oracle'; known types: feed, sql"
    ]


def test_source_errors_carry_the_source_path(tmp_path: Path) -> None:
    text = BASE.replace("key: po_id, ", "")
    assert problems(tmp_path, text) == [
        at(tmp_path, text, "po: {table") + "sources.erp.entities.po.key: required key is missing"
    ]


def test_unknown_key_and_bad_type_each_get_their_line(tmp_path: Path) -> None:
    text = BASE + "webhooks:\n  port: eighty\n  hots: 0.0.0.0\n"
    file = tmp_path / "mlc.yaml"
    assert problems(tmp_path, text) == [
        f"{file}:{line_of(text, 'port: eighty')}: webhooks.port: "
        "Input should be a valid integer, unable to parse string as an integer",
        f"{file}:{line_of(text, 'hots:')}: webhooks.hots: unknown key",
    ]


def test_missing_key_points_at_the_parent_mapping(tmp_path: Path) -> None:
    text = BASE.replace(f"      account_sid: {SID}\n", "")
    assert problems(tmp_path, text) == [
        at(tmp_path, text, "main:") + "twilio.accounts.main.account_sid: required key is missing"
    ]


def test_bad_operator_in_trigger_points_at_the_trigger(tmp_path: Path) -> None:
    text = BASE.replace("{field: status, becomes: APPROVED}", "{field: status, bcomes: APPROVED}")
    found = problems(tmp_path, text)
    assert len(found) == 1
    assert found[0].startswith(
        at(tmp_path, text, "trigger:") + "flows.po_approved.trigger.bcomes: unknown key; "
        "a condition is {field: NAME, <operator>: value} with one operator of eq, ne, in,"
    )


def test_nested_trigger_error_keeps_the_specific_message(tmp_path: Path) -> None:
    text = BASE.replace(
        "    trigger: {field: status, becomes: APPROVED}\n",
        "    trigger:\n      all:\n        - {field: status, becomes: APPROVED}\n"
        "        - {field: amount, gte: 1, lt: 9}\n",
    )
    _assert_nested(tmp_path, text)


def _assert_nested(tmp_path: Path, text: str) -> None:
    found = problems(tmp_path, text)
    assert len(found) == 1
    prefix = f"{tmp_path / 'mlc.yaml'}:{line_of(text, 'field: amount')}: flows.po_approved.trigger.all[1]: "
    assert found[0].startswith(prefix + "condition on 'amount' needs exactly one operator of ")
    assert found[0].endswith("got gte, lt") or found[0].endswith("got lt, gte")


def test_union_noise_is_dropped_for_recipients(tmp_path: Path) -> None:
    text = BASE.replace(", fields: [mobile_phone]", "")
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'mlc.yaml'}:{line_of(text, '- lookup:')}: "
        "flows.po_approved.recipients[0].lookup.fields: required key is missing"
    ]


def test_path_is_not_a_yaml_key(tmp_path: Path) -> None:
    text = BASE + "path: /elsewhere.yaml\n"
    assert problems(tmp_path, text) == [at(tmp_path, text, "path:") + "path: unknown key"]


def test_unsupported_version(tmp_path: Path) -> None:
    text = "version: 2\n" + BASE
    assert problems(tmp_path, text) == [f"{tmp_path / 'mlc.yaml'}:1: version: Input should be 1"]


# ---------------------------------------------------------------------------- cross references


def test_dangling_references_are_all_reported_together(tmp_path: Path) -> None:
    flow2 = """\
  second:
    source: erp
    entity: invoices
    trigger: {field: status, changed: true}
    recipients:
      - lookup: {entity: staff, key_field: buyer_id, fields: [mobile_phone]}
    sender: main.nobody
    template: hi
  third:
    source: crm
    entity: x
    trigger: {field: s, eq: 1}
    recipients: [{field: phone}]
    sender: billing.ops
    template: hi
  fourth:
    source: erp
    entity: po
    trigger: {field: s, eq: 1}
    recipients: [{field: phone}]
    sender: ops
    template: hi
"""
    text = BASE + flow2
    file = tmp_path / "mlc.yaml"
    assert problems(tmp_path, text) == [
        f"{file}:{line_of(text, 'entity: invoices')}: flows.second.entity: "
        "source 'erp' has no entity 'invoices'; entities: people, po",
        f"{file}:{line_of(text, 'entity: staff')}: flows.second.recipients[0].lookup.entity: "
        "source 'erp' has no entity 'staff'; entities: people, po",
        at(tmp_path, text, "main.nobody")
        + "flows.second.sender: account 'main' has no sender 'nobody'; senders: ops",
        f"{file}:{line_of(text, 'source: crm')}: flows.third.source: unknown source 'crm'; sources: erp",
        at(tmp_path, text, "billing.ops")
        + "flows.third.sender: unknown Twilio account 'billing'; accounts: main",
        f"{file}:{line_of(text, 'sender: ops')}: flows.fourth.sender: "
        "must be '<account>.<sender>' naming an entry of twilio.accounts",
    ]


def test_references_are_checked_even_when_other_sections_fail(tmp_path: Path) -> None:
    text = BASE.replace("    entity: po\n", "    entity: pos\n") + "dispatcher:\n  batch_size: 0\n"
    file = tmp_path / "mlc.yaml"
    assert problems(tmp_path, text) == [
        f"{file}:{line_of(text, 'entity: pos')}: flows.po_approved.entity: "
        "source 'erp' has no entity 'pos'; entities: people, po",
        at(tmp_path, text, "batch_size")
        + "dispatcher.batch_size: Input should be greater than or equal to 1",
    ]


def test_source_without_entities_is_not_entity_checked(tmp_path: Path) -> None:
    text = BASE.replace(
        "sources:\n", "sources:\n  feed:\n    type: feed\n    endpoint: http://127.0.0.1:1\n"
    ).replace("    source: erp\n    entity: po\n", "    source: feed\n    entity: anything\n")
    assert load(tmp_path, text).flows["po_approved"].entity == "anything"


API_KEY_ONLY = f"""\
      api_key_sid: {KEY_SID}
      api_key_secret: ${{TOKEN}}
"""


def test_api_key_without_public_url_is_enough(tmp_path: Path) -> None:
    text = BASE.replace("      auth_token: ${TOKEN}\n", API_KEY_ONLY)
    account, _ = load(tmp_path, text).sender("main.ops")
    assert account.auth_token is None and account.api_key_sid == KEY_SID


def test_api_key_with_public_url_needs_the_auth_token(tmp_path: Path) -> None:
    text = BASE.replace("      auth_token: ${TOKEN}\n", API_KEY_ONLY) + "webhooks:\n  public_url: https://n.example.com\n"
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'mlc.yaml'}:{line_of(text, 'main:')}: twilio.accounts.main.auth_token: "
        "auth_token is required because webhooks.public_url is set: Twilio signs status callbacks "
        "with the account's primary Auth Token, and an API key cannot validate those signatures"
    ]


def test_api_key_parts_go_together(tmp_path: Path) -> None:
    text = BASE.replace("      auth_token: ${TOKEN}\n", f"      api_key_sid: {KEY_SID}\n")
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'mlc.yaml'}:{line_of(text, 'main:')}: twilio.accounts.main: "
        "api_key_sid and api_key_secret go together: set both or neither"
    ]


def test_credentials_are_required(tmp_path: Path) -> None:
    text = BASE.replace("      auth_token: ${TOKEN}\n", "")
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'mlc.yaml'}:{line_of(text, 'main:')}: twilio.accounts.main: "
        "needs credentials: auth_token, or api_key_sid + api_key_secret"
    ]


# ---------------------------------------------------------------------------- interpolation


def test_interpolation_default_escape_and_partial_strings(tmp_path: Path) -> None:
    text = BASE + (
        "webhooks:\n"
        "  public_url: https://${HOST:-fallback.example.com}/mlc\n"
        "  port: ${PORT}\n"
        "  status_path: /cb/${EMPTY:-dflt}\n"
    )
    text = text.replace('"PO {{ po_number }} approved"', '"costs $${NOT_A_VAR} for ${WHO}"')
    config = load(tmp_path, text, {**ENV, "PORT": "9090", "EMPTY": "", "WHO": "you"})
    assert config.webhooks.port == 9090
    assert config.webhooks.status_callback_url == "https://fallback.example.com/mlc/cb/dflt"
    assert config.flows["po_approved"].template == "costs ${NOT_A_VAR} for you"


def test_keys_are_never_interpolated(tmp_path: Path) -> None:
    text = BASE.replace("  po_approved:\n", "  ${FLOW}:\n")
    config = load(tmp_path, text, {**ENV, "FLOW": "renamed"})
    assert list(config.flows) == ["${FLOW}"]


def test_missing_and_malformed_variables_name_key_and_line(tmp_path: Path) -> None:
    text = BASE + "webhooks:\n  port: ${PORT}\n  host: ${bad name}\n"
    file = tmp_path / "mlc.yaml"
    assert problems(tmp_path, text, {}) == [
        f"{file}:{line_of(text, 'auth_token')}: twilio.accounts.main.auth_token: "
        "environment variable TOKEN is not set (set it, or give a default: ${TOKEN:-...})",
        f"{file}:{line_of(text, 'port:')}: webhooks.port: "
        "environment variable PORT is not set (set it, or give a default: ${PORT:-...})",
        f"{file}:{line_of(text, 'host:')}: webhooks.host: "
        "malformed variable reference; write ${NAME} or ${NAME:-default} (and $${ for a literal ${)",
    ]


# ---------------------------------------------------------------------------- secrets


def test_secrets_stay_out_of_repr_and_errors(tmp_path: Path) -> None:
    text = BASE + "store:\n  url: postgresql://mlc:${DBPW}@db.example.com/mlc\n"
    env = {**ENV, "DBPW": "db-pa55word-xyz"}
    config = load(tmp_path, text, env)
    for shown in (repr(config), str(config), repr(config.store)):
        assert TOKEN not in shown and "db-pa55word-xyz" not in shown
    assert config.store.url == "postgresql://mlc:db-pa55word-xyz@db.example.com/mlc"

    broken = text.replace(f"account_sid: {SID}", "account_sid: ${TOKEN}") + "webhooks:\n  port: ${TOKEN}\n"
    with pytest.raises(ConfigError) as caught:
        cfg.load_config(write(tmp_path, broken), env)
    assert len(caught.value.problems) == 2
    assert TOKEN not in str(caught.value) and "db-pa55word-xyz" not in str(caught.value)


def test_sender_errors_never_echo_the_number(tmp_path: Path) -> None:
    text = BASE.replace('{from: "+13125550100"}', '{from: "+1 312 555 0100"}')
    found = problems(tmp_path, text)
    assert found == [
        f"{tmp_path / 'mlc.yaml'}:{line_of(text, 'ops:')}: twilio.accounts.main.senders.ops.from: must be "
        "an E.164 number (+15551234567), a 5-6 digit short code, or an alphanumeric sender ID "
        "(1-11 letters, digits or spaces, at least one letter)"
    ]
    assert "555" not in found[0].split("from: ")[1].replace("+15551234567", "")


# ---------------------------------------------------------------------------- senders


@pytest.mark.parametrize(
    ("sender", "kind", "mps"),
    [
        ({"from": "+13125550100"}, "long_code", 1.0),
        ({"from": "+447700900123"}, "long_code", 1.0),
        ({"from": "+18005550100"}, "toll_free", 3.0),
        ({"from": "+18885550100"}, "toll_free", 3.0),
        ({"from": "+18015550100"}, "long_code", 1.0),  # 801 is Utah, not toll-free
        ({"from": "12345"}, "short_code", 100.0),
        ({"from": "123456"}, "short_code", 100.0),
        ({"from": "ACME Corp"}, "alphanumeric", 1.0),
        ({"messaging_service_sid": MG_SID}, "messaging_service", 1.0),
        ({"messaging_service_sid": MG_SID, "pool_size": 4}, "messaging_service", 4.0),
        ({"messaging_service_sid": MG_SID, "pool_mps": [1, 3, 10]}, "messaging_service", 14.0),
        ({"from": "+13125550100", "mps": 4.5}, "long_code", 4.5),
        ({"from": "+447700900123", "kind": "toll_free"}, "toll_free", 3.0),
    ],
)
def test_sender_kind_inference_and_mps(sender: dict[str, Any], kind: str, mps: float) -> None:
    parsed = cfg.Sender.model_validate(sender)
    assert (parsed.kind, parsed.effective_mps) == (kind, mps)


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        ({}, "set exactly one of 'from' or 'messaging_service_sid'"),
        ({"from": "+13125550100", "messaging_service_sid": MG_SID}, "set exactly one of 'from' or"),
        ({"from": "12345", "kind": "long_code"}, "kind long_code does not match the shape of 'from'"),
        ({"from": "+13125550100", "kind": "messaging_service"}, "needs messaging_service_sid"),
        ({"from": "+13125550100", "pool_size": 3}, "pool_size only apply to a messaging service"),
        ({"messaging_service_sid": "MG123"}, "String should match pattern"),
        ({"from": "TooLongSenderName"}, "must be an E.164 number"),
        ({"from": "+13125550100", "mps": 0}, "greater than 0"),
    ],
)
def test_sender_rejections(sender: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        cfg.Sender.model_validate(sender)
    assert message in str(caught.value)


# ---------------------------------------------------------------------------- webhooks and paths


@pytest.mark.parametrize(
    ("public_url", "status_path", "expected"),
    [
        ("https://n.example.com", "/twilio/status", "https://n.example.com/twilio/status"),
        ("https://n.example.com/", "/twilio/status", "https://n.example.com/twilio/status"),
        ("https://n.example.com/mlc", "/twilio/status", "https://n.example.com/mlc/twilio/status"),
        ("https://n.example.com/mlc/", "/twilio/status/", "https://n.example.com/mlc/twilio/status/"),
        ("http://127.0.0.1:8080", "/cb", "http://127.0.0.1:8080/cb"),
    ],
)
def test_status_callback_url_has_exactly_one_slash(public_url: str, status_path: str, expected: str) -> None:
    webhooks = cfg.WebhookConfig.model_validate({"public_url": public_url, "status_path": status_path})
    assert webhooks.status_callback_url == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status_path", "twilio/status"),
        ("public_url", "https://n.example.com/?a=1"),
        ("public_url", "https://my_host.example.com"),
        ("public_url", "ftp://n.example.com"),
    ],
)
def test_webhook_rejections(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        cfg.WebhookConfig.model_validate({field: value})


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    text = BASE.replace("      senders:", "      ca_bundle: ca.pem\n      senders:") + (
        "store:\n  url: sqlite:///data/outbox.db?timeout=5\n  key_file: keys/mlc.key\n"
    )
    config = cfg.load_config(write(conf_dir, text), ENV)
    assert config.store.url == f"sqlite:///{conf_dir / 'data/outbox.db'}?timeout=5"
    assert config.store.key_file == conf_dir / "keys/mlc.key"
    assert config.sources["erp"].url == f"sqlite:///{conf_dir / 'erp.db'}"
    assert config.sender("main.ops")[0].ca_bundle == conf_dir / "ca.pem"


def test_missing_ca_bundle_is_an_error(tmp_path: Path) -> None:
    text = BASE.replace("      senders:", "      ca_bundle: nowhere.pem\n      senders:")
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'mlc.yaml'}:{line_of(text, 'ca_bundle')}: twilio.accounts.main.ca_bundle: "
        f"CA bundle file not found: {tmp_path / 'nowhere.pem'}"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////var/lib/mlc.db",
        "sqlite:///:memory:",
        "sqlite://",
        "postgresql://mlc@db/mlc",
        "sqlite:///file:x.db?uri=true",
    ],
)
def test_absolute_and_non_file_urls_are_kept(url: str, tmp_path: Path) -> None:
    assert cfg.resolve_sqlite_url(url, tmp_path) == url


def test_sqlite_driver_urls_are_resolved(tmp_path: Path) -> None:
    resolved = cfg.resolve_sqlite_url("sqlite+pysqlite:///a.db", tmp_path)
    assert resolved == f"sqlite+pysqlite:///{tmp_path / 'a.db'}"


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = BASE.replace("  po_approved:\n", "  po_approved: &base\n")
    text += "  copy:\n    <<: *base\n    entity: people\n"
    config = load(tmp_path, text)
    assert config.flows["copy"].entity == "people"
    assert config.flows["copy"].template == config.flows["po_approved"].template

    typo = text.replace("    entity: people\n", "    entity: peple\n")
    assert problems(tmp_path, typo) == [
        f"{tmp_path / 'mlc.yaml'}:{line_of(typo, 'entity: peple')}: flows.copy.entity: "
        "source 'erp' has no entity 'peple'; entities: people, po"
    ]


def test_unknown_top_level_section(tmp_path: Path) -> None:
    text = BASE + "x-defaults: {a: 1}\n"
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'mlc.yaml'}:{line_of(text, 'x-defaults')}: x-defaults: unknown key"
    ]
