"""Tracking and correlation end to end: CRM email sent through the SMTP relay,
replies, auto-replies and bounces delivered into Dovecot, mailboxes synced, and
what an administrator then finds in the CRM."""

from __future__ import annotations

import base64

import pytest

from crm.choices import TrackIncomingEmail
from crm.models import Account, ActivityParty, Contact, EmailActivity, OrganizationSettings
from mailboxes.models import Mailbox
from sync import outgoing
from sync.incoming import sync_incoming
from sync.models import Receipt
from tests import factories, messages
from tests.sync import auto_mail

pytestmark = pytest.mark.django_db
RESPONSES = TrackIncomingEmail.RESPONSES_TO_CRM


def organization(**options) -> None:
    OrganizationSettings.objects.filter(pk=OrganizationSettings.load().pk).update(**options)


def send_crm_email(
    sender: Mailbox, to: list[str], subject: str, *, regarding: Account | None = None
) -> EmailActivity:
    """A CRM email from the sender's user, sent through serversync."""
    email = factories.email(
        subject=subject,
        body_text="Please find the details.",
        status=EmailActivity.Status.PENDING_SEND,
        owner=sender.user,
        regarding_account=regarding,
    )
    factories.party(email=email, address=sender.email_address, user=sender.user)
    for address in to:
        factories.party(email=email, role=ActivityParty.Role.TO, address=address)
    run = outgoing.send_pending(mailbox=sender)
    assert run.sent == 1, run.error_text
    email.refresh_from_db()
    return email


def receipt_of(mailbox: Mailbox, message_id: str) -> Receipt:
    return Receipt.objects.get(mailbox=mailbox, message_id=message_id)


def test_a_follow_up_in_an_outlook_conversation_is_correlated_by_thread_index(stack):
    alice = stack.user_mailbox("alice")
    account = factories.account(name="Contoso", owner=alice.user)
    thread = bytes(range(1, 23))
    first = messages.simple(
        sender="carl@example.org",
        to=alice.email_address,
        message_id="<first@example.org>",
        headers={"Thread-Index": base64.b64encode(thread).decode()},
    )
    stack.deliver(alice, first)
    sync_incoming(mailbox=alice)
    # The user sets what the first message is regarding, then only tracks responses.
    EmailActivity.objects.filter(message_id="first@example.org").update(regarding_account=account)
    alice.user.track_incoming_email = RESPONSES
    alice.user.save()
    follow_up = messages.simple(
        sender="carl@example.org",
        to=alice.email_address,
        subject="One more thing",
        message_id="<second@example.org>",
        headers={"Thread-Index": base64.b64encode(thread + b"\x00\x01\x02\x03\x04").decode()},
    )
    stack.deliver(alice, follow_up)
    sync_incoming(mailbox=alice)

    tracked = receipt_of(alice, "second@example.org").email
    assert tracked is not None
    assert (tracked.correlation_method, tracked.correlated_email.message_id) == (
        "conversation_index",
        "first@example.org",
    )
    assert tracked.regarding == account
    assert tracked.conversation_index.startswith(base64.b64encode(thread).decode()[:28])


def test_a_reply_sharing_the_references_root_is_correlated(stack):
    alice = stack.user_mailbox("alice", option=TrackIncomingEmail.ALL)
    first = messages.simple(
        sender="carl@example.org",
        to=alice.email_address,
        message_id="<tracked@example.org>",
        references="<root@example.org>",
    )
    stack.deliver(alice, first)
    sync_incoming(mailbox=alice)
    alice.user.track_incoming_email = RESPONSES
    alice.user.save()
    reply = messages.simple(
        sender="dave@example.org",
        to=alice.email_address,
        message_id="<branch@example.org>",
        references="<root@example.org> <someone-else@example.org>",
    )
    stack.deliver(alice, reply)
    sync_incoming(mailbox=alice)

    tracked = receipt_of(alice, "branch@example.org").email
    assert tracked is not None
    assert (tracked.correlation_method, tracked.correlated_email.message_id) == (
        "conversation_index",
        "tracked@example.org",
    )


@pytest.mark.parametrize(("smart_matching", "outcome"), [(True, "tracked"), (False, "no_correlation")])
def test_a_reply_that_lost_its_headers_is_correlated_by_smart_matching_only_when_on(
    stack, smart_matching, outcome
):
    organization(smart_matching_enabled=smart_matching)
    alice = stack.user_mailbox("alice", option=RESPONSES)
    carl = stack.make_mail_user("carl")
    account = factories.account(name="Contoso", owner=alice.user)
    sent = send_crm_email(alice, [carl.address], "Quarterly pricing review", regarding=account)
    # A phone client that drops In-Reply-To, References and the tracking token.
    reply = messages.simple(
        sender=carl.address,
        to=alice.email_address,
        subject="RE: Quarterly pricing review",
        message_id="<phone-reply@example.org>",
    )
    stack.deliver(alice, reply)
    sync_incoming(mailbox=alice)

    receipt = receipt_of(alice, "phone-reply@example.org")
    assert receipt.outcome == outcome
    if smart_matching:
        assert (receipt.email.correlation_method, receipt.email.correlated_email) == ("smart_matching", sent)
        assert receipt.email.regarding == account
    else:
        assert receipt.email is None


