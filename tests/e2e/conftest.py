"""Browser fixtures: Playwright drives Debian's Chromium against pytest-django's live server.

`playwright install` is never needed: the browser is the system package at CHROMIUM_PATH.
Tests here are marked `e2e`; tests/conftest.py skips them, or fails them in CI, when the
browser or Playwright is missing. When a test fails, every page still open in its browser
is saved as a PNG under CPR_E2E_SCREENSHOT_DIR (a new temporary folder when unset), and
the failure report lists the files.
"""

import os
import re
import tempfile
from pathlib import Path

import pytest
from django.db import connections

from tests.conftest import CHROMIUM_PATH

# The live server listens on the loopback address only.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


SCREENSHOT_DIR_VARIABLE = "CPR_E2E_SCREENSHOT_DIR"


def save_screenshots(browser, test_name: str) -> list[str]:
    """Save a full-page PNG of every open page of `browser`; return one line per page."""
    from playwright.sync_api import Error as PlaywrightError

    folder = os.environ.get(SCREENSHOT_DIR_VARIABLE)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    else:
        folder = tempfile.mkdtemp(prefix="cpr-e2e-")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name)
    lines = []
    for context_number, context in enumerate(browser.contexts, start=1):
        for page_number, page in enumerate(context.pages, start=1):
            path = Path(folder) / f"{stem}-context{context_number}-page{page_number}.png"
            try:
                page.screenshot(path=path, full_page=True)
            except PlaywrightError as error:
                lines.append(f"{page.url}: screenshot failed: {error}")
            else:
                lines.append(f"{page.url}: {path}")
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Screenshot the open pages when a test fails, while its fixtures are still alive."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    browser = item.funcargs.get("browser")
    if browser is None:
        return
    lines = save_screenshots(browser, item.name)
    if lines:
        report.sections.append(("Screenshots of the open pages", "\n".join(lines)))


@pytest.fixture
def browser(monkeypatch):
    """Yield a headless Chromium, started and closed around one test."""
    # Playwright's sync API keeps an asyncio loop running in this thread, and Django
    # refuses ORM calls from a thread with a running loop unless this is set. The test
    # still runs its ORM calls one at a time, so the check guards nothing here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
            # While the loop runs, asgiref keys Django's connections by asyncio context
            # instead of by thread, so the test's ORM calls opened connections of their
            # own. Close them now: once the loop stops they are unreachable and stay
            # open, which keeps the test database from being dropped.
            connections.close_all()


@pytest.fixture
def page(browser):
    """Yield a fresh browser page with a desktop viewport and US English locale."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
