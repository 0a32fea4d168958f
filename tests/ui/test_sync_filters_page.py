"""A mailbox's sync filters in a real browser (Debian's Chromium, Python Playwright) against
the live server: from the mailbox page to its filters, a condition added to "My contacts"
with the count of matching records following each change before it is saved, then saved."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from crm.models import Contact
from mailboxes.models import SyncFilter
from mailboxes.sync_filters import matching
from tests import factories
from tests.ui.conftest import screenshot, sign_in


def test_a_user_narrows_their_contacts_filter_and_sees_the_count_change(page: Page):
    alice = factories.crm_user("Alice Example", login=factories.login_user("alice"))
    mailbox = factories.mailbox(user=alice)
    factories.contact(owner=alice, last_name="Ahmed", company_name="Acme Corp")
    factories.contact(owner=alice, last_name="Berg", company_name="Globex")
    factories.contact(owner=alice, last_name="Chen", company_name="ACME Europe")
    factories.contact(owner=factories.crm_user("Bob Other"), company_name="Acme Corp")
    sign_in(page, "alice")

    page.goto(f"/mailboxes/{mailbox.pk}/")
    page.get_by_role("link", name="Sync filters").click()
    expect(page.get_by_role("heading", name="Sync filters")).to_be_visible()
    contacts = page.locator("#entity-contact")
    expect(contacts.locator(".total")).to_have_text("· 3 records sync")
    card = contacts.locator("form.sync-filter")
    count = card.locator(".count")
    expect(count).to_have_text("3 matching records")

    card.get_by_role("button", name="Add a condition").click()
    expect(count).to_contain_text("Condition 1: ")  # a condition with no field yet is not valid
    card.get_by_label("Condition 1 field").select_option("company_name")
    card.get_by_label("Condition 1 operator").select_option("contains")
    card.get_by_label("Condition 1 value").fill("acme")
    expect(count).to_have_text("2 matching records")
    card.get_by_label("Condition 1 value").fill("acme corp")
    expect(count).to_have_text("1 matching record")
    # Anyone's contacts: Bob's Acme Corp contact too. Nothing is saved yet.
    card.get_by_label("Owner").select_option("all")
    expect(count).to_have_text("2 matching records")
    saved = SyncFilter.objects.get(mailbox=mailbox, entity="contact")
    assert saved.criteria == {"owner": "mine", "states": ["active"]}

    card.get_by_label("Owner").select_option("mine")
    card.get_by_label("Condition 1 value").fill("acme")
    expect(count).to_have_text("2 matching records")
    screenshot(page, "sync-filters")
    card.get_by_role("button", name="Save filter").click()
    expect(page.locator(".messages")).to_contain_text("Saved the filter My contacts")
    expect(page.locator("#entity-contact .total")).to_have_text("· 2 records sync")
    assert {c.last_name for c in matching(mailbox, "contact")} == {"Ahmed", "Chen"}
    assert Contact.objects.count() == 4
