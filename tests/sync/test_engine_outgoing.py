"""Outgoing mail end to end: CRM email through the SMTP relay into Dovecot, the
Sent folder, the reply coming back correlated, and sends that fail."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
import time_machine

from crm.models import EmailActivity, OrganizationSettings
from mailboxes.models import Mailbox
from sync import outgoing
from sync.incoming import sync_incoming
from sync.models import MailboxAlert, SyncKind
from tests import factories
from tests.sync.stack import Stack

pytestmark = pytest.mark.django_db


def compose(api_as_user, **payload) -> EmailActivity:
    response = api_as_user.post("/api/v1/emails/", {"status": "pending_send", **payload}, format="json")
    assert response.status_code == 201, response.content
    return EmailActivity.objects.get(pk=response.json()["id"])


def inbox(stack: Stack, mailbox: Mailbox, folder: str = "INBOX") -> list[email.message.EmailMessage]:
    with stack.imap(mailbox) as client:
        client.select_folder(folder, readonly=True)
        fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
    return [email.message_from_bytes(data[b"BODY[]"], policy=policy.default) for data in fetched.values()]


def api_client_for(mailbox: Mailbox):
    from rest_framework.test import APIClient

    login = factories.login_user(f"login-{mailbox.pk}")
    mailbox.user.user = login
    mailbox.user.save()
    client = APIClient()
    client.force_authenticate(login)
    return client


def test_crm_email_arrives_with_token_lands_in_sent_and_the_reply_correlates(stack):
    alice = stack.user_mailbox("alice")
    customer = stack.user_mailbox("carl", option="all")
    account = factories.account(name="Contoso", owner=alice.user)
    sent_email = compose(
        api_client_for(alice),
        subject="Your quote",
        body_text="Please find the quote.",
        to=[customer.email_address],
        regarding_account=account.pk,
    )

    run = outgoing.send_pending(mailbox=alice)

    assert (run.outcome, run.sent) == ("success", 1), run.error_text
    sent_email.refresh_from_db()
    assert sent_email.status == "sent"
    assert sent_email.tracking_token.startswith("CRM:0")
    (received,) = inbox(stack, customer)
    assert received["Subject"] == f"Your quote {sent_email.tracking_token}"
    assert received["Message-ID"] == f"<{sent_email.message_id}>"
    (copy,) = inbox(stack, alice, "Sent")
    assert copy["Message-ID"] == received["Message-ID"]
    assert stack.relay.accepted_count(sent_email.message_id) == 1

    reply = (
        f"From: {customer.email_address}\r\nTo: {alice.email_address}\r\nSubject: RE: Your quote\r\n"
        f"Message-ID: <reply-1@example.org>\r\nIn-Reply-To: <{sent_email.message_id}>\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nThanks!\r\n"
    ).encode()
    stack.deliver(alice, reply)
    sync_incoming(mailbox=alice)
    tracked = EmailActivity.objects.get(message_id="reply-1@example.org")
    assert (tracked.correlated_email, tracked.correlation_method) == (sent_email, "in_reply_to")
    assert tracked.regarding == account


def test_sending_twice_sends_once(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    message = compose(api_client_for(alice), subject="Once", to=[bob.email_address])
    outgoing.send_pending(mailbox=alice)
    second = outgoing.send_pending(mailbox=alice)
    message.refresh_from_db()
    assert (second.sent, stack.relay.accepted_count(message.message_id)) == (0, 1)
    assert len(inbox(stack, bob)) == 1


def test_a_refused_message_is_failed_with_the_reason(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    message = compose(api_client_for(alice), subject="Too big", to=[bob.email_address])
    stack.relay.fail_next(552, "5.3.4 Message too big for system", stage="DATA")
    outgoing.send_pending(mailbox=alice)
    message.refresh_from_db()
    assert message.status == "failed"
    assert "too big" in message.failure_reason.lower()


def test_a_temporary_failure_keeps_the_email_pending_and_retries_later(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    message = compose(api_client_for(alice), subject="Later", to=[bob.email_address])
    stack.relay.fail_next(451, "4.3.2 Try again later", stage="MAIL")
    outgoing.send_pending(mailbox=alice)
    message.refresh_from_db()
    assert message.status == "pending_send"
    assert message.outgoing_claim.next_attempt_on > datetime.now(UTC)
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1)):
        outgoing.send_pending(mailbox=alice)
    message.refresh_from_db()
    assert message.status == "sent"
    assert stack.relay.accepted_count(message.message_id) == 1


def test_email_whose_mailbox_cannot_send_stays_pending_with_a_warning(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    Mailbox.objects.filter(pk=alice.pk).update(approval_status="pending_approval")
    message = compose(api_client_for(alice), subject="Stuck", to=[bob.email_address])
    assert outgoing.warn_stuck_pending() == 1
    message.refresh_from_db()
    assert message.status == "pending_send"
    alert = MailboxAlert.objects.get(mailbox=alice, code="cannot_send")
    assert (alert.level, alert.category) == ("warning", SyncKind.OUTGOING)
    assert "not approved" in alert.message


def test_tracking_token_off_leaves_the_subject_alone(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    organization = OrganizationSettings.load()
    organization.tracking_token_enabled = False
    organization.save()
    compose(api_client_for(alice), subject="Plain", to=[bob.email_address])
    outgoing.send_pending(mailbox=alice)
    (received,) = inbox(stack, bob)
    assert received["Subject"] == "Plain"


def test_a_connection_dropped_after_the_data_is_outcome_unknown_never_resent(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    message = compose(api_client_for(alice), subject="Maybe", to=[bob.email_address])
    stack.relay.drop_next(stage="DATA")
    outgoing.send_pending(mailbox=alice)
    message.refresh_from_db()
    assert message.status == "outcome_unknown"
    # Open even though the run went on: only a person settles it (resend / mark sent).
    assert MailboxAlert.objects.get(mailbox=alice, code="outcome_unknown", resolved_on=None).level == "error"
    outgoing.send_pending(mailbox=alice)
    assert stack.relay.accepted_count(message.message_id) == 1
    assert len(inbox(stack, bob)) == 1


def test_a_crm_reply_carries_in_reply_to_and_references_and_the_regarding(stack):
    alice, carl = stack.user_mailbox("alice"), stack.user_mailbox("carl")
    lead = factories.lead(last_name="Prospect", owner=alice.user)
    question = (
        f"From: {carl.email_address}\r\nTo: {alice.email_address}\r\nSubject: Question\r\n"
        "Message-ID: <q-2@example.org>\r\nReferences: <root@example.org>\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nHow much?\r\n"
    ).encode()
    stack.deliver(alice, question)
    sync_incoming(mailbox=alice)
    incoming = EmailActivity.objects.get(message_id="q-2@example.org")
    incoming.regarding_lead = lead
    incoming.save()

    answer = compose(
        api_client_for(alice), subject="RE: Question", to=[carl.email_address], reply_to=incoming.pk
    )
    outgoing.send_pending(mailbox=alice)

    (received,) = inbox(stack, carl)
    assert received["In-Reply-To"] == "<q-2@example.org>"
    assert received["References"] == "<root@example.org> <q-2@example.org>"
    answer.refresh_from_db()
    assert (answer.regarding, answer.correlated_email) == (lead, incoming)


def test_a_run_stopped_by_a_temporary_refusal_gives_back_the_email_claimed_ahead(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    client = api_client_for(alice)
    first = compose(client, subject="First", to=[bob.email_address])
    second = compose(client, subject="Second", to=[bob.email_address])
    # The next email is claimed while the server delivers one: here it refuses the first for now.
    stack.relay.fail_next(451, "4.3.1 Queue full, try again later", stage="DATA")

    run = outgoing.send_pending(mailbox=alice)

    first.refresh_from_db()
    second.refresh_from_db()
    assert run.outcome == "failed"
    assert (first.status, second.status) == ("pending_send", "pending_send")
    assert first.outgoing_claim.next_attempt_on > datetime.now(UTC)  # backs off
    assert second.outgoing_claim.next_attempt_on <= datetime.now(UTC)  # due as soon as the mailbox is
    assert (second.outgoing_claim.attempts, second.outgoing_claim.last_error) == (0, "")  # never tried
    assert inbox(stack, bob) == []
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1)):
        assert outgoing.send_pending(mailbox=alice).sent == 2
    assert [m["Subject"] for m in inbox(stack, bob)] == [
        f"First {first.tracking_token}",
        f"Second {second.tracking_token}",  # the token it was given when claimed ahead
    ]
    assert [stack.relay.accepted_count(e.message_id) for e in (first, second)] == [1, 1]
