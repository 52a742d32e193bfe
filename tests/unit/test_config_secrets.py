"""`${secret:NAME}` in the config: read from the store, errors name file, line and key, values never shown."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

from ml_connector.config import StoreConfig, load_config, load_store_section
from ml_connector.errors import ConfigError, StoreUnavailable

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "examples" / "sql.yaml").read_text(encoding="utf-8")
TOKEN_LINE = "      auth_token: ${TWILIO_AUTH_TOKEN:-simulator-token}\n"
VALUE = "tw-t0ken-value-98765"


class Reader:
    """Stands in for the store: remembers what it was asked."""

    def __init__(self, values: Mapping[str, str], error: Exception | None = None) -> None:
        self.values, self.error = values, error
        self.asked: list[tuple[str, list[str]]] = []

    def __call__(self, store: StoreConfig, names: Collection[str]) -> Mapping[str, str]:
        self.asked.append((store.url, sorted(names)))
        if self.error is not None:
            raise self.error
        return {n: v for n, v in self.values.items() if n in names}


def write(tmp_path: Path, token: str, *, extra: str = "") -> Path:
    assert TOKEN_LINE in EXAMPLE
    path = tmp_path / "mlc.yaml"
    path.write_text(EXAMPLE.replace(TOKEN_LINE, f"      auth_token: {token}\n") + extra, encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def test_a_secret_fills_the_value(tmp_path: Path) -> None:
    reader = Reader({"TWILIO_TOKEN": VALUE})
    config = load_config(write(tmp_path, "${secret:TWILIO_TOKEN}"), {}, secrets=reader)
    assert config.twilio.accounts["demo"].auth_token.get_secret_value() == VALUE  # type: ignore[union-attr]
    assert reader.asked == [(config.store.url, ["TWILIO_TOKEN"])]
    assert VALUE not in repr(config)


def test_secrets_mix_with_text_and_environment(tmp_path: Path) -> None:
    reader = Reader({"A": "one", "B.x": "two"})
    config = load_config(write(tmp_path, "pre-${secret:A}-${secret:B.x}-${SUFFIX}"), {"SUFFIX": "s"}, secrets=reader)
    assert config.twilio.accounts["demo"].auth_token.get_secret_value() == "pre-one-two-s"  # type: ignore[union-attr]


def test_no_secret_reference_never_opens_the_store(tmp_path: Path) -> None:
    reader = Reader({})
    load_config(write(tmp_path, "plain-token"), {}, secrets=reader)
    assert reader.asked == []


def test_an_unknown_secret_is_a_config_error_naming_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "${secret:TWILIO_TOKEN}")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, secrets=Reader({}))
    line = line_of(path, "${secret:TWILIO_TOKEN}")
    assert caught.value.problems == [
        f"{path}:{line}: twilio.accounts.demo.auth_token: secret TWILIO_TOKEN is not set in the store "
        "(set it with `ml-connector secrets set TWILIO_TOKEN`)"
    ]


def test_an_unreadable_store_is_one_problem_per_use(tmp_path: Path) -> None:
    path = write(tmp_path, "${secret:TWILIO_TOKEN}")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, secrets=Reader({}, StoreUnavailable("store unavailable: connection refused")))
    (problem,) = caught.value.problems
    assert problem.endswith("twilio.accounts.demo.auth_token: secret TWILIO_TOKEN cannot be read: "
                            "store unavailable: connection refused")


def test_a_database_error_shows_its_type_and_the_masked_url_only(tmp_path: Path) -> None:
    path = write(tmp_path, "${secret:T}", extra="")
    text = path.read_text().replace("url: sqlite:///ml-connector.db",
                                    "url: postgresql://mlc:hunter2@db.example.com/mlc")
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, secrets=Reader({}, RuntimeError("could not connect: password hunter2 refused")))
    assert "RuntimeError from the store at postgresql://mlc:****@db.example.com/mlc" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_value_never_appears_in_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "${secret:TWILIO_TOKEN}")
    text = path.read_text().replace("account_sid: ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "account_sid: ${secret:SID}")
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, secrets=Reader({"TWILIO_TOKEN": VALUE, "SID": "not-a-sid-" + VALUE}))
    assert "account_sid" in str(caught.value)
    assert VALUE not in str(caught.value)


def test_secrets_cannot_configure_the_store_they_live_in(tmp_path: Path) -> None:
    path = write(tmp_path, "plain")
    path.write_text(path.read_text().replace("url: sqlite:///ml-connector.db", "url: ${secret:DB_URL}"))
    with pytest.raises(ConfigError, match=r"store\.url: \$\{secret:\.\.\.\} cannot be used in the store section"):
        load_config(path, {}, secrets=Reader({"DB_URL": "sqlite:///x.db"}))


def test_escaped_reference_stays_literal(tmp_path: Path) -> None:
    reader = Reader({})
    config = load_config(write(tmp_path, "$${secret:X}"), {}, secrets=reader)
    assert config.twilio.accounts["demo"].auth_token.get_secret_value() == "${secret:X}"  # type: ignore[union-attr]
    assert reader.asked == []


def test_a_bad_secret_name_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="secret name 'a b' is not usable"):
        load_config(write(tmp_path, "${secret:a b}"), {}, secrets=Reader({}))


def test_the_store_section_loads_while_secrets_are_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "${secret:NOT_SET_YET}")
    section = load_store_section(path, {})
    assert section.url == f"sqlite:///{tmp_path / 'ml-connector.db'}"
    assert section.key_file == tmp_path / "ml-connector.key"


def test_the_store_section_reports_its_own_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "x")
    path.write_text(path.read_text().replace("url: sqlite:///ml-connector.db", "url: ${DB_URL}"))
    with pytest.raises(ConfigError, match=r"store\.url: environment variable DB_URL is not set"):
        load_store_section(path, {})
