"""Email Router migrations in the Django admin: listed and shown read-only, the
uploaded files by name, size and checksum, never their contents; a pending one
may be abandoned there."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from mailboxes.models import RouterMigration, RouterMigrationFile, RouterMigrationState
from mailboxes.router_import.service import router_migration_apply, router_migration_create
from tests.mailboxes.router_import.routers import BRANCH, CIPHERTEXTS, MAIN, Contoso, upload

pytestmark = pytest.mark.django_db


def admin_url(view: str, *args: int) -> str:
    return reverse(f"admin:mailboxes_routermigration_{view}", args=args)


def stored_tokens(migration: RouterMigration) -> list[str]:
    return [secret.token for secret in migration.files.values_list("content", flat=True) if secret]


def test_the_list_shows_each_migration_with_its_state_routers_and_review(
    admin_client: Client, contoso: Contoso, frozen_now
):
    pending = router_migration_create(routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api")
    applied = router_migration_apply(
        migration=router_migration_create(routers=[upload(MAIN)], created_by=None, source="command"), by=None
    )

    page = admin_client.get(admin_url("changelist")).content.decode()

    assert admin_client.get(reverse("admin:index")).content.decode().count("Router migrations") == 1
    for migration in (applied, pending):
        assert admin_url("change", migration.pk) in page
    assert "Applied" in page
    assert "Awaiting review" in page
    assert "import_email_router command" in page
    assert f"{MAIN}, {BRANCH}" in page
    assert "3 profiles to create, 3 mailboxes to create, 2 to update, 1 forward mailboxes to create" in page
    pending_only = admin_client.get(admin_url("changelist") + "?state__exact=pending").content.decode()
    assert admin_url("change", pending.pk) in pending_only
    assert admin_url("change", applied.pk) not in pending_only


def test_a_migration_is_shown_read_only_with_its_files_and_no_secret(
    admin_client: Client, contoso: Contoso, frozen_now
):
    migration = router_migration_create(routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api")
    tokens = stored_tokens(migration)
    assert len(tokens) == 6

    response = admin_client.get(admin_url("change", migration.pk))
    page = response.content.decode()

    assert response.status_code == 200
    agent = migration.files.get(router=1, name="Microsoft.Crm.Tools.EmailAgent.xml")
    assert agent.sha256 in page
    assert f"{agent.size:,}" in page or str(agent.size) in page
    assert page.count("held, encrypted") == 6
    assert f'href="/migration/{migration.pk}/"' in page  # the wizard's page of it
    assert 'name="review"' not in page  # shown, not an input
    assert "Save" not in page
    # Neither the encrypted files nor anything read from them beyond the review: the router's CRM
    # account and its log file are in the agent file, never shown.
    for secret in [*tokens, *CIPHERTEXTS, "crmrouter", "emailRouterLog"]:
        assert secret not in page


def test_migrations_are_neither_added_changed_nor_deleted_in_the_admin(
    admin_client: Client, contoso: Contoso, frozen_now
):
    migration = router_migration_create(routers=[upload(MAIN)], created_by=None, source="api")

    assert admin_client.get(admin_url("add")).status_code == 403
    assert admin_client.post(admin_url("change", migration.pk), {"state": "applied"}).status_code == 403
    assert admin_client.get(admin_url("delete", migration.pk)).status_code == 403
    migration.refresh_from_db()
    assert migration.state == RouterMigrationState.PENDING


def test_abandoning_a_pending_migration_in_the_admin_deletes_its_files(
    admin_client: Client, contoso: Contoso, frozen_now
):
    pending = router_migration_create(routers=[upload(MAIN)], created_by=None, source="api")

    response = admin_client.post(
        admin_url("changelist"), {"action": "abandon", "_selected_action": [pending.pk]}, follow=True
    )

    assert "Abandoned 1 migration(s)." in response.content.decode()
    pending.refresh_from_db()
    assert pending.state == RouterMigrationState.ABANDONED
    assert stored_tokens(pending) == []
    assert RouterMigrationFile.objects.filter(migration=pending).count() == 3  # names and checksums stay
    assert admin_client.get(admin_url("change", pending.pk)).content.decode().count(">deleted<") == 3
