"""Headless Debian Chromium driven by Playwright (never a downloaded browser), collecting console errors."""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--disable-component-update", "--no-first-run", "--disable-sync"]


@contextlib.contextmanager
def open_page(url: str, profile: Path) -> Iterator[tuple[Any, list[str]]]:
    """Yields (page, errors): errors collects console errors and uncaught page exceptions."""
    assert shutil.which(CHROMIUM), "Debian chromium must be installed (.ci/run installs it)"
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                       args=FLAGS)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        try:
            yield page, errors
        finally:
            context.close()


def keep_screenshot(page: Any, name: str) -> None:
    """With EDGEPIPE_SCREENSHOTS=DIR, the first screen of the page is kept as DIR/name (the README's pictures are
    made this way)."""
    folder = os.environ.get("EDGEPIPE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name))
