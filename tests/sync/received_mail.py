"""A morning's mail, delivered into the test Dovecot and synced for real, so that
every kind of receipt exists: tracked (by the option, by correlation, forwarded),
linked to another mailbox's activity, not tracked by option / for no
correlation match / for a sender who is no CRM record, auto-reply, and
quarantined. The item-level view and mailbox page tests (and their browser
test) read what these runs left behind."""

from __future__ import annotations

from dataclasses import dataclass

from django.test import Client

from crm.choices import IncomingMethod, TrackIncomingEmail
from crm.models import Account, CrmUser, EmailActivity
from mailboxes.models import Mailbox
from sync.incoming import sync_incoming
from tests import factories, messages
from tests.sync import auto_mail
from tests.sync.stack import Stack

ORDER_ID = "<order-1001@example.org>"
QUOTE_ID = "<quote-2002@example.org>"


@dataclass
class ReceivedMail:
    alice: Mailbox  # tracks all email
    bob: Mailbox  # tracks responses to CRM email only
    carol: Mailbox  # tracks none
    dave: Mailbox  # tracks email from CRM records
    erin: Mailbox  # forwards her mail to the forward mailbox
    frank: Mailbox  # forwards too, but his mailbox is not set to Forward Mailbox: quarantined
    inbound: Mailbox  # the forward mailbox
    contoso: Account

    @property
    def synced(self) -> list[Mailbox]:
        return [self.alice, self.bob, self.carol, self.dave, self.inbound]


def deliver_and_sync(stack: Stack) -> ReceivedMail:
    """Deliver the morning's mail and sync the mailboxes (alice twice)."""
    mail = _mailboxes(stack)
    factories.contact(last_name="Customer", first_name="Carl", email="carl@example.org")
    _deliver_to_alice(stack, mail.alice)
    sync_incoming(mailbox=mail.alice)
    # The user sets what the order is regarding; a reply to it is regarding the same.
    EmailActivity.objects.filter(message_id=ORDER_ID.strip("<>")).update(regarding_account=mail.contoso)
    _deliver_the_rest(stack, mail)
    for mailbox in mail.synced:
        sync_incoming(mailbox=mailbox)
    return mail


def _mailboxes(stack: Stack) -> ReceivedMail:
    alice = stack.user_mailbox("alice", option=TrackIncomingEmail.ALL)
    return ReceivedMail(
        alice=alice,
        bob=stack.user_mailbox("bob", option=TrackIncomingEmail.RESPONSES_TO_CRM),
        carol=stack.user_mailbox("carol", option=TrackIncomingEmail.NONE),
        dave=stack.user_mailbox("dave", option=TrackIncomingEmail.FROM_CRM_RECORDS),
        erin=stack.user_mailbox("erin", incoming_method=IncomingMethod.FORWARD_MAILBOX),
        frank=stack.user_mailbox("frank"),
        inbound=stack.forward_mailbox("inbound"),
        contoso=factories.account(name="Contoso", owner=alice.user),
    )


def _deliver_to_alice(stack: Stack, alice: Mailbox) -> None:
    order = messages.simple(
        sender="carl@example.org", to=alice.email_address, subject="Order 1001", message_id=ORDER_ID
    )
    stack.deliver(alice, order)
    stack.deliver(alice, auto_mail.out_of_office(sender="carl@example.org", to=alice.email_address))
    with stack.imap(alice) as client:
        client.append("INBOX", messages.NOT_A_MESSAGE)


def _deliver_the_rest(stack: Stack, mail: ReceivedMail) -> None:
    alice, bob, carol, dave = mail.alice, mail.bob, mail.carol, mail.dave
    quote = messages.simple(
        sender="carl@example.org",
        to=f"{alice.email_address}, {carol.email_address}",
        subject="Quote request",
        message_id=QUOTE_ID,
    )
    stack.deliver(alice, quote)
    stack.deliver(carol, quote)
    reply = messages.simple(
        sender="carl@example.org", to=bob.email_address, subject="Re: Order 1001", in_reply_to=ORDER_ID
    )
    stack.deliver(bob, reply)
    stack.deliver(bob, messages.simple(sender="news@example.net", to=bob.email_address, subject="Newsletter"))
    stack.deliver(carol, messages.simple(sender="carl@example.org", to=carol.email_address, subject="Hello"))
    stack.deliver(
        dave, messages.simple(sender="stranger@example.net", to=dave.email_address, subject="Offer")
    )
    stack.deliver(dave, messages.simple(sender="carl@example.org", to=dave.email_address, subject="Invoice"))
    for forwarder in (mail.erin, mail.frank):
        original = messages.simple(
            sender="carl@example.org", to=forwarder.email_address, subject=f"Forwarded by {forwarder.name}"
        )
        wrapper = messages.forwarded_as_attachment(
            forwarder=forwarder.email_address, to=mail.inbound.email_address, original=original
        )
        stack.deliver(mail.inbound, wrapper)


def signed_in(name: str, *, administrator: bool = False, mailbox: Mailbox | None = None) -> Client:
    """A client signed in as a new login; with ``mailbox``, that login is its user's."""
    login = factories.login_user(name, administrator=administrator)
    if mailbox is not None:
        CrmUser.objects.filter(pk=mailbox.user_id).update(user=login)
    client = Client()
    client.force_login(login)
    return client
