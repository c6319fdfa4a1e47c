"""Browser tests: Debian's Chromium, driven by Playwright for Python, against the local stack.

The stack is the e2e one (tests/e2e/conftest.py), started the way `make run` starts it (a second
instance of it when the e2e tests run in the same session); its upload page listens on a free
LAPSE_WEB_PORT, set before this stack starts.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import (
    RunningStack,
    clip_5s,
    clip_150mb,
    media,
    stack,
)
from tests.support import free_port

__all__ = ["clip_5s", "clip_150mb", "media", "stack"]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session", autouse=True)
def web_port() -> Iterator[int]:
    """Autouse, so it is set before the stack starts: the stack process inherits it."""
    before = os.environ.get("LAPSE_WEB_PORT")
    port = free_port()
    os.environ["LAPSE_WEB_PORT"] = str(port)
    yield port
    if before is None:
        os.environ.pop("LAPSE_WEB_PORT", None)
    else:
        os.environ["LAPSE_WEB_PORT"] = before


@pytest.fixture(scope="session")
def web_url(web_port: int, stack: RunningStack) -> str:
    """The stack's upload page, once it answers with this stack's API."""
    url = f"http://127.0.0.1:{web_port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            config = requests.get(f"{url}/config.json", timeout=1).json()
            assert config["api"] == stack.config.api_url, "another stack's page is on this port"
            return url
        except requests.ConnectionError:
            assert time.monotonic() < deadline, (
                "the upload page is not served:\n" + (stack.log.read_text()[-2000:])
            )
            time.sleep(0.2)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("no chromium on PATH (make test installs Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 900, "height": 760})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
