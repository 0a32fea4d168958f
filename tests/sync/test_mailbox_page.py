"""The mailbox page (/mailboxes/<id>/) after real sync runs against the test
Dovecot: runs, cursors and quarantine as the test counts them itself; the
quarantined message downloaded as the server holds it, and reprocessed once the
cause is fixed; the support report; no credential anywhere; flat queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.choices import IncomingMethod
from crm.models import EmailActivity
from mailboxes.models import FolderScope, Mailbox
from mailboxes.services import mailbox_update
from profiles.models import CredentialsSource, EmailServerProfile, ServerType
from sync.connectors import registry
from sync.incoming import sync_incoming
from sync.models import MailboxAlert, QuarantinedMessage, QuarantineState, Receipt, ReceiptOutcome, SyncRun
from tests import factories, messages
from tests.personas import World
from tests.sync.received_mail import ReceivedMail, signed_in
from tests.sync.stack import Stack
from tests.test_secrets import SECRETS

pytestmark = pytest.mark.django_db


def cells(page: str, css_class: str) -> list[int]:
    return [int(n) for n in re.findall(rf'<td class="n {css_class}">(\d+)</td>', page)]


def test_the_page_shows_what_the_runs_did(mail: ReceivedMail, stack: Stack):
    alice = mail.alice
    page = signed_in("alice", mailbox=alice).get(f"/mailboxes/{alice.pk}/").content.decode()

    runs = SyncRun.objects.filter(mailbox=alice)
    assert page.count("data-run=") == runs.count() == 2
    receipts = Receipt.objects.filter(mailbox=alice)
    assert sum(cells(page, "received")) == receipts.count()
    assert sum(cells(page, "tracked")) == receipts.filter(outcome=ReceiptOutcome.TRACKED).count()
    assert sum(cells(page, "quarantined")) == receipts.filter(outcome=ReceiptOutcome.QUARANTINED).count()
    waiting = QuarantinedMessage.objects.filter(mailbox=alice, state=QuarantineState.QUARANTINED).count()
    assert f'<strong id="quarantined-waiting">{waiting}</strong>' in page
    with stack.imap(alice) as client:
        client.select_folder("INBOX", readonly=True)
        last_uid = max(client.search("ALL"))
    assert re.search(rf'data-folder="INBOX">.*?<td class="last-uid">{last_uid}</td>', page, re.S)
    assert "Success" in page


def test_the_quarantined_message_downloads_as_the_server_holds_it(mail: ReceivedMail, stack: Stack):
    alice = mail.alice
    held = QuarantinedMessage.objects.get(mailbox=alice)
    client = signed_in("alice", mailbox=alice)
    assert (
        f"/mailboxes/quarantined/{held.pk}/message.eml"
        in client.get(f"/mailboxes/{alice.pk}/").content.decode()
    )

    response = client.get(f"/mailboxes/quarantined/{held.pk}/message.eml")

    assert response["Content-Type"] == "message/rfc822"
    assert response["Content-Disposition"] == f'attachment; filename="quarantined-{held.pk}.eml"'
    uid = int(held.server_id.split(":")[1])
    with stack.imap(alice) as imap:
        imap.select_folder("INBOX", readonly=True)
        on_server = imap.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    assert b"".join(response.streaming_content) == on_server


def test_reprocess_from_the_page_once_the_cause_is_fixed(mail: ReceivedMail):
    admin = signed_in("admin", administrator=True)
    held = QuarantinedMessage.objects.get(mailbox=mail.inbound)
    assert held.error_code == "forward_user_not_forwarding"
    Mailbox.objects.filter(pk=mail.frank.pk).update(incoming_method=IncomingMethod.FORWARD_MAILBOX)

    response = admin.post(f"/mailboxes/quarantined/{held.pk}/reprocess/", follow=True)

    assert response.redirect_chain == [(f"/mailboxes/{mail.inbound.pk}/", 302)]
    assert f"Message #{held.pk} reprocessed: Forwarded" in response.content.decode()
    held.refresh_from_db()
    assert held.state == QuarantineState.REPROCESSED
    email = EmailActivity.objects.get(subject=f"Forwarded by {mail.frank.name}")
    assert email.owner == mail.frank.user
    assert Receipt.objects.filter(mailbox=mail.inbound, outcome=ReceiptOutcome.FORWARDED).count() == 2


def test_a_message_that_still_fails_stays_quarantined_with_the_reason(mail: ReceivedMail):
    alice = mail.alice
    held = QuarantinedMessage.objects.get(mailbox=alice)

    response = signed_in("alice", mailbox=alice).post(
        f"/mailboxes/quarantined/{held.pk}/reprocess/", follow=True
    )

    assert (
        f"Message #{held.pk} is still quarantined: The message has no headers." in response.content.decode()
    )
    held.refresh_from_db()
    assert (held.state, held.attempts) == (QuarantineState.QUARANTINED, 2)


def test_the_support_report(mail: ReceivedMail):
    alice = mail.alice
    response = signed_in("alice", mailbox=alice).get(f"/mailboxes/{alice.pk}/details.txt")

    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment;")
    report = response.content.decode()
    assert f"Email address: {alice.email_address}" in report
    assert f"Owner: User: {alice.user.full_name}" in report
    for run in SyncRun.objects.filter(mailbox=alice):
        assert f"received {run.received}, tracked {run.tracked}" in report
    held = QuarantinedMessage.objects.get(mailbox=alice)
    assert f"#{held.pk} INBOX {held.server_id}" in report
    # The versions running are an administrator's (tests/security/test_headers.py).
    assert "== Versions ==" not in report
    assert "serversync: 0.1.0" not in report
    # The profile's own settings are an administrator's; its owner sees its name.
    assert f"Name: {alice.profile.name}" in report
    assert "Incoming port" not in report


def test_a_message_over_the_size_limit_has_nothing_to_download_or_reprocess(world: World):
    mailbox = world["alice"].mailbox
    held = factories.quarantined_message(mailbox=mailbox, error_code="too_large")
    client = Client()
    client.force_login(world["alice"].login)
    row = re.search(
        rf'data-quarantined="{held.pk}".*?</tr>',
        client.get(f"/mailboxes/{mailbox.pk}/").content.decode(),
        re.S,
    )
    assert row is not None
    assert "not downloaded" in row[0]
    assert "Reprocess" not in row[0]
    assert client.get(f"/mailboxes/quarantined/{held.pk}/message.eml").status_code == 404
    response = client.post(f"/mailboxes/quarantined/{held.pk}/reprocess/", follow=True)
    assert "is still quarantined: The message was not downloaded" in response.content.decode()


# --- credentials -------------------------------------------------------------------------------


def _with_secrets(world: World) -> Mailbox:
    """Every secret the profile and alice's mailbox can hold, and a server that echoed one."""
    EmailServerProfile.objects.filter(pk=world.profile.pk).update(
        credentials_source=CredentialsSource.USER_OR_QUEUE, username="svc@contoso.test"
    )
    profile = EmailServerProfile.objects.get(pk=world.profile.pk)
    profile.password = SECRETS["password"]
    profile.outgoing_password = SECRETS["outgoing_password"]
    profile.oauth_client_secret = SECRETS["oauth_client_secret"]
    profile.save()
    mailbox = mailbox_update(mailbox=world["alice"].mailbox, data={"password": SECRETS["mailbox"]})
    echoed = f"LOGIN alice {SECRETS['mailbox']} rejected"
    factories.sync_run(
        mailbox=mailbox, outcome="failed", error_code="authentication_failed", error_text=echoed
    )
    factories.alert(mailbox=mailbox, message=echoed)
    Mailbox.objects.filter(pk=mailbox.pk).update(
        last_sync_error_code="authentication_failed", last_sync_error_text=echoed
    )
    return mailbox


