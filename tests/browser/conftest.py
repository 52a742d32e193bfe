"""Browser tests: Playwright for Python driving the system's Chromium (Debian's `chromium`).

No browser is downloaded: the tests use `MLC_CHROMIUM` or /usr/bin/chromium and skip when
neither exists, except under MLC_REQUIRE_BROWSER=1 (CI installs the package and sets it; see
.ci/run). With MLC_DASHBOARD_SCREENSHOTS=DIR the tests save the overview and a journey there
(the README's pictures, docs/dashboard-*.png, are made so).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("MLC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def screenshot_dir() -> Path | None:
    where = os.environ.get("MLC_DASHBOARD_SCREENSHOTS")
    return Path(where) if where else None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set MLC_CHROMIUM)"
        if os.environ.get("MLC_REQUIRE_BROWSER"):
            pytest.fail(missing + "; MLC_REQUIRE_BROWSER is set")
        pytest.skip(missing)
    playwright = pytest.importorskip("playwright.async_api")
    async with playwright.async_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()
