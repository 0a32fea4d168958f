"""The pages keep working under the Content-Security-Policy (no inline script, no
eval): each page a user opens loads and runs without one console error, which is how
a browser reports a script or style it refused."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from profiles.server_types import ServerType
from tests.personas import World
from tests.ui.conftest import sign_in

pytestmark = pytest.mark.slow


@pytest.fixture
def errors(page: Page) -> list[str]:
    """Console errors and uncaught exceptions of the page, as they happen."""
    seen: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # The browser's own favicon probe is no page's request (serversync has none).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            seen.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("pageerror", lambda error: seen.append(str(error)))
    return seen


@pytest.fixture
def people(transactional_db, world: World) -> World:
    return world


def test_the_console_pages_run_without_a_policy_violation(page: Page, people: World, errors: list[str]):
    sign_in(page, "admin", start="/", heading="Dashboard")
    expect(page.locator("figure.chart svg").first).to_be_visible()

    page.goto("/mailboxes/")
    expect(page.get_by_role("heading", name="Mailboxes", exact=True)).to_be_visible()
    # mailboxes.js still runs: "select all" ticks every mailbox of the page.
    page.locator("#select-page").check()
    boxes = page.locator('input[name="mailbox"]')
    assert boxes.count() > 0
    assert all(boxes.nth(n).is_checked() for n in range(boxes.count()))

    page.goto(f"/mailboxes/{people['alice'].mailbox.pk}/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    page.goto("/alerts/")
    expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()

    assert errors == []


def test_the_profile_form_redraws_its_fields_without_eval(page: Page, people: World, errors: list[str]):
    sign_in(page, "admin", start="/profiles/", heading="Email server profiles")
    page.get_by_role("link", name="New profile").click()
    page.get_by_role("link", name="IMAP/SMTP").click()
    page.wait_for_load_state()  # the page's scripts have run
    incoming_port = page.get_by_label("Incoming port")
    expect(incoming_port).to_have_value("993")

    # profile_form.js hands the change to htmx, which fetches the type's fields.
    server_type = page.get_by_label("Server type")
    server_type.select_option(ServerType.POP3_SMTP)
    expect(incoming_port).to_have_value("995")
    server_type.select_option(ServerType.EXCHANGE_ONLINE)
    expect(page.get_by_label("OAuth tenant id")).to_be_visible()
    expect(incoming_port).to_have_count(0)

    assert errors == []


def test_the_admin_site_and_the_api_docs_run_under_the_policy(page: Page, people: World, errors: list[str]):
    sign_in(page, "admin", start="/", heading="Dashboard")
    page.goto("/admin/")
    expect(page.locator("#content h1")).to_be_visible()
    page.goto("/admin/crm/account/add/")
    expect(page.get_by_role("heading", name=re.compile("Add account"))).to_be_visible()

    page.goto("/api/docs/")
    # Swagger UI drew the operations from the schema: its script ran.
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.get_by_text("serversync API").first).to_be_visible()

    assert errors == []
