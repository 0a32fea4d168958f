"""The Email Router migration wizard in a real browser (Debian's Chromium, Python
Playwright) against the live server: two routers uploaded, the merged profiles
chosen, the review summary (saved as docs/screenshots/migration-review.png),
Start, and the summary leading on to a paced test & enable, queue mailboxes first."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from mailboxes.models import Mailbox, RouterMigration
from profiles.models import EmailServerProfile
from sync.models import RolloutItem
from tests import factories
from tests.mailboxes.router_import.routers import BRANCH, CIPHERTEXTS, MAIN, build_contoso, folder_files
from tests.ui.conftest import screenshot, sign_in


def tile(page: Page, scope: str, label: str) -> int:
    text = page.locator(f"{scope} .tile", has_text=label).locator("strong").inner_text()
    return int(text)


@pytest.mark.usefixtures("transactional_db")
def test_two_routers_from_upload_to_test_and_enable(page: Page):
    contoso = build_contoso()
    factories.login_user("admin", administrator=True)
    profiles_before = EmailServerProfile.objects.count()
    sign_in(page, "admin", start="/migration/", heading="Email Router migration")

    # Upload: router 2 appears with "More Email Routers".
    expect(page.get_by_label("Router 2 files (the three XML files)")).to_be_hidden()
    page.get_by_label("Router 1 files (the three XML files)").set_input_files(folder_files(MAIN))
    page.get_by_role("button", name="More Email Routers").click()
    page.get_by_label("Router 2 files (the three XML files)").set_input_files(folder_files(BRANCH))
    page.get_by_label("Router 2 name (optional)").fill("Branch office")
    page.get_by_role("button", name="Next").click()

    # Select Email Server Profiles to Migrate: every merged profile, with its sources and Yes / No.
    expect(page.get_by_role("heading", name="Select Email Server Profiles to Migrate")).to_be_visible()
    rows = page.locator("table.migration-profiles tr[data-profile]")
    expect(rows).to_have_count(3)  # Exchange Online's entries share one Microsoft Graph profile
    pop3 = rows.filter(has_text="Other (POP3/SMTP)")
    expect(pop3).to_contain_text("Router 1, provider entry 4 (Pop3PollingMailboxProvider)")
    expect(pop3).to_contain_text("Branch office, provider entry 1 (Pop3PollingMailboxProvider)")
    expect(pop3.get_by_label(re.compile(r"Migrate .*: Yes"))).to_be_checked()
    page.get_by_role("button", name="Next").click()

    # Migration Review Summary.
    expect(page.get_by_role("heading", name="Migration Review Summary")).to_be_visible()
    assert tile(page, "#review-counts", "profiles to create") == 3
    assert tile(page, "#review-counts", "forward mailboxes to create") == 1
    expect(page.locator("#user-queue-mailboxes tr[data-mailbox]")).to_have_count(5)
    expect(page.locator("#not-migrated")).to_contain_text("for another organization")
    expect(page.locator("#not-migrated")).to_contain_text("<RetryPolicy> not understood")
    screenshot(page, "migration-review")
    for ciphertext in CIPHERTEXTS:
        assert ciphertext not in page.content()

    # Start: the summary's numbers are what the database now holds.
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("heading", name=re.compile(r"Email Router migration #\d+"))).to_be_visible()
    migration = RouterMigration.objects.get()
    assert migration.state == "applied"
    assert (
        tile(page, "#result-counts", "profiles created")
        == EmailServerProfile.objects.count() - profiles_before
    )
    assert (
        tile(page, "#result-counts", "forward mailboxes created")
        == Mailbox.objects.filter(is_forward_mailbox=True).count()
    )
    updated = Mailbox.objects.filter(pk__in=[contoso.alice_mailbox.pk, contoso.support_mailbox.pk])
    assert (
        tile(page, "#result-counts", "mailboxes updated")
        == updated.exclude(profile=contoso.old_profile).count()
    )
    expect(page.get_by_role("link", name="System Settings > Email")).to_be_visible()

    # Test & enable, queue mailboxes first: a paced rollout shown on the mailboxes page.
    page.get_by_role("button", name=re.compile(r"Test & enable the \d+ migrated mailboxes")).click()
    expect(page.get_by_role("heading", name="Mailboxes", exact=True)).to_be_visible()
    expect(page.locator(".rollouts")).to_be_visible()
    first = RolloutItem.objects.order_by("position").select_related("mailbox").first()
    assert first is not None
    assert first.mailbox.queue_id == contoso.support.pk
    needing = set(Mailbox.objects.filter(needs_credentials=True).values_list("email_address", flat=True))
    marked = page.locator("tr[data-mailbox]", has=page.locator(".needs-credentials"))
    expect(marked).to_have_count(len(needing))