def test_no_credential_is_shown_on_the_page_or_in_the_report(world: World):
    mailbox = _with_secrets(world)
    stored = Mailbox.objects.get(pk=mailbox.pk).password.token
    for persona in ("admin", "alice"):
        client = Client()
        client.force_login(world[persona].login)
        for url in (f"/mailboxes/{mailbox.pk}/", f"/mailboxes/{mailbox.pk}/details.txt"):
            text = client.get(url).content.decode()
            for label, secret in SECRETS.items():
                assert secret not in text, f"the {label} secret appears in {url} for {persona}"
            assert stored[:40] not in text  # nor the ciphertext
            assert "LOGIN alice ******** rejected" in text
    report = Client()
    report.force_login(world["admin"].login)
    text = report.get(f"/mailboxes/{mailbox.pk}/details.txt").content.decode()
    assert "Mailbox password: set" in text
    assert "Profile OAuth client secret: set" in text
    assert "Profile user name: set" in text


def test_the_mailbox_list_links_each_row_to_its_page(world: World):
    client = Client()
    client.force_login(world["quinn"].login)
    page = client.get("/mailboxes/").content.decode()
    for mailbox in (world["quinn"].mailbox, world.queue_mailbox):
        assert f'href="/mailboxes/{mailbox.pk}/">{mailbox.email_address}</a>' in page


# --- flat queries ------------------------------------------------------------------------------


def _queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def _history(mailbox: Mailbox, count: int) -> None:
    """``count`` rows of each kind the page lists."""
    now = timezone.now()
    for number in range(count):
        started = now - timedelta(minutes=number)
        factories.sync_run(mailbox=mailbox, started_on=started, received=number)
        factories.alert(mailbox=mailbox, last_seen=started)
        factories.quarantined_message(mailbox=mailbox, raw=b"Subject: x\r\n\r\nbody\r\n")
        factories.folder_cursor(mailbox=mailbox, folder=f"INBOX/{number:03d}-{count}")


