"""YAML aliases within a budget: an alias bomb or a recursive alias is refused, naming file and line,
before anything walks the expanded data (it once ran `validate` out of memory)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml_connector.config import load_config
from ml_connector.errors import ConfigError
from ml_connector.yaml_guard import AliasBudgetError, check_alias_budget
from tests.cli.conftest import run_cli


def bomb(levels: int, width: int = 9) -> str:
    """The classic: each level lists the one above `width` times (width ** levels values)."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def compose(text: str) -> yaml.Node:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert node is not None
    return node


def test_a_billion_laughs_is_refused_at_the_level_that_crosses_the_budget() -> None:
    with pytest.raises(AliasBudgetError) as caught:
        check_alias_budget(compose(bomb(10)))  # 9 ** 10 values
    assert caught.value.problem_mark is not None
    assert caught.value.problem_mark.line == 4  # l4 is the first level past 10,000 values
    assert "alias" in str(caught.value)


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(AliasBudgetError, match="recursive alias"):
        check_alias_budget(compose("a: &a [1, *a]\n"))
    with pytest.raises(AliasBudgetError, match="recursive alias"):
        check_alias_budget(compose("a: &a {b: {c: *a}}\n"))


@pytest.mark.parametrize("text", [
    "a: 1\n",
    "x: " + "[" * 50 + "]" * 50 + "\n",
    "shared: &s {timeout: 30, retries: 3}\n" + "".join(f"u{i}: {{<<: *s, n: {i}}}\n" for i in range(500)),
    "big: [" + ", ".join(str(i) for i in range(50_000)) + "]\n",  # large, but written out: no budget used
])
def test_ordinary_documents_pass(text: str) -> None:
    check_alias_budget(compose(text))


def test_the_budget_counts_only_what_aliases_add() -> None:
    text = "a: &a [" + ", ".join(["x"] * 99) + "]\nb: [*a, *a]\n"  # each alias adds 100 nodes
    check_alias_budget(compose(text), budget=200)
    with pytest.raises(AliasBudgetError):
        check_alias_budget(compose(text), budget=199)


def test_load_config_refuses_a_bomb_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(6), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:5: ")
    assert "alias" in problem


def test_validate_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(9), encoding="utf-8")
    result = run_cli(["--config", str(path), "validate"])
    assert result.exit_code == 2
    assert f"{path}:5:" in result.output + result.stderr
