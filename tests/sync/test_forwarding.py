"""Forward mailboxes end to end against the real test Dovecot: users' rules
forward mail as an attachment; serversync processes it for the forwarding user."""

from __future__ import annotations

import pytest

from crm.choices import IncomingMethod, TrackIncomingEmail
from crm.models import EmailActivity
from mailboxes.models import Mailbox
from sync.incoming import reprocess_quarantined, sync_incoming
from sync.models import QuarantinedMessage, Receipt, ReceiptOutcome
from tests import factories, messages
from tests.sync.stack import Stack

pytestmark = pytest.mark.django_db


def forwarding_user(stack: Stack, name: str, option: str = TrackIncomingEmail.ALL) -> Mailbox:
    return stack.user_mailbox(name, option=option, incoming_method=IncomingMethod.FORWARD_MAILBOX)


def forward(stack: Stack, user: Mailbox, forward_to: Mailbox, original: bytes) -> None:
    """The user's server rule forwards ``original`` as an attachment."""
    wrapper = messages.forwarded_as_attachment(
        forwarder=user.email_address, to=forward_to.email_address, original=original
    )
    stack.deliver(forward_to, wrapper)


def outcomes(mailbox: Mailbox) -> list[str]:
    return list(Receipt.objects.filter(mailbox=mailbox).order_by("pk").values_list("outcome", flat=True))


def quarantine_reasons(mailbox: Mailbox) -> list[str]:
    held = QuarantinedMessage.objects.filter(mailbox=mailbox).order_by("pk")
    return list(held.values_list("error_text", flat=True))


def test_a_forwarded_message_is_the_users_activity_once(stack):
    alice = forwarding_user(stack, "alice", TrackIncomingEmail.FROM_CRM_RECORDS)
    inbound = stack.forward_mailbox()
    carl = factories.contact(last_name="Customer", email="carl@example.org")
    original = messages.simple(sender="carl@example.org", to=alice.email_address, subject="Order 7")
    forward(stack, alice, inbound, original)

    run = sync_incoming(mailbox=inbound)

    (email,) = EmailActivity.objects.filter(direction="incoming")
    assert (email.subject, email.owner, run.tracked) == ("Order 7", alice.user, 1)
    assert {(p.role, p.address): p.record for p in email.parties.all()} == {
        ("from", "carl@example.org"): carl,
        ("to", alice.email_address): alice.user,
    }
    assert list(Receipt.objects.filter(mailbox=inbound).values_list("outcome", "email")) == [
        (ReceiptOutcome.FORWARDED, email.pk)
    ]
    assert list(Receipt.objects.filter(mailbox=alice).values_list("outcome", "email")) == [
        (ReceiptOutcome.TRACKED, email.pk)
    ]

    forward(stack, alice, inbound, original)  # the rule fires again for the same message
    sync_incoming(mailbox=inbound)

    assert EmailActivity.objects.filter(direction="incoming").count() == 1
    assert outcomes(inbound) == [ReceiptOutcome.FORWARDED, ReceiptOutcome.FORWARDED]
    assert outcomes(alice) == [ReceiptOutcome.TRACKED]


def test_the_forwarding_users_option_decides_tracking(stack):
    bob = forwarding_user(stack, "bob", TrackIncomingEmail.NONE)
    inbound = stack.forward_mailbox()
    forward(stack, bob, inbound, messages.simple(sender="carl@example.org", to=bob.email_address))

    sync_incoming(mailbox=inbound)

    assert not EmailActivity.objects.filter(direction="incoming").exists()
    assert outcomes(bob) == [ReceiptOutcome.NOT_TRACKED_OPTION]
    assert outcomes(inbound) == [ReceiptOutcome.NOT_TRACKED_OPTION]


def test_a_redirect_naming_its_resender_is_attributed(stack):
    alice = forwarding_user(stack, "alice")
    inbound = stack.forward_mailbox()
    redirected = messages.simple(
        sender="carl@example.org",
        to=alice.email_address,
        subject="Redirected",
        headers={"Resent-From": alice.email_address, "Resent-To": inbound.email_address},
    )
    stack.deliver(inbound, redirected)

    sync_incoming(mailbox=inbound)

    (email,) = EmailActivity.objects.filter(direction="incoming")
    assert (email.subject, email.owner) == ("Redirected", alice.user)
    assert outcomes(inbound) == [ReceiptOutcome.FORWARDED]


def test_unattributable_messages_are_quarantined_with_the_reason(stack):
    syncing = stack.user_mailbox("dave")  # receives with server-side sync, forwards nothing
    inbound = stack.forward_mailbox()
    original = messages.simple(sender="carl@example.org", subject="Original")
    stack.deliver(inbound, messages.simple(sender="carl@example.org", to=inbound.email_address))
    stack.deliver(
        inbound,
        messages.forwarded_as_attachment(
            forwarder="stranger@example.org", to=inbound.email_address, original=original
        ),
    )
    forward(stack, syncing, inbound, original)

    run = sync_incoming(mailbox=inbound)

    assert (run.outcome, run.quarantined) == ("success", 3)
    assert not EmailActivity.objects.filter(direction="incoming").exists()
    assert outcomes(inbound) == [ReceiptOutcome.QUARANTINED] * 3
    no_original, stranger, not_forwarding = quarantine_reasons(inbound)
    assert "no attached original" in no_original
    assert "stranger@example.org, which is not the address of a CRM user's mailbox" in stranger
    assert "Server-Side Synchronization, not Forward Mailbox" in not_forwarding
    assert not Receipt.objects.filter(mailbox=syncing).exists()


def test_a_quarantined_forward_is_processed_once_the_user_forwards_through_it(stack):
    alice = stack.user_mailbox("alice")
    inbound = stack.forward_mailbox()
    forward(stack, alice, inbound, messages.simple(sender="carl@example.org", subject="Late"))
    sync_incoming(mailbox=inbound)
    Mailbox.objects.filter(pk=alice.pk).update(incoming_method=IncomingMethod.FORWARD_MAILBOX)

    receipt = reprocess_quarantined(quarantined_id=QuarantinedMessage.objects.get(mailbox=inbound).pk)

    email = EmailActivity.objects.get(receipts=receipt)
    assert (receipt.outcome, email.subject, email.owner) == (ReceiptOutcome.FORWARDED, "Late", alice.user)


def test_the_forward_copy_is_deleted_when_the_mailbox_says_so(stack):
    alice = forwarding_user(stack, "alice")
    inbound = stack.forward_mailbox(delete_email_after_processing=True)
    forward(stack, alice, inbound, messages.simple(sender="carl@example.org"))
    stack.deliver(inbound, messages.simple(sender="carl@example.org", to=inbound.email_address))

    run = sync_incoming(mailbox=inbound)

    assert (run.tracked, run.quarantined) == (1, 1)
    with stack.imap(inbound) as client:
        client.select_folder("INBOX")
        assert client.search("ALL") == []
    assert QuarantinedMessage.objects.get(mailbox=inbound).raw  # kept here, reprocessable


def test_a_pop3_forward_mailbox_deletes_the_copy_too(stack):
    alice = forwarding_user(stack, "alice")
    inbound = stack.forward_mailbox(profile=stack.pop3_profile(), delete_email_after_processing=True)
    forward(stack, alice, inbound, messages.simple(sender="carl@example.org", subject="By POP3"))

    run = sync_incoming(mailbox=inbound)

    assert (run.outcome, run.tracked) == ("success", 1), run.error_text
    assert EmailActivity.objects.get(direction="incoming").owner == alice.user
    with stack.imap(inbound) as client:
        client.select_folder("INBOX")
        assert client.search("ALL") == []
