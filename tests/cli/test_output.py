"""Output for people and for scripts: tables fit 80 columns, piped output has no box drawing, NO_COLOR."""

from __future__ import annotations

from rich.text import Text

from ml_connector.cli_output import Column, layout, render
from tests.cli.conftest import Invoke
from tests.cli.test_notifications import filled  # noqa: F401 - the fixture
from tests.support.pipeline import Pipeline

BOX = set("─│┃━┏┓┗┛┡┩└┘├┤┬┴┼╭╮╯╰═║")


async def test_notifications_list_piped_at_80_columns_is_plain_and_whole(filled: Pipeline, invoke: Invoke) -> None:  # noqa: F811
    result = invoke(["-c", str(filled.config_path), "notifications", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    print(result.stdout)
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert not BOX & set(result.stdout)
    assert "\x1b[" not in result.stdout
    header = lines[1].split()
    assert header[:3] == ["id", "flow", "status"]
    rows = [line for line in lines[2:] if line and not line.startswith("    ")]
    assert len(rows) == 4 and all(" po_approved " in row for row in rows)  # flow names whole
    assert {row.split()[2] for row in rows} == {"delivered", "undelivered", "failed"}
    assert "…" not in result.stdout
    # the details, on their own lines, are whole words, not one character a line
    assert "[30006]" in result.stdout and "[21211]" in result.stdout
    assert "person.mobile_phone: empty" in result.stdout.replace("\n", " ").replace("  ", " ")


async def test_no_color_and_terminal_colours(filled: Pipeline, invoke: Invoke) -> None:  # noqa: F811
    coloured = invoke(["-c", str(filled.config_path), "notifications", "list"],
                      env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"})
    plain = invoke(["-c", str(filled.config_path), "notifications", "list"],
                   env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "NO_COLOR": "1"})
    assert "\x1b[3" in coloured.stdout  # a colour (status)
    assert "\x1b[3" not in plain.stdout and "delivered" in plain.stdout


def test_layout_gives_up_room_from_the_least_important_column() -> None:
    columns = [Column("id", right=True), Column("flow"), Column("note", "wrap", 6), Column("detail", "spill")]
    rows = [("1", "a_long_flow_name", "some words here", "x" * 50)]
    assert layout(columns, rows, 200).spilled == []
    narrow = layout(columns, rows, 40)
    assert narrow.spilled == [3] and narrow.widths[1] == len("a_long_flow_name")
    tight = layout(columns, rows, 28)
    assert tight.widths[2] == 6 and tight.widths[1] == 16 and tight.widths[0] == 2
    lines = [t.plain for t in render(columns, rows, 28)]
    assert lines[1].startswith(" 1  a_long_flow_name  some")
    assert lines[2].strip() == "words"
    assert any(line.startswith("    detail: x") for line in lines)


def test_render_keeps_cells_whole_when_they_fit() -> None:
    lines = render([Column("a"), Column("b")], [("x", "y")], 80)
    assert [t.plain for t in lines] == ["a  b", "x  y"]
    assert all(isinstance(t, Text) for t in lines)
