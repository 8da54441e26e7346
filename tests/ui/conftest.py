"""The UI tests' browser: headless Chromium driven by selenium through Debian's chromium-driver."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.ui.pages import WINDOW


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium; skips (fails in CI) without chromium, chromium-driver or selenium."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [name for name, found in [("chromium", chromium), ("chromium-driver", chromedriver)] if not found]
    missing += [] if webdriver else ["selenium (pip install -e '.[dev]')"]
    if missing:
        reason = f"needs {', '.join(missing)} (apt-get install chromium chromium-driver; .ci/run does)"
        if _in_ci():
            pytest.fail(f"CI must run the UI test: {reason}")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)  # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield driver
    finally:
        driver.quit()
