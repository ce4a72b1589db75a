"""The headless Chromium both browser test modules drive (skipped, with the reason, without it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A persistent headless Chromium context, closed (with its process) after the module."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                         "(it is in environment.yml; run `make install`)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it (`apt-get install chromium`, which .ci/run does) "
                    "or set $CHROMIUM")
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            viewport={"width": 1400, "height": 1000},
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            yield context
        finally:
            context.close()  # ends the Chromium process Playwright started
