"""A mailbox run whose database connection breaks part way (sync/database_loss.py): the
worker settles the run itself, not the lease lapsing ten minutes later. The database going
away for real, under a real worker, is in tests/faults/test_services.py."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from crm.models import EmailActivity, OrganizationSettings
from mailboxes.models import Mailbox
from sync import clock, database_loss, outgoing, scheduler
from sync.models import MailboxAlert, MailboxSchedule, SyncKind, SyncOutcome, SyncRun
from tests.sync.test_engine_outgoing import api_client_for, compose

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_send_cut_off_from_its_database_is_outcome_unknown_and_the_mailbox_due_at_once(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    email = compose(api_client_for(alice), subject="Cut off", to=[bob.email_address])
    claim = scheduler.claim_now(mailbox=alice, kind=SyncKind.OUTGOING)
    assert claim is not None

    def claims_then_loses_the_database(mailbox: Mailbox) -> SyncRun:
        listed = EmailActivity.objects.get(pk=email.pk)
        assert outgoing.claim_email(email=listed, mailbox=mailbox, organization=OrganizationSettings.load())
        raise OperationalError("server closed the connection unexpectedly")

    with pytest.raises(OperationalError):
        database_loss.run_claimed(claim, claims_then_loses_the_database)

    email.refresh_from_db()
    assert email.status == EmailActivity.Status.OUTCOME_UNKNOWN  # the server may have it: never resent
    assert MailboxAlert.objects.filter(
        mailbox=alice, code="outcome_unknown", resolved_on__isnull=True
    ).exists()
    run = SyncRun.objects.get(mailbox=alice, kind=SyncKind.OUTGOING)
    assert (run.outcome, run.error_code) == (SyncOutcome.FAILED, database_loss.CODE)
    schedule = MailboxSchedule.objects.get(mailbox=alice, kind=SyncKind.OUTGOING)
    assert schedule.lease_token is None
    assert schedule.next_due_on <= clock.now()
    assert stack.relay.accepted_count(email.message_id) == 0


def test_a_lease_someone_else_holds_now_is_left_alone(stack):
    alice = stack.user_mailbox("alice")
    claim = scheduler.claim_now(mailbox=alice, kind=SyncKind.INCOMING)
    assert claim is not None
    MailboxSchedule.objects.filter(mailbox=alice).update(lease_token="00000000-0000-0000-0000-000000000001")

    database_loss.settle(claim, started_on=clock.now())

    assert MailboxSchedule.objects.get(mailbox=alice).lease_token is not None
    assert not SyncRun.objects.filter(mailbox=alice).exists()


def test_emails_the_server_took_before_the_database_went_away_are_recorded_sent_once_it_is_back(
    stack, monkeypatch
):
    """The database goes away as the first email is recorded Sent, the second already on its
    way: once it is back, the run records both Sent (it knows the server took them), where a
    dead worker's would have been left "outcome unknown"."""
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    client = api_client_for(alice)
    emails = [compose(client, subject=f"Email {n}", to=[bob.email_address]) for n in range(2)]
    claim = scheduler.claim_now(mailbox=alice, kind=SyncKind.OUTGOING)
    assert claim is not None
    mark_sent = outgoing._mark_sent

    def mark_sent_while_down(*args, **kwargs):
        # The database goes away at the first write of a Sent email, and stays away.
        raise OperationalError("server closed the connection unexpectedly")

    def back_again() -> bool:
        monkeypatch.setattr(outgoing, "_mark_sent", mark_sent)
        return True

    monkeypatch.setattr(outgoing, "_mark_sent", mark_sent_while_down)
    monkeypatch.setattr(outgoing, "database_back", back_again)

    with pytest.raises(OperationalError):
        database_loss.run_claimed(claim, lambda mailbox: outgoing.send_pending(mailbox=mailbox))

    sent = EmailActivity.objects.filter(pk__in=[e.pk for e in emails])
    assert [e.status for e in sent] == [EmailActivity.Status.SENT] * 2
    assert [stack.relay.accepted_count(e.message_id) for e in sent] == [1, 1]
    assert not MailboxAlert.objects.filter(mailbox=alice, code="outcome_unknown").exists()
    assert MailboxSchedule.objects.get(mailbox=alice, kind=SyncKind.OUTGOING).lease_token is None
