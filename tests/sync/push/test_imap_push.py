"""IMAP push with a real Dovecot and a real Celery worker: new mail becomes an
activity in seconds, a dropped IDLE connection comes back, announcements coalesce."""

from __future__ import annotations

import time

import pytest

from crm.models import EmailActivity
from sync.models import MailboxSchedule, PushLease, SyncKind, SyncRun
from tests import messages
from tests.harness.celery_worker import celery_worker
from tests.sync.push.listening import is_live, listening, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _quick_beats(settings) -> None:
    settings.PUSH_HEARTBEAT_SECONDS = 1


def caught_up(mailbox_id: int) -> bool:
    """The catch-up run a new IDLE connection starts has run and let go of its lease."""
    return (
        SyncRun.objects.filter(mailbox_id=mailbox_id, kind=SyncKind.INCOMING).exists()
        and MailboxSchedule.objects.filter(mailbox_id=mailbox_id, lease_token__isnull=True).exists()
        and not PushLease.objects.filter(mailbox_id=mailbox_id, pending_since__isnull=False).exists()
    )


def activity(subject: str) -> bool:
    return EmailActivity.objects.filter(subject=subject).exists()


def test_a_delivered_message_is_an_activity_in_under_two_seconds(stack):
    alice = stack.user_mailbox("alice")
    with celery_worker(queues="incoming"), listening():
        wait_until(lambda: is_live(alice.pk) and caught_up(alice.pk), what="the listener idling")
        delivered = time.monotonic()
        stack.deliver(alice, messages.simple(to=alice.email_address, subject="Pushed"))
        wait_until(lambda: activity("Pushed"), timeout=30, what="the activity")
        took = time.monotonic() - delivered
    print(f"delivery -> activity: {took:.2f} s")
    assert took < 2.0, f"delivery -> activity took {took:.2f} s"
