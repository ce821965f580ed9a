"""Real-browser tests: Debian's Chromium driven by Playwright against Django's live server.

No browser is downloaded: Playwright launches /usr/bin/chromium (apt package `chromium`, which CI installs).
Without it, or without the playwright package, these tests skip and say why. Screenshots of every page
go to test-artifacts/browser/ (removed by `make clean`); look at them after a change to a page.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# The demo's last day; pages are opened with explicit dates, so "today" never moves the numbers.
DEMO_TODAY = dt.date(2026, 11, 20)
DEMO_SCALE = 0.01  # about 2,400 fact rows: every shape of the demo, loaded in a few seconds


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium package (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed: pip install '.[dev]'")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls (fixtures, expected
    # totals) are plain synchronous code between browser steps, which Django must be told is fine here.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def demo(transactional_db, tmp_path, settings):
    """Northwind at a small scale, committed (the live server's thread reads it), narrow rollups included."""
    from apps.ingestion.demo import load_demo

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return load_demo(DEMO_TODAY, scale=DEMO_SCALE, directory=tmp_path)


@pytest.fixture
def open_as(browser, live_server, client):
    """open_as(email) -> a Playwright page logged in as that demo user, recording console errors."""
    contexts = []

    def login(email: str):
        from django.contrib.auth import get_user_model

        client.force_login(get_user_model().objects.get(email=email))
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
        context.add_cookies(
            [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
        )
        contexts.append(context)
        page = context.new_page()
        page.console_errors = []
        page.on(
            "console", lambda message: message.type == "error" and page.console_errors.append(message.text)
        )
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))
        return page

    yield login
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
