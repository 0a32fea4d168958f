"""The mailbox test-and-enable page in a real browser: Debian's Chromium driven by
Python Playwright, against the live server, a real Celery worker and the test
Dovecot. A browser that does not launch fails this test; it is never skipped.

The tests run through a real worker subprocess rather than CELERY_TASK_ALWAYS_EAGER:
eager tasks would run inside the POST, so the page would never show a queued or
testing mailbox and the htmx polling would go untested. With a worker, the page
shows what production shows and polls until both tests have finished.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, expect, sync_playwright

from mailboxes.services import mailbox_update
from tests import factories
from tests.harness.celery_worker import celery_worker
from tests.sync.stack import Stack, build_stack

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
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "mailboxes.png"


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
def stack(settings, dovecot, smtp_relay, mail_user) -> Stack:
    return build_stack(settings, dovecot, smtp_relay, mail_user)


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def sign_in(page: Page, username: str) -> None:
    page.goto("/mailboxes/")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Mailboxes")).to_be_visible()


def test_test_and_enable_shows_one_pass_and_one_fail_with_its_reason(page: Page, stack: Stack):
    factories.login_user("admin", administrator=True)
    good = stack.user_mailbox("good")
    bad = stack.user_mailbox("bad")
    mailbox_update(mailbox=bad, data={"password": "not-the-password"})
    stack.queue_mailbox("support")  # a queue's mailbox, which the filter leaves out

    with celery_worker(queues="default"):
        sign_in(page, "admin")
        page.get_by_label("Owner type").select_option("user")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("table.mailboxes tbody tr")).to_have_count(2)
        page.get_by_label(f"Select {good.email_address}").check()
        page.get_by_label(f"Select {bad.email_address}").check()
        page.get_by_role("button", name="Test & enable").click()

        passed = page.locator(f'li.test[data-mailbox="{good.email_address}"]')
        failed = page.locator(f'li.test[data-mailbox="{bad.email_address}"]')
        expect(passed).to_have_attribute("data-state", "passed", timeout=60_000)
        expect(failed).to_have_attribute("data-state", "failed", timeout=60_000)

    expect(page.locator("#progress-panel h2")).to_contain_text("finished")
    expect(failed.locator(".reason").first).to_contain_text("uthentication")
    expect(failed.get_by_role("link", name="Fix the credentials").first).to_be_visible()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.incoming_enabled, good.outgoing_enabled) == (True, True)
    assert (bad.incoming_enabled, bad.incoming_status) == (False, "failure")