@pytest.mark.parametrize("url", ["/mailboxes/{pk}/", "/mailboxes/{pk}/details.txt"])
def test_the_mailbox_page_queries_do_not_grow_with_its_rows(world: World, url: str):
    mailbox = world["alice"].mailbox
    client = Client()
    client.force_login(world["admin"].login)
    _history(mailbox, 3)
    few = _queries_for(client, url.format(pk=mailbox.pk))
    _history(mailbox, 27)
    assert MailboxAlert.objects.filter(mailbox=mailbox).count() == 31
    assert _queries_for(client, url.format(pk=mailbox.pk)) == few


# --- which folders the mailbox reads ------------------------------------------------------------


def folders_row(page: str) -> str:
    """The "Folders to process" row as the reader sees it: tags gone, spaces collapsed."""
    row = re.search(r'<tr id="folders">(.*?)</tr>', page, re.S)
    assert row is not None
    return " ".join(re.sub(r"<[^>]+>", " ", row[1]).split()).replace(" ,", ",")


def test_the_page_says_which_folders_the_mailbox_reads_and_has_read(stack: Stack):
    alice = stack.user_mailbox("alice", folders=FolderScope.INBOX_AND_SUBFOLDERS)
    bob = stack.user_mailbox("bob")
    for mailbox in (alice, bob):
        stack.dovecot.create_folder(mailbox.email_address, "INBOX/Customers")
        with stack.imap(mailbox) as client:
            client.append("INBOX/Customers", messages.simple(to=mailbox.email_address, subject="Filed"))
    admin = signed_in("admin", administrator=True)

    def shown(mailbox: Mailbox) -> str:
        return folders_row(admin.get(f"/mailboxes/{mailbox.pk}/").content.decode())

    assert shown(alice) == "Folders to process Inbox and its sub-folders Read so far: none yet"
    assert shown(bob) == "Folders to process Inbox only Read so far: none yet"
    sync_incoming(mailbox=alice)
    sync_incoming(mailbox=bob)
    assert shown(alice) == "Folders to process Inbox and its sub-folders Read so far: INBOX, INBOX/Customers"
    assert shown(bob) == "Folders to process Inbox only Read so far: INBOX"


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        # POP3 has the inbox alone, whatever the setting says.
        (
            {"profile": "pop3", "folders": FolderScope.INBOX_AND_SUBFOLDERS},
            "Inbox only (POP3 has no other folders)",
        ),
        # A type whose connector is out of the registry (none is today).
        (
            {"profile": "exchange", "folders": FolderScope.INBOX_AND_SUBFOLDERS},
            "Inbox and its sub-folders (Exchange Online mailboxes are not read yet)",
        ),
        (
            {"incoming_method": IncomingMethod.FORWARD_MAILBOX},
            "Inbox only (incoming email: Forward Mailbox; server-side sync does not read it)",
        ),
    ],
)
def test_the_page_says_when_a_mailbox_reads_less_than_its_setting(
    world: World, change: dict, shown: str, monkeypatch
):
    monkeypatch.delitem(registry.KINDS, ServerType.EXCHANGE_ONLINE)
    profiles = {
        "pop3": lambda: factories.profile(server_type=ServerType.POP3_SMTP),
        "exchange": lambda: factories.profile(
            server_type=ServerType.EXCHANGE_ONLINE, incoming_server_location="", outgoing_server_location=""
        ),
    }
    if "profile" in change:
        change = {**change, "profile": profiles[change["profile"]]()}
    mailbox = mailbox_update(mailbox=world["alice"].mailbox, data=change)
    client = Client()
    client.force_login(world["alice"].login)

    page = client.get(f"/mailboxes/{mailbox.pk}/").content.decode()

    assert folders_row(page) == f"Folders to process {shown} Read so far: none yet"


def test_a_migrated_mailbox_page_says_it_reads_the_inbox_and_its_sub_folders(db):
    from mailboxes.router_import.service import router_migration_apply, router_migration_create
    from tests.mailboxes.router_import.routers import BRANCH, build_contoso, upload

    build_contoso()
    migration = router_migration_create(routers=[upload(BRANCH)], created_by=None, source="api")
    router_migration_apply(migration=migration, by=None)
    erin = Mailbox.objects.get(email_address="erin@contoso.test")  # POP3 + SMTP, from the branch router
    assert erin.folders == FolderScope.INBOX_AND_SUBFOLDERS
    frank = Mailbox.objects.get(email_address="frank@contoso.test")  # Exchange Online
    admin = signed_in("admin", administrator=True)

    for mailbox, shown in [
        (frank, "Inbox and its sub-folders"),  # Exchange Online, through Microsoft Graph
        (erin, "Inbox only (POP3 has no other folders)"),
    ]:
        page = admin.get(f"/mailboxes/{mailbox.pk}/").content.decode()
        assert folders_row(page) == f"Folders to process {shown} Read so far: none yet"
