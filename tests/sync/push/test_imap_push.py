"""IMAP push with a real Dovecot and a real Celery worker: new mail becomes an
activity in seconds, a dropped IDLE connection comes back, announcements coalesce."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

from crm.models import EmailActivity
from sync import clock, listener_shares, push
from sync.models import MailboxSchedule, PushLease, PushState, SyncKind, SyncRun
from tests import messages
from tests.harness.celery_worker import CeleryWorkerProcess, celery_worker, flush_broker
from tests.sync.push.listening import is_live, listening, wait_until


@pytest.fixture(autouse=True)
def _quick_beats(settings) -> None:
    settings.PUSH_HEARTBEAT_SECONDS = 1


def ran_and_let_go(mailbox_id: int) -> bool:
    return (
        SyncRun.objects.filter(mailbox_id=mailbox_id, kind=SyncKind.INCOMING).exists()
        and MailboxSchedule.objects.filter(mailbox_id=mailbox_id, lease_token__isnull=True).exists()
    )


def caught_up(mailbox_id: int) -> bool:
    """The catch-up run a new IDLE connection starts has run and let go of its lease,
    and the listener found nothing announced since."""
    return (
        ran_and_let_go(mailbox_id)
        and not PushLease.objects.filter(mailbox_id=mailbox_id, pending_since__isnull=False).exists()
    )


@contextmanager
def worker_keeping_the_queue() -> Iterator[CeleryWorkerProcess]:
    """A worker for runs already enqueued (``celery_worker`` empties the broker first)."""
    worker = CeleryWorkerProcess(queues="incoming").start()
    try:
        yield worker
    finally:
        worker.kill()


def live_since(mailbox_id: int):
    lease = PushLease.objects.get(mailbox_id=mailbox_id)
    return lease.changed_on if lease.state == PushState.LIVE else clock.now() - timedelta(days=1)


def activity(subject: str) -> bool:
    return EmailActivity.objects.filter(subject=subject).exists()


@pytest.mark.django_db(transaction=True)
def test_a_delivered_message_is_an_activity_in_under_two_seconds(stack):
    alice = stack.user_mailbox("alice")
    with celery_worker(queues="incoming"), listening():
        wait_until(lambda: is_live(alice.pk) and caught_up(alice.pk), what="the listener idling")
        delivered = time.monotonic()
        stack.deliver(alice, messages.simple(to=alice.email_address, subject="Pushed"))
        wait_until(lambda: activity("Pushed"), timeout=30, what="the activity")
        took = time.monotonic() - delivered
        time.sleep(3)  # what the runs' own sessions make the server say must not wake more runs
        runs = SyncRun.objects.filter(mailbox=alice, kind=SyncKind.INCOMING).count()
    print(f"delivery -> activity: {took:.2f} s")
    assert took < 2.0, f"delivery -> activity took {took:.2f} s"
    # The catch-up run and the pushed one; a RECENT taken for new mail (each run's EXAMINE
    # changes it) made thousands of runs a minute in B3.
    assert runs == 2


@pytest.mark.django_db(transaction=True)
def test_a_dropped_idle_connection_is_opened_again(stack):
    alice = stack.user_mailbox("alice")
    with celery_worker(queues="incoming"), listening():
        wait_until(lambda: is_live(alice.pk) and caught_up(alice.pk), what="the listener idling")
        dropped = clock.now()
        stack.dovecot.restart()  # every session ends: the IDLE connection drops
        wait_until(lambda: live_since(alice.pk) > dropped, what="IDLE held again")
        stack.deliver(alice, messages.simple(to=alice.email_address, subject="After the drop"))
        wait_until(lambda: activity("After the drop"), what="the activity")


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_a_hundred_announcements_is_one_run(stack):
    alice = stack.user_mailbox("alice")
    flush_broker()
    with listening():  # no worker yet: the catch-up run waits in the queue
        wait_until(lambda: is_live(alice.pk), what="the listener idling")
        burst = [messages.simple(to=alice.email_address, subject=f"Burst {n:03d}") for n in range(100)]
        stack.dovecot.deliver_many(alice.email_address, burst)
        time.sleep(2)  # Dovecot's EXISTS answers reach the listener (it sends them within 0.5 s)
        with worker_keeping_the_queue():
            wait_until(lambda: EmailActivity.objects.filter(subject__startswith="Burst").count() == 100)
            wait_until(lambda: caught_up(alice.pk), what="the run let go, the announcements covered")
            time.sleep(2)  # the listener's pending checks (each second) find nothing more to run
    runs = SyncRun.objects.filter(mailbox=alice, kind=SyncKind.INCOMING)
    assert [run.received for run in runs] == [100]
    assert push.wake() == 0


@pytest.mark.django_db
def test_a_hundred_announcements_enqueue_one_run(stack):
    """The coalescing on its own: announcements faster than a run starts are one run."""
    alice = stack.user_mailbox("alice")
    listener_shares.beat("test-listener", capacity=10)  # the push lease, with no connection
    enqueued = sum(push.notify([alice.pk]) for _ in range(100))
    assert enqueued == 1
    assert PushLease.objects.get(mailbox=alice).pending_since is not None  # until a run has started
    assert MailboxSchedule.objects.get(mailbox=alice, kind=SyncKind.INCOMING).lease_token is not None
