"""The two test routers migrated end to end through the service: the profiles
and mailboxes are exactly what the rules in FORMAT.md say, nothing is enabled,
passwords are nowhere, and a second import of the same files creates nothing."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm.choices import ActMethod, IncomingMethod, OutgoingMethod, SyncStatus
from mailboxes.models import FolderScope, Mailbox, RouterMigration, RouterMigrationFile, RouterMigrationState
from mailboxes.router_import.errors import RouterImportError
from mailboxes.router_import.service import (
    router_migration_abandon,
    router_migration_apply,
    router_migration_create,
    router_migration_select,
)
from mailboxes.router_import.text import review_lines
from profiles.models import (
    MICROSOFT_GRAPH_URL,
    AuthProtocol,
    CredentialsSource,
    EmailServerProfile,
    ServerType,
)
from tests.mailboxes.router_import.routers import (
    BRANCH,
    CIPHERTEXTS,
    MAIN,
    Contoso,
    memory_upload,
    minimal_agent,
    upload,
)

pytestmark = pytest.mark.django_db

CUTOFF = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)  # 24 hours before the frozen clock


def migrate(*, by=None) -> RouterMigration:
    migration = router_migration_create(routers=[upload(MAIN), upload(BRANCH)], created_by=by, source="api")
    return router_migration_apply(migration=migration, by=by)


def profile_values(profile: EmailServerProfile) -> dict:
    return {
        "server_type": profile.server_type,
        "incoming": (profile.incoming_server_location, profile.incoming_port, profile.incoming_use_ssl),
        "outgoing": (profile.outgoing_server_location, profile.outgoing_port, profile.outgoing_use_ssl),
        "auth": (profile.incoming_auth_protocol, profile.outgoing_auth_protocol),
        "credentials": (profile.credentials_source, profile.username, bool(profile.password)),
        "process_email_from": profile.process_email_from,
    }


def test_profiles_are_merged_and_shared_as_the_rules_say(contoso: Contoso, frozen_now):
    migrate()

    created = EmailServerProfile.objects.exclude(pk=contoso.old_profile.pk)
    by_mailboxes = {
        tuple(sorted(profile.mailboxes.values_list("email_address", flat=True))): profile_values(profile)
        for profile in created
    }
    assert by_mailboxes == {
        # Exchange Online in + the deployment's SMTP out (Alice and Bob, the router's service
        # account), and Frank's Exchange Online with his own credentials: Exchange Online is
        # Microsoft Graph now, where one app registration signs in for every mailbox, so the
        # router's credentials do not carry over and the three share one profile.
        ("alice@contoso.test", "bob@contoso.test", "frank@contoso.test"): {
            "server_type": ServerType.EXCHANGE_ONLINE,
            "incoming": (MICROSOFT_GRAPH_URL, 443, True),
            "outgoing": (MICROSOFT_GRAPH_URL, 443, True),
            "auth": (AuthProtocol.AUTO, AuthProtocol.AUTO),
            "credentials": (CredentialsSource.OAUTH_CLIENT_CREDENTIALS, "", False),
            "process_email_from": CUTOFF,
        },
        # POP3 + SMTP for the Support queue (router 1) and Erin (router 2, UTF-16): one profile.
        ("erin@contoso.test", "support@contoso.test"): {
            "server_type": ServerType.POP3_SMTP,
            "incoming": ("pop.contoso.test", 995, True),
            "outgoing": ("smtp.contoso.test", 25, False),
            "auth": (AuthProtocol.BASIC, AuthProtocol.BASIC),
            "credentials": (CredentialsSource.USER_OR_QUEUE, "", False),
            "process_email_from": CUTOFF,
        },
        # The forward mailbox: Exchange on premises (not Microsoft's online service) -> Exchange Server.
        ("forward@contoso.test",): {
            "server_type": ServerType.EXCHANGE_SERVER,
            "incoming": ("https://mail.contoso.test/EWS/Exchange.asmx", 443, True),
            "outgoing": ("https://mail.contoso.test/EWS/Exchange.asmx", 443, True),
            "auth": (AuthProtocol.NTLM, AuthProtocol.NTLM),
            "credentials": (CredentialsSource.PROFILE, "CONTOSO\\crmforward", False),
            "process_email_from": CUTOFF,
        },
    }


def test_mailboxes_get_profiles_and_methods_and_nothing_is_enabled(contoso: Contoso, frozen_now):
    migrate()

    rows = {
        m.email_address: (
            m.owner_kind,
            m.incoming_method,
            m.outgoing_method,
            m.act_method,
            m.needs_credentials,
            m.process_email_received_after,
            m.delete_email_after_processing,
        )
        for m in Mailbox.objects.all()
    }
    sss_in, sss_out = IncomingMethod.SERVER_SIDE_SYNC, OutgoingMethod.SERVER_SIDE_SYNC
    assert rows == {
        # Alice's SystemState threshold (1 March) is older than 24 hours back: 24 hours back it is.
        "alice@contoso.test": ("user", sss_in, sss_out, ActMethod.NONE, True, CUTOFF, False),
        "bob@contoso.test": ("user", sss_in, sss_out, ActMethod.NONE, True, CUTOFF, False),
        # Thresholds later than 24 hours back are kept for their mailbox.
        "support@contoso.test": (
            "queue",
            sss_in,
            sss_out,
            ActMethod.NONE,
            True,
            datetime(2025, 3, 10, 8, 0, tzinfo=UTC),
            False,
        ),
        "erin@contoso.test": (
            "user",
            sss_in,
            sss_out,
            ActMethod.NONE,
            True,
            datetime(2025, 3, 10, 9, 30, tzinfo=UTC),
            False,
        ),
        "frank@contoso.test": ("user", sss_in, sss_out, ActMethod.NONE, True, CUTOFF, False),
        # The forward mailbox receives with server-side sync, sends nothing, deletes what it processed.
        "forward@contoso.test": ("forward", sss_in, OutgoingMethod.NONE, ActMethod.NONE, True, CUTOFF, True),
        # Carol's WebDAV profile is not migrated: her mailbox is left as it was.
        "carol@contoso.test": ("user", sss_in, sss_out, ActMethod.NONE, False, None, False),
    }
    assert Mailbox.objects.get(email_address="forward@contoso.test").is_forward_mailbox
    assert Mailbox.objects.get(pk=contoso.carol_mailbox.pk).profile == contoso.old_profile
    migrated = Mailbox.objects.exclude(pk=contoso.carol_mailbox.pk)
    assert not migrated.filter(incoming_enabled=True).exists()
    assert not migrated.filter(outgoing_enabled=True).exists()
    assert set(migrated.values_list("incoming_status", flat=True)) == {SyncStatus.NOT_RUN}
    alice = Mailbox.objects.get(pk=contoso.alice_mailbox.pk)
    assert alice.configuration_generation == contoso.alice_mailbox.configuration_generation + 1
    assert alice.test_completed_on is None


def test_the_review_lists_everything_not_migrated_and_not_understood(contoso: Contoso, frozen_now):
    review = router_migration_create(
        routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api"
    ).review

    counts = review["counts"]
    assert (counts["profiles_to_create"], counts["mailboxes_to_create"], counts["mailboxes_to_update"]) == (
        3,  # Exchange Online's entries share one Graph profile
        3,
        2,
    )
    assert counts["forward_mailboxes_to_create"] == 1
    not_migrated = {item["what"]: item["reason"] for item in review["not_migrated"]}
    assert (
        "another organization (https://crm.contoso.test/Fabrikam)"
        in not_migrated["contoso-main, provider entry 8"]
    )
    assert "WebDAV" in not_migrated["Carol Example"]
    assert "the Email Router's cipher is undocumented" in not_migrated["contoso-main: passwords"]
    assert review["people_skipped"] == [
        "contoso-main, provider entry 9: no CRM user or queue is known by "
        "UserId deadbeef-0000-4000-8000-000000000009 or email address nobody@contoso.test."
    ]
    assert [item["text"] for item in review["not_understood"]] == [
        "<RetryPolicy> not understood",
        '<Priority xmlns="urn:contoso:router-extensions"> not understood',
        "<providerconfiguration> ignored (the Email Router matches ProviderConfiguration "
        "case-sensitively, so it ignored this too)",
    ]
    assert (
        "contoso-main, provider entry 2 (ExchangePollingMailboxProvider): <usessl> read as EmailUseSSL"
        in (review["notes"])
    )
    warnings = [w for profile in review["profiles"] for w in profile["warnings"]]
    assert any("smtp.contoso.test:25 (no SSL) does not use SSL" in w for w in warnings)
    assert any("Exchange incoming with SMTP outgoing" in w for w in warnings)
    assert any("could not be decrypted" in w for w in warnings)


def test_no_password_is_shown_or_stored_anywhere(contoso: Contoso, frozen_now):
    migration = migrate()

    shown = json.dumps([migration.review, migration.result, migration.routers])
    for ciphertext in CIPHERTEXTS:
        assert ciphertext not in shown
    assert not EmailServerProfile.objects.exclude(password="").exists()
    assert not Mailbox.objects.exclude(password="").exists()


def test_files_are_encrypted_while_pending_and_deleted_once_applied(contoso: Contoso, frozen_now):
    migration = router_migration_create(routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT content FROM mailboxes_routermigrationfile WHERE migration_id = %s", [migration.pk]
        )
        stored = [row[0] for row in cursor.fetchall()]
    assert len(stored) == 6
    assert all(token.startswith("gAAAAA") for token in stored)  # Fernet tokens, not the files' text
    assert not any("crm-mail@contoso.test" in token or "Configuration" in token for token in stored)

    router_migration_apply(migration=migration, by=None)

    files = RouterMigrationFile.objects.filter(migration=migration)
    assert list(files.values_list("content", flat=True)) == [""] * 6
    main_agent = files.get(router=1, name="Microsoft.Crm.Tools.EmailAgent.xml")
    assert main_agent.sha256 == main_agent_checksum()
    assert RouterMigration.objects.get(pk=migration.pk).state == RouterMigrationState.APPLIED


def main_agent_checksum() -> str:
    import hashlib

    from tests.mailboxes.router_import.routers import FILES

    return hashlib.sha256((FILES / MAIN / "Microsoft.Crm.Tools.EmailAgent.xml").read_bytes()).hexdigest()


def test_importing_the_same_files_twice_creates_nothing_new(contoso: Contoso, frozen_now):
    first = migrate()
    before = {
        "profiles": list(EmailServerProfile.objects.order_by("pk").values()),
        "mailboxes": list(Mailbox.objects.order_by("pk").values()),
    }

    second = router_migration_create(routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api")
    assert second.review["previously_applied"][0]["id"] == first.pk
    counts = second.review["counts"]
    assert counts["profiles_to_create"] == 0
    assert counts["profiles_reused"] == 3
    assert counts["mailboxes_to_create"] + counts["mailboxes_to_update"] == 0
    assert counts["forward_mailboxes_to_create"] == 0
    router_migration_apply(migration=second, by=None)

    after = {
        "profiles": list(EmailServerProfile.objects.order_by("pk").values()),
        "mailboxes": list(Mailbox.objects.order_by("pk").values()),
    }
    assert after == before
    second.refresh_from_db()
    assert second.result["profiles_created"] == []
    assert second.result["mailboxes_created"] == second.result["mailboxes_updated"] == []
    assert len(second.result["mailboxes_unchanged"]) == 6


def test_a_failure_mid_way_changes_nothing(contoso: Contoso, frozen_now):
    """The database refuses the fourth mailbox (a real trigger, after the profiles and
    some mailboxes were written): the whole migration rolls back."""
    migration = router_migration_create(routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api")
    profiles_before = list(EmailServerProfile.objects.order_by("pk").values())
    mailboxes_before = list(Mailbox.objects.order_by("pk").values())
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION refuse_frank() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'refused by the test for %', NEW.email_address; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_frank BEFORE INSERT ON mailboxes_mailbox
            FOR EACH ROW WHEN (NEW.email_address = 'frank@contoso.test') EXECUTE FUNCTION refuse_frank();
            """
        )

    with pytest.raises(RouterImportError, match="Nothing was migrated: the database refused a step"):
        router_migration_apply(migration=migration, by=None)

    assert list(EmailServerProfile.objects.order_by("pk").values()) == profiles_before
    assert list(Mailbox.objects.order_by("pk").values()) == mailboxes_before
    migration.refresh_from_db()
    assert migration.state == RouterMigrationState.PENDING
    assert "refused by the test for frank@contoso.test" in migration.apply_error
    assert migration.files.exclude(content="").count() == 6  # still there to try again

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_frank ON mailboxes_mailbox; DROP FUNCTION refuse_frank();")
    router_migration_apply(migration=migration, by=None)
    assert Mailbox.objects.filter(email_address="frank@contoso.test").exists()


