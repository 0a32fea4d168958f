"""What every browser test needs: Debian's Chromium driven by Python Playwright
against the live server, the test mail stack, and signing in. A browser that
does not launch fails the test; it is never skipped."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Where screenshot() saves: this variable's folder when set (`make screenshots` points it
# at docs/screenshots/, which the README shows), otherwise a folder in pytest's temporary
# directory, so an ordinary test run leaves the work tree alone.
SCREENSHOTS_ENV = "SERVERSYNC_SCREENSHOTS_DIR"
_screenshots: list[Path] = []  # the folder of this session, set by the fixture below


@pytest.fixture(scope="session", autouse=True)
def screenshots_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder screenshot() saves into for this session (see SCREENSHOTS_ENV)."""
    chosen = os.environ.get(SCREENSHOTS_ENV, "")
    folder = Path(chosen).resolve() if chosen else tmp_path_factory.mktemp("screenshots")
    _screenshots[:] = [folder]
    yield folder
    _screenshots.clear()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop running in this thread, which makes
    # Django refuse the test's own ORM calls; nothing here is really async.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as error:  # whatever the cause: fail the suite with it, never skip
            pytest.fail(f"Chromium ({CHROMIUM}) did not launch: {error}", pytrace=False)
        yield launched
        launched.close()
        # ORM calls made while Playwright's loop ran used connections of that
        # context; close them here, or the test database cannot be dropped.
        connections.close_all()


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def sign_in(page: Page, username: str, *, start: str = "/mailboxes/", heading: str = "Mailboxes") -> None:
    """Sign in through the login form, starting from a page that asks for it."""
    page.goto(start)
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as NAME.png in this session's screenshot folder: a
    temporary one, or docs/screenshots/ (the README shows them) under `make screenshots`."""
    assert _screenshots, "screenshot() runs inside a test of tests/ui/ (the screenshots_dir fixture)"
    folder = _screenshots[0]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
