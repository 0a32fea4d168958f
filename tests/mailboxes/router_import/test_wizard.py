"""The wizard's pages through Django's test client (tests/ui/test_migration_wizard.py
walks them in a real browser)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from console.views.migration import EARLIER_SHOWN
from mailboxes.models import Mailbox, RouterMigration, RouterMigrationState
from mailboxes.services import mailbox_update
from profiles.models import EmailServerProfile
from sync.models import Rollout, RolloutItem
from tests import factories
from tests.mailboxes.router_import.routers import BRANCH, CIPHERTEXTS, MAIN, Contoso, memory_files, uploaded

pytestmark = pytest.mark.django_db


def upload_both(client: Client):
    return client.post(
        "/migration/", {"router1": uploaded(MAIN), "router2": uploaded(BRANCH), "router2_name": "Branch"}
    )


def test_the_wizard_from_upload_to_summary(admin_client: Client, contoso: Contoso, frozen_now):
    uploaded_ = upload_both(admin_client)
    migration = RouterMigration.objects.get()
    assert uploaded_.status_code == 302
    assert uploaded_["Location"] == f"/migration/{migration.pk}/profiles/"
    assert [router["name"] for router in migration.review["routers"]] == ["Router 1", "Branch"]

    profiles_page = admin_client.get(f"/migration/{migration.pk}/profiles/").content.decode()
    assert "Select Email Server Profiles to Migrate" in profiles_page
    assert profiles_page.count("Migrate server profile:") == 3
    assert (
        "Router 1, provider entry 4 (Pop3PollingMailboxProvider): POP3 pop.contoso.test:995 (SSL)"
        in profiles_page
    )
    assert "Branch, provider entry 1 (Pop3PollingMailboxProvider)" in profiles_page

    forward = next(p for p in migration.review["profiles"] if p["server_type"] == "exchange_server")
    answered = admin_client.post(f"/migration/{migration.pk}/profiles/", {f"migrate-{forward['key']}": "no"})
    assert answered["Location"] == f"/migration/{migration.pk}/review/"

    review = admin_client.get(f"/migration/{migration.pk}/review/").content.decode()
    assert "Migration Review Summary" in review
    for heading in ("Profiles to create", "Mailboxes to update", "Forward mailboxes to create", "Warnings"):
        assert f"<h2>{heading}</h2>" in review
    assert "What will not be migrated, and why" in review
    assert "for another organization (https://crm.contoso.test/Fabrikam)" in review
    assert "Profiles answered No" in review
    assert _tile(review, "profiles to create") == 2

    started = admin_client.post(f"/migration/{migration.pk}/start/")
    assert started["Location"] == f"/migration/{migration.pk}/"
    summary = admin_client.get(started["Location"]).content.decode()
    migration.refresh_from_db()
    assert migration.state == RouterMigrationState.APPLIED
    created_profiles = EmailServerProfile.objects.filter(description__contains=f"migration {migration.pk}")
    assert _tile(summary, "profiles created") == created_profiles.count() == 2
    assert (
        _tile(summary, "forward mailboxes created") == Mailbox.objects.filter(is_forward_mailbox=True).count()
    )
    assert not Mailbox.objects.filter(email_address="forward@contoso.test").exists()
    for profile in created_profiles:
        assert f"/mailboxes/?profile={profile.pk}&amp;owner=queue" in summary
    assert 'href="/settings/email/"' in summary


def test_test_and_enable_from_the_summary_is_a_rollout_with_queues_first(admin_client: Client, frozen_now):
    upload_both(admin_client)
    migration = RouterMigration.objects.get()
    admin_client.post(f"/migration/{migration.pk}/start/")

    response = admin_client.post(f"/migration/{migration.pk}/rollout/")
    migration.refresh_from_db()

    assert response["Location"] == "/mailboxes/"
    rollout = Rollout.objects.get()
    items = list(RolloutItem.objects.filter(rollout=rollout).order_by("position").select_related("mailbox"))
    migrated = {
        row["id"]
        for key in ("mailboxes_created", "mailboxes_updated", "forward_mailboxes_created")
        for row in migration.result[key]
    }
    assert {item.mailbox_id for item in items} == migrated
    assert items[0].mailbox.queue_id is not None


def test_a_rollout_of_a_migration_not_applied_is_refused_with_a_message(admin_client: Client):
    upload_both(admin_client)
    migration = RouterMigration.objects.get()
    response = admin_client.post(f"/migration/{migration.pk}/rollout/", follow=True)
    assert "only an applied migration has mailboxes to test" in response.content.decode()
    assert not Rollout.objects.exists()


def test_bad_files_are_shown_as_form_errors_and_nothing_is_kept(admin_client: Client):
    files = memory_files()
    response = admin_client.post(
        "/migration/",
        {"router1": [_file("EncryptionKey.xml", files["EncryptionKey.xml"]), _file("notes.txt", b"x")]},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "notes.txt is not an Email Router file" in page
    assert "Microsoft.Crm.Tools.EmailAgent.xml is missing" in page
    assert RouterMigration.objects.count() == 0


def test_abandon_from_the_review(admin_client: Client):
    upload_both(admin_client)
    migration = RouterMigration.objects.get()
    response = admin_client.post(f"/migration/{migration.pk}/abandon/")
    assert response["Location"] == "/migration/"
    migration.refresh_from_db()
    assert migration.state == RouterMigrationState.ABANDONED
    detail = admin_client.get(f"/migration/{migration.pk}/").content.decode()
    assert "Abandoned: nothing was migrated" in detail
    assert admin_client.get(f"/migration/{migration.pk}/review/")["Location"] == f"/migration/{migration.pk}/"


def test_no_page_shows_a_password(admin_client: Client, frozen_now):
    upload_both(admin_client)
    migration = RouterMigration.objects.get()
    pages = [
        admin_client.get(f"/migration/{migration.pk}/{step}").content for step in ("profiles/", "review/", "")
    ]
    admin_client.post(f"/migration/{migration.pk}/start/")
    pages += [
        admin_client.get(f"/migration/{migration.pk}/").content,
        admin_client.get("/migration/").content,
    ]
    for page in pages:
        for ciphertext in CIPHERTEXTS:
            assert ciphertext.encode() not in page


def test_the_earlier_migrations_list_costs_the_same_queries_for_3_and_30(admin_client: Client):
    def queries_for(count: int) -> int:
        RouterMigration.objects.all().delete()
        user = factories.login_user(f"uploader{count}", administrator=True)
        RouterMigration.objects.bulk_create(
            RouterMigration(created_by=user, source="wizard", fingerprint=str(n), review={"counts": {}})
            for n in range(count)
        )
        with CaptureQueriesContext(connection) as captured:
            page = admin_client.get("/migration/").content.decode()
        assert len(set(re.findall(r'href="/migration/(\d+)/"', page))) == min(count, EARLIER_SHOWN)
        return len(captured)

    assert queries_for(3) == queries_for(30)


def _tile(html: str, label: str) -> int:
    found = re.search(rf"<strong>(\d+)</strong>{re.escape(label)}</div>", html)
    assert found, label
    return int(found.group(1))


def _file(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def test_the_test_and_enable_page_shows_which_mailboxes_need_credentials(admin_client: Client, frozen_now):
    upload_both(admin_client)
    admin_client.post(f"/migration/{RouterMigration.objects.get().pk}/start/")

    def marked() -> set[str]:
        page = admin_client.get("/mailboxes/").content.decode()
        rows = re.findall(r'<tr id="mailbox-\d+" data-mailbox="([^"]+)"(.*?)</tr>', page, flags=re.S)
        return {address for address, row in rows if "needs credentials</span>" in row}

    expected = set(Mailbox.objects.filter(needs_credentials=True).values_list("email_address", flat=True))
    assert (
        marked()
        == expected
        == {
            "alice@contoso.test",
            "bob@contoso.test",
            "erin@contoso.test",
            "frank@contoso.test",
            "support@contoso.test",
            "forward@contoso.test",
        }
    )

    # Erin brings her own credentials: entering them clears the mark.
    mailbox_update(
        mailbox=Mailbox.objects.get(email_address="erin@contoso.test"), data={"password": "s3cret"}
    )
    # Alice, Bob and Frank read Exchange Online through Microsoft Graph, where the profile's app
    # registration signs in for all three: entering it clears their marks.
    shared = Mailbox.objects.get(email_address="frank@contoso.test").profile
    shared.oauth_tenant_id = "contoso.onmicrosoft.com"
    shared.oauth_client_id = "11111111-2222-3333-4444-555555555555"
    shared.oauth_client_secret = "app-s3cret"
    shared.save()
    assert marked() == expected - {
        "erin@contoso.test",
        "frank@contoso.test",
        "alice@contoso.test",
        "bob@contoso.test",
    }
    assert not Mailbox.objects.get(email_address="erin@contoso.test").needs_credentials


def test_the_upload_page_says_when_the_organizations_crm_urls_are_missing(admin_client: Client):
    from crm.models import OrganizationSettings

    assert 'id="no-crm-urls"' not in admin_client.get("/migration/").content.decode()
    OrganizationSettings.objects.update(crm_urls="")
    assert 'id="no-crm-urls"' in admin_client.get("/migration/").content.decode()


def test_the_review_says_the_mailboxes_read_the_inbox_and_its_sub_folders(admin_client: Client, frozen_now):
    upload_both(admin_client)
    migration = RouterMigration.objects.get()

    page = admin_client.get(f"/migration/{migration.pk}/review/").content.decode()

    rows = re.findall(r'<tr data-mailbox="([^"]+)">(.*?)</tr>', page, flags=re.S)
    assert len(rows) == len(migration.review["mailboxes"]) == 6
    for address, row in rows:
        assert "<td>Server-Side Synchronization, inbox and sub-folders</td>" in row, address
    alice = dict(rows)["alice@contoso.test"]
    assert "folders Root inbox only → Inbox and sub-folders" in alice
