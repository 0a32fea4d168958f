"""The email server profile form in a real browser (Debian's Chromium, Python
Playwright) against the live server and the test Dovecot and SMTP relay: a new
profile, its type switched (ports follow, fields that do not apply go), a field
error, saved, and its connection tested."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from profiles.models import MICROSOFT_GRAPH_URL, CredentialsSource, EmailServerProfile, ServerType
from tests import factories
from tests.sync.stack import Stack
from tests.ui.conftest import screenshot, sign_in


def test_create_a_profile_switching_types_see_an_error_save_and_test_it(page: Page, stack: Stack, mail_user):
    factories.login_user("admin", administrator=True)
    account = mail_user("service")
    sign_in(page, "admin", start="/profiles/", heading="Email server profiles")

    page.get_by_role("link", name="New profile").click()
    page.get_by_role("link", name="IMAP/SMTP").click()
    incoming_port, outgoing_port = page.get_by_label("Incoming port"), page.get_by_label("Outgoing port")
    expect(incoming_port).to_have_value("993")
    expect(outgoing_port).to_have_value("465")
    expect(page.get_by_label("Auto discover server location")).to_have_count(0)

    # Another type: its usual ports; Exchange Online: no ports, its own fields, Microsoft Graph.
    server_type = page.get_by_label("Server type")
    server_type.select_option(ServerType.POP3_SMTP)
    expect(incoming_port).to_have_value("995")
    server_type.select_option(ServerType.EXCHANGE_ONLINE)
    expect(incoming_port).to_have_count(0)
    expect(page.get_by_label("OAuth tenant id")).to_be_visible()
    expect(page.get_by_label("OAuth certificate")).to_be_visible()
    expect(page.get_by_label("Incoming server location")).to_have_value(MICROSOFT_GRAPH_URL)
    server_type.select_option(ServerType.EXCHANGE_SERVER)
    expect(page.get_by_label("Auto discover server location")).to_be_visible()
    server_type.select_option(ServerType.IMAP_SMTP)
    expect(incoming_port).to_have_value("993")
    expect(page.get_by_label("Incoming server location")).to_have_value("")
    expect(page.get_by_label("Move failed emails to Undeliverable folder")).to_have_count(0)

    page.get_by_label("Name", exact=True).fill("Company mail")
    page.get_by_label("Incoming server location").fill(stack.dovecot.host)
    incoming_port.fill(str(stack.dovecot.imaps_port))
    page.get_by_label("Outgoing server location").fill(stack.relay.host)
    outgoing_port.fill(str(stack.relay.port))

    # The profile's own credentials bring their fields; a password typed survives a redraw.
    expect(page.get_by_label("User name", exact=True)).to_have_count(0)
    page.get_by_label("Authenticate using").select_option(CredentialsSource.PROFILE)
    page.get_by_label("User name", exact=True).fill(account.address)
    page.get_by_label("Password", exact=True).fill(account.password)
    same = page.get_by_label("Use same settings for outgoing")
    same.uncheck()
    expect(page.get_by_label("Outgoing user name")).to_be_visible()
    same.check()
    expect(page.get_by_label("Outgoing user name")).to_have_count(0)
    expect(page.get_by_label("Password", exact=True)).to_have_value(account.password)

    # A value the model refuses: the error shows on its field, nothing is saved.
    page.get_by_label("Connection timeout seconds").fill("500")
    page.get_by_role("button", name="Create profile").click()
    timeout_field = page.locator('[data-field="connection_timeout_seconds"]')
    expect(timeout_field.locator(".errorlist")).to_contain_text("less than or equal to 100")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")  # never sent back
    assert not EmailServerProfile.objects.filter(name="Company mail").exists()

    page.get_by_label("Connection timeout seconds").fill("10")
    page.get_by_label("Password", exact=True).fill(account.password)
    page.get_by_role("button", name="Create profile").click()
    expect(page.locator(".messages")).to_contain_text("Created the profile Company mail")
    expect(page.locator('[data-field="password"] .secret-state')).to_contain_text("A password is stored")

    page.get_by_role("button", name="Test connection").click()
    results = page.locator("#test-results")
    expect(results.locator('li[data-direction="incoming"]')).to_have_attribute("data-outcome", "success")
    expect(results.locator('li[data-direction="outgoing"]')).to_have_attribute("data-outcome", "success")
    expect(results.locator("h2 .badge")).to_have_text("Success")
    assert account.password not in page.content()
    screenshot(page, "profile-form")

    saved = EmailServerProfile.objects.get(name="Company mail")
    assert urlsplit(page.url).path == f"/profiles/{saved.pk}/"
    assert (saved.server_type, saved.incoming_port, saved.outgoing_port) == (
        ServerType.IMAP_SMTP,
        stack.dovecot.imaps_port,
        stack.relay.port,
    )
    assert saved.password.reveal() == account.password
    assert saved.last_test_result == "success"
