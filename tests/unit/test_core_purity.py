"""core/ stays pure: no I/O modules, no logging, no clock reads (checked on the source AST)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import ml_connector.core

#: Modules core/ must not import (a dotted name bans the module and everything under it).
FORBIDDEN = frozenset({
    "socket", "ssl", "http", "httpx", "aiohttp", "asyncio", "sqlalchemy", "starlette", "uvicorn",
    "os", "subprocess", "pathlib", "time", "random", "requests", "urllib.request", "logging",
})
#: Calls that read the clock.
CLOCK_CALLS = frozenset({("datetime", "now"), ("datetime", "utcnow"), ("date", "today"),
                         ("datetime", "today")})

CORE_DIR = Path(ml_connector.core.__file__).parent
CORE_FILES = sorted(CORE_DIR.glob("*.py"))


def imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def forbidden(module: str) -> bool:
    parts = module.split(".")
    return any(".".join(parts[:i]) in FORBIDDEN for i in range(1, len(parts) + 1))


def clock_calls(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
            if (owner_name, node.func.attr) in CLOCK_CALLS:
                lines.append(node.lineno)
    return lines


def test_core_has_modules_to_check() -> None:
    names = {p.stem for p in CORE_FILES}
    assert {"rules", "watermark", "templates", "lifecycle", "models"} <= names


@pytest.mark.parametrize("info", list(pkgutil.iter_modules(ml_connector.core.__path__)), ids=lambda i: i.name)
def test_every_core_module_imports(info: pkgutil.ModuleInfo) -> None:
    importlib.import_module(f"ml_connector.core.{info.name}")


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = sorted(m for m in imported_modules(tree) if forbidden(m))
    assert not bad, f"{path.name} imports I/O modules: {', '.join(bad)}"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_no_clock_reads(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = clock_calls(tree)
    assert not lines, f"{path.name} reads the clock at line(s) {lines}"


# The checker itself must be able to fail.

@pytest.mark.parametrize(
    "source",
    [
        "import os",
        "import os.path",
        "from os import environ",
        "import urllib.request",
        "from urllib import request",
        "from urllib.request import urlopen",
        "import logging",
        "from http.client import HTTPConnection",
        "import sqlalchemy.orm as orm",
        "import asyncio",
    ],
)
def test_checker_catches_io_imports(source: str) -> None:
    assert any(forbidden(m) for m in imported_modules(ast.parse(source)))


@pytest.mark.parametrize("source", ["import re", "from urllib.parse import urlsplit", "import hashlib",
                                    "from datetime import datetime", "import ossaudiodev_like_name"])
def test_checker_allows_pure_imports(source: str) -> None:
    assert not any(forbidden(m) for m in imported_modules(ast.parse(source)))


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("datetime.now(UTC)", True),
        ("datetime.datetime.utcnow()", True),
        ("date.today()", True),
        ("x = datetime.fromisoformat(s)", False),
        ("'datetime.now( in a string'", False),
    ],
)
def test_checker_catches_clock_calls(source: str, caught: bool) -> None:
    assert bool(clock_calls(ast.parse(source))) is caught
