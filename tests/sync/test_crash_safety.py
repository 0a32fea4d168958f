"""Nothing lost, nothing doubled: real worker processes killed mid-way."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from crm.models import EmailActivity
from mailboxes.models import Mailbox
from sync import outgoing, scheduler
from sync.models import MailboxAlert, Receipt, SyncKind
from sync.tasks import incoming_mailbox, outgoing_mailbox
from tests import messages
from tests.harness.celery_worker import celery_worker
from tests.sync.test_engine_outgoing import api_client_for, compose, inbox

pytestmark = pytest.mark.django_db(transaction=True)
MESSAGES = 120
KILL_AFTER = 15


def wait_until(condition, *, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.01)


def after_leases_expire() -> time_machine.travel:
    return time_machine.travel(datetime.now(UTC) + timedelta(hours=1), tick=True)


def send_until_killed_after_data(mailbox) -> None:
    """Run the mailbox's outgoing sync in a real worker that SIGKILLs itself right
    after the server's answer to DATA."""
    with celery_worker(queues="outgoing", name="crashing", crash_at="after_smtp_data") as worker:
        claim = next(c for c in scheduler.dispatch(kinds=(SyncKind.OUTGOING,)) if c.mailbox_id == mailbox.pk)
        outgoing_mailbox.delay(claim.mailbox_id, claim.token)
        assert worker.process is not None
        assert worker.process.wait(timeout=60) == -signal.SIGKILL


def test_a_worker_killed_mid_run_loses_nothing_and_doubles_nothing(stack):
    alice = stack.user_mailbox("alice")
    kill_mid_run_then_finish(alice, stack.deliver, count=MESSAGES, kill_after=KILL_AFTER)


def kill_mid_run_then_finish(
    mailbox: Mailbox, deliver: Callable[[Mailbox, bytes], object], *, count: int, kill_after: int
) -> None:
    """Deliver ``count`` messages, SIGKILL the worker syncing them once ``kill_after`` are
    stored, let a fresh worker finish: each message is one activity, none missing."""
    for number in range(count):
        deliver(mailbox, messages.simple(to=mailbox.email_address, subject=f"Message {number:03d}"))
    stored = Receipt.objects.filter(mailbox=mailbox)

    with celery_worker(queues="incoming", name="doomed") as doomed:
        (claim,) = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
        incoming_mailbox.delay(claim.mailbox_id, claim.token)
        wait_until(lambda: stored.count() >= kill_after, what=f"{kill_after} stored messages")
        doomed.kill(signal.SIGKILL)
    at_kill = stored.count()
    assert kill_after <= at_kill < count, "the worker must die mid-run for this test to mean anything"

    with celery_worker(queues="incoming", name="fresh"), after_leases_expire():
        (claim,) = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
        assert incoming_mailbox.delay(claim.mailbox_id, claim.token).get(timeout=120) == "success"

    subjects = list(EmailActivity.objects.filter(direction="incoming").values_list("subject", flat=True))
    assert sorted(subjects) == [f"Message {number:03d}" for number in range(count)]
    assert stored.count() == count


def test_a_worker_killed_right_after_the_servers_250_leaves_outcome_unknown_and_one_copy(stack):
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    message = compose(api_client_for(alice), subject="Exactly once", to=[bob.email_address])

    send_until_killed_after_data(alice)
    message.refresh_from_db()
    assert message.status == "sending"
    assert stack.relay.accepted_count(message.message_id) == 1

    with after_leases_expire():
        assert outgoing.settle_expired_claims() == 1
        outgoing.send_pending(mailbox=alice)
    message.refresh_from_db()
    assert message.status == "outcome_unknown"
    assert MailboxAlert.objects.get(mailbox=alice, code="outcome_unknown").level == "error"
    assert stack.relay.accepted_count(message.message_id) == 1
    assert [m["Subject"] for m in inbox(stack, bob)] == [f"Exactly once {message.tracking_token}"]
