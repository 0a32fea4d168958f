"""The mailbox test-and-enable page in a real browser: Debian's Chromium driven by
Python Playwright, against the live server, a real Celery worker and the test
Dovecot. A browser that does not launch fails this test; it is never skipped.

The tests run through a real worker subprocess rather than CELERY_TASK_ALWAYS_EAGER:
eager tasks would run inside the POST, so the page would never show a queued or
testing mailbox and the htmx polling would go untested. With a worker, the page
shows what production shows and polls until both tests have finished.
"""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from crm.models import CrmUser
from mailboxes.models import Mailbox
from mailboxes.services import mailbox_update
from tests import factories
from tests.harness.celery_worker import celery_worker
from tests.sync.stack import Stack
from tests.ui.conftest import screenshot, sign_in


def row(page: Page, mailbox: Mailbox) -> Locator:
    return page.locator(f"#mailbox-{mailbox.pk}")


def mark_page(page: Page) -> None:
    """A mark only this document carries: a reload or a navigation would drop it."""
    page.evaluate("window.serversyncTestMark = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.serversyncTestMark === true"), "the page was reloaded"


def test_test_and_enable_shows_one_pass_and_one_fail_with_its_reason(page: Page, stack: Stack):
    factories.login_user("admin", administrator=True)
    good = stack.user_mailbox("good")
    bad = stack.user_mailbox("bad")
    mailbox_update(mailbox=bad, data={"password": "not-the-password"})
    stack.queue_mailbox("support")  # a queue's mailbox, which the filter leaves out
    Mailbox.objects.update(incoming_enabled=False, outgoing_enabled=False)  # as before a first test

    with celery_worker(queues="default"):
        sign_in(page, "admin")
        page.get_by_label("Owner type").select_option("user")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("table.mailboxes tbody tr")).to_have_count(2)
        good_row, bad_row = row(page, good), row(page, bad)
        expect(good_row.locator("td.incoming")).to_have_text("Not Run")
        page.get_by_label(f"Select {good.email_address}").check()
        page.get_by_label(f"Select {bad.email_address}").check()
        mark_page(page)
        page.get_by_role("button", name="Test & enable").click()

        passed = page.locator(f'li.test[data-mailbox="{good.email_address}"]')
        failed = page.locator(f'li.test[data-mailbox="{bad.email_address}"]')
        expect(passed).to_have_attribute("data-state", "passed", timeout=60_000)
        expect(failed).to_have_attribute("data-state", "failed", timeout=60_000)

    expect(page.locator("#progress-panel h2")).to_contain_text("finished")
    # The table's rows followed the tests, in this same page (never reloaded).
    expect(good_row.locator("td.incoming")).to_have_text("Success on")
    expect(good_row.locator("td.outgoing")).to_have_text("Success on")
    expect(good_row.locator("td.last-test .badge")).to_have_text("Passed")
    expect(bad_row.locator("td.incoming")).to_have_text("Failure")
    expect(bad_row.locator("td.last-test .badge")).to_have_text("Failed")
    expect(bad_row.locator("td.last-test .reason")).to_contain_text("uthentication")
    expect(page.get_by_label(f"Select {good.email_address}")).to_be_checked()  # the ticks stay
    assert_not_reloaded(page)
    expect(failed.locator(".reason").first).to_contain_text("uthentication")
    expect(failed.get_by_role("link", name="Fix the credentials").first).to_be_visible()
    screenshot(page, "mailboxes")

    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.incoming_enabled, good.outgoing_enabled) == (True, True)
    assert (bad.incoming_enabled, bad.incoming_status) == (False, "failure")


def test_an_owner_fixes_their_password_from_the_failure_and_passes(page: Page, stack: Stack):
    mailbox = stack.user_mailbox("owner")
    right_password = mailbox.password.reveal()
    mailbox_update(mailbox=mailbox, data={"password": "not-the-password"})
    CrmUser.objects.filter(pk=mailbox.user_id).update(user=factories.login_user("owner"))

    with celery_worker(queues="default"):
        sign_in(page, "owner")
        page.get_by_label(f"Select {mailbox.email_address}").check()
        page.get_by_role("button", name="Test & enable").click()
        failed = page.locator(f'li.test[data-mailbox="{mailbox.email_address}"]')
        expect(failed).to_have_attribute("data-state", "failed", timeout=60_000)

        failed.get_by_role("link", name="Set your credentials").first.click()
        form = page.locator(f"#credentials-{mailbox.pk}")
        expect(form.get_by_label("Password")).to_be_visible()  # the link opened it
        form.get_by_label("Password").fill(right_password)
        form.get_by_role("button", name="Save credentials").click()
        expect(row(page, mailbox).get_by_role("status")).to_have_text(
            "Credentials saved. Test & enable the mailbox to use them."
        )

        mark_page(page)
        page.get_by_label(f"Select {mailbox.email_address}").check()
        page.get_by_role("button", name="Test & enable").click()
        passed = page.locator(f'li.test[data-mailbox="{mailbox.email_address}"]')
        expect(passed).to_have_attribute("data-state", "passed", timeout=60_000)
        expect(row(page, mailbox).locator("td.incoming")).to_have_text("Success on")
        assert_not_reloaded(page)

    mailbox.refresh_from_db()
    assert mailbox.password.reveal() == right_password
    assert (mailbox.incoming_enabled, mailbox.outgoing_enabled) == (True, True)
