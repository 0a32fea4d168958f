"""The item-level view and the mailbox page in a real browser, over a database
filled by real sync runs against the test Dovecot (tests/sync/received_mail.py)
and one run that fails for a wrong password. Every number checked on a page is
compared with the test's own SQL; the .eml and the support report are
downloaded as a user would download them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from crm.choices import IncomingMethod
from mailboxes.models import Mailbox
from mailboxes.services import mailbox_update
from sync.incoming import sync_incoming
from tests import factories
from tests.sync.received_mail import ReceivedMail, deliver_and_sync
from tests.sync.stack import Stack
from tests.ui.conftest import screenshot, sign_in

pytestmark = pytest.mark.slow
WRONG_PASSWORD = "Wrong-Pw-5e1c"


def sql(query: str, params: list | None = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return cursor.fetchone()[0]


def on_server(stack: Stack, mailbox: Mailbox, uid: int) -> bytes:
    """The message as the IMAP server holds it, fetched without serversync."""
    with stack.imap(mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        return client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]


def downloaded(page: Page, link: str) -> bytes:
    with page.expect_download() as info:
        page.get_by_role("link", name=link).first.click()
    return Path(info.value.path()).read_bytes()


def check_emails_page(page: Page) -> None:
    messages = sql("SELECT COUNT(DISTINCT message_identity) FROM sync_receipt")
    expect(page.locator("#message-count")).to_have_text(str(messages))
    expect(page.locator("tbody.message")).to_have_count(messages)
    expect(page.locator("tr.receipt")).to_have_count(sql("SELECT COUNT(*) FROM sync_receipt"))
    outcomes = page.locator("nav.outcomes a")
    for index in range(outcomes.count()):
        outcome = outcomes.nth(index).get_attribute("data-outcome")
        count = sql("SELECT COUNT(*) FROM sync_receipt WHERE outcome = %s", [outcome])
        assert outcomes.nth(index).get_attribute("data-count") == str(count), outcome
    tracked = sql(
        "SELECT COUNT(DISTINCT message_identity) FROM sync_receipt"
        " WHERE outcome IN ('tracked', 'linked', 'forwarded')"
    )
    expect(page.locator('tbody.message[data-tracked="yes"]')).to_have_count(tracked)


def check_mailbox_page(page: Page, mailbox: Mailbox) -> None:
    runs = sql("SELECT COUNT(*) FROM sync_syncrun WHERE mailbox_id = %s", [mailbox.pk])
    expect(page.locator("#runs tbody tr[data-run]")).to_have_count(runs)
    received = [int(text) for text in page.locator("#runs td.received").all_inner_texts()]
    assert sum(received) == sql("SELECT COUNT(*) FROM sync_receipt WHERE mailbox_id = %s", [mailbox.pk])
    alerts = sql("SELECT COUNT(*) FROM sync_mailboxalert WHERE mailbox_id = %s", [mailbox.pk])
    expect(page.locator("#alerts tbody tr[data-alert]")).to_have_count(alerts)
    waiting = sql(
        "SELECT COUNT(*) FROM sync_quarantinedmessage WHERE mailbox_id = %s AND state = 'quarantined'",
        [mailbox.pk],
    )
    expect(page.locator("#quarantined-waiting")).to_have_text(str(waiting))
    last_uid = sql(
        "SELECT last_uid FROM sync_foldercursor WHERE mailbox_id = %s AND folder = 'INBOX'", [mailbox.pk]
    )
    expect(page.locator('#cursors tr[data-folder="INBOX"] td.last-uid')).to_have_text(str(last_uid))


def test_the_emails_view_and_a_mailbox_page_after_real_syncs(page: Page, stack: Stack):
    mail: ReceivedMail = deliver_and_sync(stack)
    alice = mail.alice
    password = alice.password.reveal()
    uid = int(
        sql("SELECT server_id FROM sync_quarantinedmessage WHERE mailbox_id = %s", [alice.pk]).split(":")[1]
    )
    raw = on_server(stack, alice, uid)
    # Then her password changes on the server side of things: the next run fails and alerts.
    alice = mailbox_update(mailbox=alice, data={"password": WRONG_PASSWORD})
    sync_incoming(mailbox=Mailbox.objects.get(pk=alice.pk))
    factories.login_user("admin", administrator=True)

    sign_in(page, "admin", start="/emails/", heading="Emails")
    check_emails_page(page)
    expect(page.locator("tbody.message", has_text="Re: Order 1001").locator("td.correlation")).to_have_text(
        "In-Reply-To"
    )
    screenshot(page, "emails")

    page.get_by_role("link", name=alice.email_address).first.click()
    expect(page.get_by_role("heading", name=alice.name)).to_be_visible()
    check_mailbox_page(page, alice)
    expect(page.locator("#disabled-reason")).not_to_be_empty()
    assert downloaded(page, "Download .eml") == raw
    report = downloaded(page, "Download mailbox details").decode()
    assert f"Email address: {alice.email_address}" in report
    assert report.count(" incoming ") == sql(
        "SELECT COUNT(*) FROM sync_syncrun WHERE mailbox_id = %s", [alice.pk]
    )
    shown = page.content()
    for secret in (password, WRONG_PASSWORD):
        assert secret not in report
        assert secret not in shown
    screenshot(page, "mailbox")


def test_reprocess_from_the_mailbox_page_once_the_forwarder_is_fixed(page: Page, stack: Stack):
    mail = deliver_and_sync(stack)
    factories.login_user("admin", administrator=True)
    Mailbox.objects.filter(pk=mail.frank.pk).update(incoming_method=IncomingMethod.FORWARD_MAILBOX)

    sign_in(page, "admin", start=f"/mailboxes/{mail.inbound.pk}/", heading="Quarantined messages")
    check_mailbox_page(page, mail.inbound)
    expect(page.locator("#quarantined-waiting")).to_have_text("1")
    page.get_by_role("button", name="Reprocess").click()

    expect(page.locator(".messages")).to_contain_text("reprocessed: Forwarded")
    check_mailbox_page(page, mail.inbound)
    expect(page.locator("#quarantined-waiting")).to_have_text("0")
    subject = f"Forwarded by {mail.frank.name}"
    owner = sql("SELECT owner_id FROM crm_emailactivity WHERE subject = %s", [subject])
    assert owner == mail.frank.user_id
