"""The mailbox page's appointments, contacts and tasks in a real browser, after real ACT
runs against Radicale that ended in a conflict (tests/sync/test_act_pages.py): the owner
signs in and reads which field, whose change was dropped, and both values."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from sync.models import ActItemProblem, SyncKind, SyncRun
from tests.sync.test_act_pages import conflicted_mailbox
from tests.ui.conftest import screenshot, sign_in

pytestmark = pytest.mark.slow


def test_the_owner_reads_a_conflict_on_their_mailbox_page(page: Page, radicale, settings):
    mailbox = conflicted_mailbox(radicale, settings)
    conflict = ActItemProblem.objects.get(mailbox=mailbox, kind="conflict")
    sign_in(page, "carol")

    page.goto(f"/mailboxes/{mailbox.pk}/")

    act = page.locator("#act")
    expect(act.get_by_role("heading", name="Appointments, contacts and tasks")).to_be_visible()
    runs = SyncRun.objects.filter(mailbox=mailbox, kind=SyncKind.ACT).count()
    expect(act.locator("#act-runs tr[data-act-run]")).to_have_count(runs)
    expect(act.locator('#act-linked tr[data-entity="appointment"] .linked-count')).to_have_text("1")
    row = act.locator(f'#act-problems tr[data-act-problem="{conflict.pk}"]')
    expect(row).to_contain_text("Budget review")
    expect(row.locator(".conflict")).to_have_text("Location: the server's change was dropped.")
    expect(row.locator(".dropped-value")).to_have_text("Rooftop")
    expect(row.locator(".kept-value")).to_have_text("Board room")
    act.scroll_into_view_if_needed()
    screenshot(page, "mailbox-act")
