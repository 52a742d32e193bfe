"""Tables for people that fit the terminal, and plain text when the output is piped.

A table is columns with a priority and a way to give up room: `keep` (never wrapped: ids, flow
names, statuses), `wrap` (wrapped at spaces down to a minimum width) or `spill` (moved to an
indented line under its row). The least important columns give up room first, until the row
fits the width. Nothing here draws boxes, so `| cat`, `| grep` and `| less` read the same text a
terminal shows; colour comes only on a terminal and never with NO_COLOR set.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

Fit = Literal["keep", "wrap", "spill"]
GAP = 2
INDENT = "    "


def console(*, stderr: bool = False) -> Console:
    """A console for this command's output: the terminal's width (COLUMNS when piped, else 80),
    colour only on a terminal and never when NO_COLOR is set (https://no-color.org)."""
    return Console(stderr=stderr, highlight=False, no_color=os.environ.get("NO_COLOR", "") != "",
                   soft_wrap=False)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    fit: Fit = "keep"
    min_width: int = 8
    right: bool = False


@dataclass
class Layout:
    """Which columns stay on the row, at which widths, and which spill under it."""

    widths: dict[int, int] = field(default_factory=dict)
    spilled: list[int] = field(default_factory=list)

    def total(self) -> int:
        return sum(self.widths.values()) + GAP * max(len(self.widths) - 1, 0)


def layout(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> Layout:
    """Fit `columns` (most important first) into `width`, giving up room from the last one back."""
    natural = {i: max([len(c.name), *(max((len(x) for x in r[i].splitlines()), default=0) for r in rows)])
               for i, c in enumerate(columns)}
    plan = Layout(dict(natural))
    for i in reversed(range(len(columns))):
        excess = plan.total() - width
        if excess <= 0:
            break
        column = columns[i]
        if column.fit == "spill":
            del plan.widths[i]
            plan.spilled.insert(0, i)
        elif column.fit == "wrap":
            plan.widths[i] = max(column.min_width, len(column.name), natural[i] - excess)
    return plan


def _cell_lines(text: str, width: int, fit: Fit) -> list[str]:
    if fit != "wrap":
        return text.splitlines() or [""]
    lines: list[str] = []
    for part in text.splitlines() or [""]:
        lines += textwrap.wrap(part, width, break_on_hyphens=False) or [""]
    return lines


def render(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int,
           styles: Sequence[Mapping[int, str]] = ()) -> list[Text]:
    """The table as lines of text; `styles[row][column]` colours a cell (shown on terminals only)."""
    plan = layout(columns, rows, width)
    kept = list(plan.widths)
    out: list[Text] = []

    def line(cells: Sequence[list[str]], k: int, style_of: Mapping[int, str], header: bool) -> Text:
        text = Text(no_wrap=True, overflow="ignore")
        for n, i in enumerate(kept):
            value = cells[n][k] if k < len(cells[n]) else ""
            pad = plan.widths[i] - len(value)
            cell = " " * pad + value if columns[i].right else value + " " * pad
            if n == len(kept) - 1:
                cell = cell.rstrip()
            text.append(cell, style="bold" if header else style_of.get(i, ""))
            if n < len(kept) - 1:
                text.append(" " * GAP)
        return text

    out.append(line([[columns[i].name] for i in kept], 0, {}, True))
    for r, row in enumerate(rows):
        style_of = styles[r] if r < len(styles) else {}
        cells = [_cell_lines(row[i], plan.widths[i], columns[i].fit) for i in kept]
        for k in range(max(len(c) for c in cells) if cells else 1):
            out.append(line(cells, k, style_of, False))
        spilled = [(i, f"{columns[i].name}: {row[i]}") for i in plan.spilled if row[i]]
        if spilled:  # one indented line (wrapped) for all of them: "    created: ...  detail: ..."
            text = Text(INDENT, no_wrap=True, overflow="ignore")
            for n, (i, part) in enumerate(spilled):
                text.append(("  " if n else "") + part, style=style_of.get(i, ""))
            out += [Text(INDENT + line if k else line) if isinstance(line, str) else line
                    for k, line in enumerate(_wrap_text(text, width))]
    return out


def _wrap_text(text: Text, width: int) -> list[Text | str]:
    """A continuation line, wrapped at spaces to `width` (its styles kept on the first line)."""
    if len(text.plain) <= width:
        return [text]
    parts = textwrap.wrap(text.plain[len(INDENT):], max(width - len(INDENT), 20), break_on_hyphens=False)
    return [Text(INDENT + parts[0]), *parts[1:]]


def print_table(out: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], *,
                title: str | None = None, styles: Sequence[Mapping[int, str]] = ()) -> None:
    """Print a table at the console's width; the title (if any) on its own line first."""
    if title:
        out.print(Text(title, style="bold"))
    for text in render(columns, rows, out.width, styles):
        out.print(text, overflow="ignore", crop=False)


def print_rich_table(table: Table, out: Console | None = None) -> None:
    """A rich table (boxes and colours on a terminal); piped, plain text without box drawing."""
    out = out or console()
    if not out.is_terminal:
        table.box = None
        table.show_edge = False
    out.print(table)
