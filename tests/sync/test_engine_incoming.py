"""Incoming mail end to end against the real test Dovecot: what a CRM
administrator would check after mail arrives in users' and queues' mailboxes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from crm.choices import TrackIncomingEmail
from crm.models import EmailActivity, OrganizationSettings, QueueItem
from mailboxes.models import FolderScope, Mailbox
from profiles.models import ServerType
from sync import scheduler
from sync.connectors import registry
from sync.incoming import sync_incoming
from sync.models import MailboxAlert, QuarantinedMessage, Receipt, ReceiptOutcome, SyncKind
from tests import factories, messages

pytestmark = pytest.mark.django_db


def incoming_of(mailbox: Mailbox) -> list[EmailActivity]:
    return list(EmailActivity.objects.filter(receipts__mailbox=mailbox, direction="incoming").order_by("pk"))


def test_user_and_queue_mail_becomes_activities_once(stack):
    alice = stack.user_mailbox("alice", option=TrackIncomingEmail.FROM_CRM_RECORDS)
    support = stack.queue_mailbox("support")
    carl = factories.contact(last_name="Customer", email="carl@example.org")
    stack.deliver(alice, messages.simple(sender="carl@example.org", to=alice.email_address, subject="Order"))
    stack.deliver(
        alice, messages.simple(sender="stranger@example.org", to=alice.email_address, subject="Spam")
    )
    stack.deliver(
        support, messages.simple(sender="carl@example.org", to=support.email_address, subject="Help")
    )

    first = sync_incoming(mailbox=alice)
    sync_incoming(mailbox=support)

    assert (first.outcome, first.received, first.tracked, first.not_tracked) == ("success", 2, 1, 1)
    (order,) = incoming_of(alice)
    assert order.subject == "Order"
    assert {(p.role, p.address): p.record for p in order.parties.all()} == {
        ("from", "carl@example.org"): carl,
        ("to", alice.email_address): alice.user,
    }
    outcomes = dict(Receipt.objects.filter(mailbox=alice).values_list("subject", "outcome"))
    assert outcomes == {"Order": ReceiptOutcome.TRACKED, "Spam": ReceiptOutcome.SENDER_NOT_CRM}
    (help_email,) = incoming_of(support)
    assert QueueItem.objects.filter(queue=support.queue, email=help_email).exists()
    assert order.received_on is not None

    again = sync_incoming(mailbox=alice)
    assert (again.received, EmailActivity.objects.filter(direction="incoming").count()) == (0, 2)
    assert Receipt.objects.filter(mailbox=alice).count() == 2
    alice.refresh_from_db()
    assert alice.incoming_status == "success"


def test_same_message_to_two_mailboxes_is_one_activity_with_two_receipts(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    raw = messages.simple(to=f"{alice.email_address}, {bob.email_address}")
    stack.deliver(alice, raw)
    stack.deliver(bob, raw)
    sync_incoming(mailbox=alice)
    sync_incoming(mailbox=bob)
    (email,) = EmailActivity.objects.filter(direction="incoming")
    assert set(Receipt.objects.filter(email=email).values_list("mailbox_id", "outcome")) == {
        (alice.pk, ReceiptOutcome.TRACKED),
        (bob.pk, ReceiptOutcome.LINKED),
    }


def test_messages_without_message_id_sharing_from_subject_date_stay_two(stack):
    alice = stack.user_mailbox("alice")
    stack.deliver(alice, messages.without_message_id(body="first"))
    stack.deliver(alice, messages.without_message_id(body="second"))
    sync_incoming(mailbox=alice)
    assert sorted(e.body_text.strip() for e in incoming_of(alice)) == ["first", "second"]


def test_uidvalidity_change_relinks_without_duplicates(stack):
    alice = stack.user_mailbox("alice")
    for number in range(3):
        stack.deliver(alice, messages.simple(to=alice.email_address, subject=f"Before {number}"))
    sync_incoming(mailbox=alice)
    stack.dovecot.set_uidvalidity(alice.email_address, "INBOX", 4242)
    stack.deliver(alice, messages.simple(to=alice.email_address, subject="After"))

    run = sync_incoming(mailbox=alice)

    assert run.received == 4  # the whole folder again, under its new UIDs
    # What the run did: the three known messages linked, not tracked again (issue 11).
    assert (run.tracked, run.linked) == (1, 3)
    assert EmailActivity.objects.filter(direction="incoming").count() == 4
    assert set(Receipt.objects.filter(mailbox=alice).values_list("server_id", flat=True)) == {
        f"4242:{uid}" for uid in range(1, 5)
    }


def test_sub_folders_when_the_mailbox_says_so(stack):
    alice = stack.user_mailbox("alice", folders=FolderScope.INBOX_AND_SUBFOLDERS)
    bob = stack.user_mailbox("bob")
    for mailbox in (alice, bob):
        stack.dovecot.create_folder(mailbox.email_address, "INBOX/Customers")
        with stack.imap(mailbox) as client:
            client.append("INBOX/Customers", messages.simple(to=mailbox.email_address, subject="Filed"))
    sync_incoming(mailbox=alice)
    sync_incoming(mailbox=bob)
    assert [r.folder for r in Receipt.objects.filter(mailbox=alice)] == ["INBOX/Customers"]
    assert not Receipt.objects.filter(mailbox=bob).exists()  # root inbox only, as Dynamics does


def test_a_20_mb_attachment_is_stored(stack):
    alice = stack.user_mailbox("alice")
    big = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    stack.deliver(alice, messages.simple(to=alice.email_address, attachments=[("video.bin", big)]))
    organization = OrganizationSettings.load()
    organization.max_attachment_size_kb = 32768
    organization.save()
    sync_incoming(mailbox=alice)
    (email,) = incoming_of(alice)
    (attachment,) = email.attachments.all()
    assert attachment.size == len(big)
    with attachment.content.open("rb") as stored:
        assert stored.read() == big


def test_bad_messages_are_quarantined_and_the_rest_synced(stack):
    alice = stack.user_mailbox("alice")
    odd = [
        messages.ISO_2022_JP,
        messages.MISSING_CHARSET,
        messages.BROKEN_BOUNDARY,
        messages.EIGHT_BIT_HEADERS,
    ]
    for raw in [*odd[:2], messages.NOT_A_MESSAGE, *odd[2:]]:
        with stack.imap(alice) as client:
            client.append("INBOX", raw)
    run = sync_incoming(mailbox=alice)
    assert (run.received, run.tracked, run.quarantined) == (5, 4, 1)
    assert Receipt.objects.filter(mailbox=alice).count() == 5
    held = QuarantinedMessage.objects.get(mailbox=alice)
    # Kept as the server returned it (Dovecot turns NUL bytes into 0x80).
    assert b"this is not an email at all" in held.raw.read()
    subjects = {e.subject for e in incoming_of(alice)}
    assert "こんにちは" in subjects
    assert any(s.startswith("Gr") for s in subjects)


def test_pop3_mailbox_directly_and_through_the_master_user(stack):
    direct = stack.user_mailbox("pat", profile=stack.pop3_profile())
    via_master = stack.user_mailbox("quin", profile=stack.master_profile(ServerType.POP3_SMTP))
    for mailbox in (direct, via_master):
        stack.deliver(mailbox, messages.simple(to=mailbox.email_address, subject=f"POP {mailbox.pk}"))
        stack.deliver(mailbox, messages.simple(to=mailbox.email_address, subject=f"POP2 {mailbox.pk}"))
        first = sync_incoming(mailbox=mailbox)
        again = sync_incoming(mailbox=mailbox)
        assert (first.outcome, first.tracked, again.received) == ("success", 2, 0), first.error_text
    assert EmailActivity.objects.filter(direction="incoming").count() == 4


def test_imap_through_the_master_user(stack):
    alice = stack.user_mailbox("alice", profile=stack.master_profile())
    stack.deliver(alice, messages.simple(to=alice.email_address))
    run = sync_incoming(mailbox=alice)
    assert (run.outcome, run.tracked) == ("success", 1), run.error_text


def test_denied_impersonation_disables_with_an_error_alert(stack):
    alice = stack.user_mailbox("alice", profile=stack.master_profile())
    stack.dovecot.deny_impersonation(alice.email_address)
    run = sync_incoming(mailbox=alice)
    alice.refresh_from_db()
    assert (run.outcome, run.error_code) == ("failed", "impersonation_denied")
    assert (alice.incoming_enabled, alice.incoming_status) == (False, "failure")


def test_wrong_password_disables_with_an_error_alert(stack):
    alice = stack.user_mailbox("alice")
    alice.password = "not-the-password"
    alice.save()
    sync_incoming(mailbox=alice)
    alice.refresh_from_db()
    assert (alice.incoming_enabled, alice.incoming_status) == (False, "failure")
    assert "password" in alice.disabled_reason.lower() or "authentication" in alice.disabled_reason.lower()
    alert = MailboxAlert.objects.get(mailbox=alice, category="incoming")
    assert (alert.level, alert.code) == ("error", "authentication_failed")


def test_stopped_dovecot_gives_warnings_and_retries_then_disables(stack, settings):
    alice = stack.user_mailbox("alice")
    start = datetime.now(UTC)
    with stack.dovecot.stopped():
        for attempt in range(settings.SYNC_TRANSIENT_RETRY_LIMIT):
            with time_machine.travel(start + timedelta(minutes=6 * attempt), tick=False):
                claims = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
                assert [c.mailbox_id for c in claims] == [alice.pk], f"attempt {attempt + 1} not due"
                scheduler.run_claimed(claims[0], lambda m: sync_incoming(mailbox=m))
                alice.refresh_from_db()
                alert = MailboxAlert.objects.get(mailbox=alice, code="connection_refused", resolved_on=None)
                if attempt < settings.SYNC_TRANSIENT_RETRY_LIMIT - 1:
                    assert (alice.incoming_enabled, alert.level) == (True, "warning")
                    assert alice.incoming_postponed_until is not None
    assert (alice.incoming_enabled, alice.incoming_status, alert.level) == (False, "failure", "error")
    assert alert.count == settings.SYNC_TRANSIENT_RETRY_LIMIT


def test_mailboxes_of_a_type_without_connectors_are_skipped_as_not_supported_yet(stack, monkeypatch):
    # Every type has connectors today; a type whose connector is taken out of the registry is left alone.
    monkeypatch.delitem(registry.KINDS, ServerType.EXCHANGE_ONLINE)
    exchange = factories.profile(
        "Exchange Online",
        server_type=ServerType.EXCHANGE_ONLINE,
        incoming_server_location="",
        outgoing_server_location="",
    )
    mailbox = stack.user_mailbox("ewan", profile=exchange)
    assert mailbox.pk not in {c.mailbox_id for c in scheduler.dispatch()}
    mailbox.refresh_from_db()
    assert (mailbox.incoming_enabled, mailbox.incoming_status, mailbox.disabled_reason) == (
        True,
        "not_run",
        "",
    )
    assert not MailboxAlert.objects.filter(mailbox=mailbox).exists()