def test_a_profile_answered_no_is_not_created_and_its_mailboxes_stay(contoso: Contoso, frozen_now):
    migration = router_migration_create(routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api")
    pop3 = next(p for p in migration.review["profiles"] if p["server_type"] == ServerType.POP3_SMTP)

    migration = router_migration_select(migration=migration, selection={pop3["key"]: False})
    assert next(p for p in migration.review["profiles"] if p["key"] == pop3["key"])["migrate"] is False
    router_migration_apply(migration=migration, by=None)

    assert not EmailServerProfile.objects.filter(server_type=ServerType.POP3_SMTP).exists()
    support = Mailbox.objects.get(pk=contoso.support_mailbox.pk)
    assert (support.profile, support.incoming_method) == (None, IncomingMethod.EMAIL_ROUTER)
    assert not Mailbox.objects.filter(email_address="erin@contoso.test").exists()
    assert EmailServerProfile.objects.count() == 1 + 2


def test_an_unknown_profile_key_is_refused(contoso: Contoso, frozen_now):
    migration = router_migration_create(routers=[upload(MAIN)], created_by=None, source="api")
    with pytest.raises(RouterImportError, match="No merged profile has the key nope"):
        router_migration_select(migration=migration, selection={"nope": False})


def test_abandoning_deletes_the_files_and_migrates_nothing(contoso: Contoso, frozen_now):
    migration = router_migration_create(routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api")

    router_migration_abandon(migration=migration, by=None)

    assert EmailServerProfile.objects.count() == 1
    migration.refresh_from_db()
    assert migration.state == RouterMigrationState.ABANDONED
    assert list(migration.files.values_list("content", flat=True)) == [""] * 6
    assert migration.files.count() == 6  # names, sizes and checksums stay
    with pytest.raises(RouterImportError, match="already abandoned"):
        router_migration_apply(migration=migration, by=None)


def test_entries_for_other_urls_of_this_organization_count(contoso: Contoso, frozen_now):
    """Erin's entry says https://crm.contoso.test:443/Contoso (default port, other case):
    the same organization."""
    migration = router_migration_create(routers=[upload(BRANCH)], created_by=None, source="api")
    assert "erin@contoso.test" in {m["email_address"] for m in migration.review["mailboxes"]}


def test_without_the_organizations_crm_urls_nothing_is_migrated(contoso: Contoso, frozen_now):
    from crm.models import OrganizationSettings

    OrganizationSettings.objects.update(crm_urls="")
    review = router_migration_create(routers=[upload(MAIN)], created_by=None, source="api").review

    assert review["profiles"] == review["mailboxes"] == []
    assert "CRM URLs are not set" in review["warnings"][0]


def test_no_password_in_the_log(contoso: Contoso, frozen_now, caplog):
    caplog.set_level(logging.DEBUG)
    migration = router_migration_create(routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api")
    router_migration_select(migration=migration, selection={})
    router_migration_apply(migration=migration, by=None)

    assert "Email Router migration" in caplog.text
    for ciphertext in CIPHERTEXTS:
        assert ciphertext not in caplog.text


def test_held_files_are_re_encrypted_by_key_rotation_and_still_apply(contoso: Contoso, frozen_now, settings):
    from cryptography.fernet import Fernet

    from profiles.rotation import rotate_credentials

    migration = router_migration_create(routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api")
    settings.CREDENTIAL_KEYS = [Fernet.generate_key().decode(), *settings.CREDENTIAL_KEYS]

    assert rotate_credentials()["mailboxes.RouterMigrationFile.content"] == 6
    settings.CREDENTIAL_KEYS = settings.CREDENTIAL_KEYS[:1]  # the old key gone: the files still read
    router_migration_apply(migration=migration, by=None)
    assert Mailbox.objects.filter(email_address="frank@contoso.test").exists()


def test_a_migration_left_pending_is_abandoned_by_the_cleanup_and_its_files_go(
    contoso: Contoso, frozen_now, settings
):
    from sync import retention

    settings.SYNC_RETAIN_PENDING_MIGRATIONS_DAYS = 30
    forgotten = router_migration_create(routers=[upload(MAIN)], created_by=None, source="api")
    recent = router_migration_create(routers=[upload(BRANCH)], created_by=None, source="api")
    RouterMigration.objects.filter(pk=forgotten.pk).update(modified_on=timezone.now() - timedelta(days=31))

    assert retention.cleanup().abandoned_migrations == 1

    forgotten.refresh_from_db()
    recent.refresh_from_db()
    assert (forgotten.state, recent.state) == (RouterMigrationState.ABANDONED, RouterMigrationState.PENDING)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT migration_id, content = '' FROM mailboxes_routermigrationfile"
            " WHERE migration_id IN (%s, %s)",
            [forgotten.pk, recent.pk],
        )
        emptied = {(migration_id, empty) for migration_id, empty in cursor.fetchall()}
    assert emptied == {(forgotten.pk, True), (recent.pk, False)}
    assert forgotten.review["counts"]  # the review is kept


# --- folders: the router read the inbox and its sub-folders ----------------------------------------

CAROL_SENDS_ONLY = """
  <ProviderConfiguration>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.CrmPollingSendEmailProvider</ProviderClass>
    <CrmServerUrl>https://crm.contoso.test/Contoso</CrmServerUrl>
    <UserId>{ca201000-0000-4000-8000-000000000003}</UserId>
    <EmailServerUrl>https://outlook.office365.com/EWS/Exchange.asmx</EmailServerUrl>
    <EmailUseSSL>true</EmailUseSSL>
  </ProviderConfiguration>
"""


def test_migrated_mailboxes_read_the_inbox_and_its_sub_folders_as_the_router_did(
    contoso: Contoso, frozen_now
):
    migrate()

    folders = dict(Mailbox.objects.values_list("email_address", "folders"))
    assert folders == {
        # Created and updated alike, forward mailbox too.
        "alice@contoso.test": FolderScope.INBOX_AND_SUBFOLDERS,
        "bob@contoso.test": FolderScope.INBOX_AND_SUBFOLDERS,
        "support@contoso.test": FolderScope.INBOX_AND_SUBFOLDERS,
        "erin@contoso.test": FolderScope.INBOX_AND_SUBFOLDERS,
        "frank@contoso.test": FolderScope.INBOX_AND_SUBFOLDERS,
        "forward@contoso.test": FolderScope.INBOX_AND_SUBFOLDERS,
        # Not migrated (WebDAV): as it was.
        "carol@contoso.test": FolderScope.ROOT_INBOX,
    }


def test_the_review_says_which_folders_each_mailbox_will_read(contoso: Contoso, frozen_now):
    review = router_migration_create(
        routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api"
    ).review

    rows = {row["email_address"]: row for row in review["mailboxes"]}
    assert {row["folders"] for row in rows.values()} == {"Inbox and sub-folders"}
    assert {row["incoming"] for row in rows.values()} == {
        "Server-Side Synchronization, inbox and sub-folders"
    }
    # An existing mailbox says what changes: Alice's read her root inbox only.
    assert "folders Root inbox only → Inbox and sub-folders" in rows["alice@contoso.test"]["changes"]
    assert any("reads inbox and sub-folders" in line for line in review_lines(review))


def test_a_mailbox_narrowed_to_its_inbox_is_an_update_when_imported_again(contoso: Contoso, frozen_now):
    migrate()
    Mailbox.objects.filter(email_address="bob@contoso.test").update(folders=FolderScope.ROOT_INBOX)

    review = router_migration_create(
        routers=[upload(MAIN), upload(BRANCH)], created_by=None, source="api"
    ).review

    changed = {
        row["email_address"]: row["changes"] for row in review["mailboxes"] if row["action"] == "update"
    }
    assert changed == {"bob@contoso.test": ["folders Root inbox only → Inbox and sub-folders"]}


def test_a_mailbox_the_router_only_sent_for_keeps_its_folders(contoso: Contoso, frozen_now):
    """Carol's one entry here is outgoing: the router never read her mailbox."""
    migration = router_migration_create(
        routers=[memory_upload(agent=minimal_agent(CAROL_SENDS_ONLY))], created_by=None, source="api"
    )
    (row,) = migration.review["mailboxes"]
    assert (row["email_address"], row["folders"], row["incoming"]) == (
        "carol@contoso.test",
        None,
        "unchanged",
    )
    assert not any("folders" in change for change in row["changes"])

    router_migration_apply(migration=migration, by=None)

    carol = Mailbox.objects.get(pk=contoso.carol_mailbox.pk)
    assert (carol.outgoing_method, carol.folders) == (OutgoingMethod.SERVER_SIDE_SYNC, FolderScope.ROOT_INBOX)