@pytest.mark.parametrize("two_activities", [True, False])
def test_crm_email_between_two_users_is_one_or_two_activities(stack, two_activities):
    organization(track_email_between_users_as_two_activities=two_activities)
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob", option=RESPONSES)
    sent = send_crm_email(alice, [bob.email_address], "Handover notes")
    sync_incoming(mailbox=bob)
    sync_incoming(mailbox=bob)  # a second run changes nothing

    activities = EmailActivity.objects.filter(message_identity=sent.message_identity).order_by("id")
    receipt = Receipt.objects.get(mailbox=bob)
    if two_activities:
        original, copy = activities
        assert (original, original.owner, original.direction) == (sent, alice.user, "outgoing")
        assert (copy.copy_owner, copy.owner, copy.direction, copy.status) == (
            bob.user,
            bob.user,
            "incoming",
            "received",
        )
        assert (receipt.outcome, receipt.email) == ("tracked", copy)
    else:
        assert list(activities) == [sent]
        assert (receipt.outcome, receipt.email) == ("linked", sent)


def test_an_auto_reply_to_crm_email_creates_no_contact_and_correlates_nothing(stack):
    alice = stack.user_mailbox("alice", option=TrackIncomingEmail.ALL)
    alice.user.auto_create_contacts = True
    alice.user.save()
    carl = stack.make_mail_user("carl")
    sent = send_crm_email(alice, [carl.address], "Your quote")
    stack.deliver(
        alice,
        auto_mail.out_of_office(sender=carl.address, to=alice.email_address, in_reply_to=sent.message_id),
    )
    sync_incoming(mailbox=alice)

    (receipt,) = Receipt.objects.filter(mailbox=alice)
    assert (receipt.outcome, receipt.email) == ("auto_reply", None)
    assert not Contact.objects.filter(email__iexact=carl.address).exists()
    assert not sent.correlated_replies.exists()
    assert EmailActivity.objects.count() == 1


def test_a_bounce_is_recorded_against_the_failed_recipient(stack):
    alice = stack.user_mailbox("alice", option=TrackIncomingEmail.ALL)
    alice.user.auto_create_contacts = True
    alice.user.save()
    bob, carl = stack.make_mail_user("bob"), stack.make_mail_user("carl")
    sent = send_crm_email(alice, [bob.address, carl.address], "Your quote")
    dsn = auto_mail.delivery_status_notification(
        to=alice.email_address,
        original_message_id=sent.message_id,
        failed_recipient=carl.address,
        delivered_recipient=bob.address,
    )
    stack.dovecot.deliver(alice.email_address, dsn, sender="")  # bounces have an empty envelope sender
    sync_incoming(mailbox=alice)

    (receipt,) = Receipt.objects.filter(mailbox=alice)
    assert (receipt.outcome, receipt.email) == ("bounce", sent)
    parties = {p.address: p for p in sent.parties.filter(role="to")}
    assert parties[carl.address].delivery_failed_on is not None
    assert "550 5.1.1" in parties[carl.address].delivery_failure
    assert (parties[bob.address].delivery_failed_on, parties[bob.address].delivery_failure) == (None, "")
    assert not Contact.objects.filter(email__icontains="mailer-daemon").exists()
    assert EmailActivity.objects.count() == 1


@pytest.mark.parametrize("auto_create", [True, False])
def test_an_unknown_sender_becomes_a_contact_only_when_the_option_is_on(stack, auto_create):
    alice = stack.user_mailbox("alice", option=TrackIncomingEmail.ALL)
    alice.user.auto_create_contacts = auto_create
    alice.user.save()
    stack.deliver(
        alice,
        messages.simple(
            sender="Nora Newcomer <nora@example.org>", to=alice.email_address, message_id="<hi@example.org>"
        ),
    )
    sync_incoming(mailbox=alice)

    sender = receipt_of(alice, "hi@example.org").email.parties.get(role="from")
    contacts = list(Contact.objects.filter(email="nora@example.org"))
    if auto_create:
        (contact,) = contacts
        assert (contact.first_name, contact.last_name, contact.owner) == ("Nora", "Newcomer", alice.user)
        assert sender.contact == contact
    else:
        assert (contacts, sender.is_resolved) == ([], False)
