"""The dashboard and the alert wall in a real browser, over a database filled by
real sync runs against the test mail stack and a real Celery worker. Every
number checked on a page is compared with the test's own SQL."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from crm.models import EmailActivity
from mailboxes.models import Mailbox
from mailboxes.services import mailbox_update
from sync import outgoing, profile_health, rollups
from sync.incoming import sync_incoming
from tests import factories, messages
from tests.harness.celery_worker import celery_worker
from tests.sync.stack import Stack
from tests.sync.test_engine_outgoing import api_client_for, compose
from tests.ui.conftest import screenshot, sign_in

pytestmark = pytest.mark.slow


def sql(query: str, params: list | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return cursor.fetchone()[0]


def organization_at_work(stack: Stack) -> dict[str, Mailbox]:
    """Four mailboxes synchronized for real: mail stored, a wrong password, an
    interrupted send; roll-ups and the profile health check run as beat would."""
    amy, ben, cat = (stack.user_mailbox(name) for name in ("amy", "ben", "cat"))
    support = stack.queue_mailbox("support")
    for number in range(4):
        stack.deliver(
            amy, messages.simple(subject=f"Quote {number}", sender=ben.email_address, to=amy.email_address)
        )
    stack.deliver(
        support, messages.simple(subject="Help", sender=cat.email_address, to=support.email_address)
    )
    mailbox_update(mailbox=cat, data={"password": "not-the-password"})
    for mailbox in (amy, ben, cat, support):
        sync_incoming(mailbox=Mailbox.objects.get(pk=mailbox.pk))
    maybe = compose(api_client_for(ben), subject="Maybe delivered", to=[amy.email_address])
    stack.relay.drop_next(stage="DATA")
    outgoing.send_pending(mailbox=ben)
    assert EmailActivity.objects.get(pk=maybe.pk).status == EmailActivity.Status.OUTCOME_UNKNOWN
    rollups.rollup_recent()
    profile_health.check_profiles()
    return {"amy": amy, "ben": ben, "cat": cat, "support": support}


def tile(page: Page, label: str) -> int:
    return int(page.get_by_label(label, exact=True).inner_text().split()[0])


def test_the_dashboard_tells_what_is_healthy_and_links_to_what_is_not(page: Page, stack: Stack):
    factories.login_user("admin", administrator=True)
    organization_at_work(stack)

    with celery_worker(queues="default,incoming") as worker:
        sign_in(page, "admin", start="/", heading="Dashboard")
        failing = sql("SELECT COUNT(*) FROM mailboxes_mailbox WHERE incoming_status = 'failure'")
        succeeding = sql("SELECT COUNT(*) FROM mailboxes_mailbox WHERE incoming_status = 'success'")
        assert (failing, succeeding) == (1, 3)
        assert tile(page, "Incoming email: Failure") == failing
        assert tile(page, "Incoming email: Success") == succeeding
        assert tile(page, "Disabled") == sql(
            "SELECT COUNT(*) FROM mailboxes_mailbox WHERE disabled_reason <> ''"
        )
        received = sql("SELECT COALESCE(SUM(received), 0) FROM sync_syncrun")
        expect(page.locator('[data-figure="received"]')).to_have_text(str(received))
        expect(page.locator("#workers")).to_contain_text(worker.hostname)
        expect(page.locator("#queues")).to_contain_text("incoming")
        profile_row = page.locator(f'#profile-health tr[data-profile="{stack.profile.pk}"]')
        expect(profile_row.locator('[data-column="mailboxes"]')).to_have_text(
            str(sql("SELECT COUNT(*) FROM mailboxes_mailbox WHERE profile_id = %s", [stack.profile.pk]))
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT message FROM sync_mailboxalert WHERE profile_id = %s AND level = 'error' "
                "ORDER BY last_seen DESC, id DESC LIMIT 1",
                [stack.profile.pk],
            )
            last_error = cursor.fetchone()[0]
        expect(profile_row).to_contain_text(last_error[:100])  # the last error, in words
        screenshot(page, "dashboard")

    page.get_by_label("Incoming email: Failure", exact=True).click()
    expect(page.get_by_role("heading", name="Mailboxes")).to_be_visible()
    expect(page.locator("table.mailboxes tbody tr")).to_have_count(failing)


def test_the_alert_wall_filters_acknowledges_and_settles_an_unknown_outcome(page: Page, stack: Stack):
    factories.login_user("admin", administrator=True)
    mailboxes = organization_at_work(stack)

    sign_in(page, "admin", start="/alerts/", heading="Alerts")
    open_alerts = sql("SELECT COUNT(*) FROM sync_mailboxalert WHERE resolved_on IS NULL")
    expect(page.locator("tr.alert-row")).to_have_count(open_alerts)
    errors = sql("SELECT COUNT(*) FROM sync_mailboxalert WHERE resolved_on IS NULL AND level = 'error'")
    expect(page.locator('[data-level="error"]')).to_have_text(str(errors))

    page.get_by_label("Search").fill(mailboxes["cat"].email_address)
    page.get_by_role("button", name="Filter").click()
    cat_alerts = sql(
        "SELECT COUNT(*) FROM sync_mailboxalert WHERE resolved_on IS NULL AND mailbox_id = %s",
        [mailboxes["cat"].pk],
    )
    expect(page.locator("tr.alert-row")).to_have_count(cat_alerts)
    cat_row = page.locator("tr.alert-row").first
    cat_row.get_by_role("button", name="Acknowledge").click()
    expect(cat_row.locator('[data-column="state"]')).to_contain_text("Acknowledged")
    assert sql("SELECT COUNT(*) FROM sync_mailboxalert WHERE acknowledged_by_id IS NOT NULL") == 1

    page.goto("/alerts/")
    unknown = page.locator("ul.unknown-outcomes li").filter(has_text="Maybe delivered")
    expect(unknown).to_have_count(1)
    screenshot(page, "alerts")
    unknown.get_by_role("button", name="Resend").click()
    expect(page.locator("ul.unknown-outcomes li").filter(has_text="Queued to send again")).to_be_visible()
    assert sql("SELECT COUNT(*) FROM crm_emailactivity WHERE status = 'pending_send'") == 1
    page.reload()
    expect(page.get_by_text("Maybe delivered")).to_have_count(0)  # its alert resolved
    assert not re.search(r"outcome_unknown", page.content())
