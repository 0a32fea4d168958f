"""Nothing lost, nothing doubled on Exchange: real workers killed mid-way, through the real
clients against the Graph and EWS test servers."""

from __future__ import annotations

import signal

import pytest

from crm.models import EmailActivity
from sync import outgoing, scheduler
from sync.models import Receipt, SyncKind
from sync.tasks import incoming_mailbox, outgoing_mailbox
from tests import messages
from tests.harness.celery_worker import celery_worker
from tests.sync.exchange_stack import EwsStack, ExchangeStack, GraphStack
from tests.sync.test_crash_safety import after_leases_expire, wait_until
from tests.sync.test_engine_outgoing import api_client_for, compose

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
MESSAGES = 60
KILL_AFTER = 10


@pytest.fixture(params=["graph", "ews"])
def exchange(request, settings) -> ExchangeStack:
    if request.param == "graph":
        return GraphStack.build(settings, request.getfixturevalue("graph_server"))
    return EwsStack.build(settings, request.getfixturevalue("ews_server"))


def test_a_worker_killed_mid_sync_loses_nothing_and_doubles_nothing(exchange: ExchangeStack):
    alice = exchange.user_mailbox("alice")
    for number in range(MESSAGES):
        exchange.deliver(alice, messages.simple(to=alice.email_address, subject=f"Message {number:03d}"))
    stored = Receipt.objects.filter(mailbox=alice)

    with celery_worker(queues="incoming", name="doomed") as doomed:
        (claim,) = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
        incoming_mailbox.delay(claim.mailbox_id, claim.token)
        wait_until(lambda: stored.count() >= KILL_AFTER, what=f"{KILL_AFTER} stored messages")
        doomed.kill(signal.SIGKILL)
    at_kill = stored.count()
    assert KILL_AFTER <= at_kill < MESSAGES, "the worker must die mid-run for this test to mean anything"

    with celery_worker(queues="incoming", name="fresh"), after_leases_expire():
        (claim,) = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
        assert incoming_mailbox.delay(claim.mailbox_id, claim.token).get(timeout=120) == "success"

    subjects = list(EmailActivity.objects.filter(direction="incoming").values_list("subject", flat=True))
    assert sorted(subjects) == [f"Message {number:03d}" for number in range(MESSAGES)]
    assert stored.count() == MESSAGES


def test_a_worker_killed_right_after_the_server_took_the_email_sends_it_once_and_settles_it(
    exchange: ExchangeStack,
):
    alice, bob = exchange.user_mailbox("alice"), exchange.user_mailbox("bob")
    message = compose(api_client_for(alice), subject="Exactly once", to=[bob.email_address])

    with celery_worker(queues="outgoing", name="crashing", crash_at="after_smtp_data") as worker:
        claim = next(c for c in scheduler.dispatch(kinds=(SyncKind.OUTGOING,)) if c.mailbox_id == alice.pk)
        outgoing_mailbox.delay(claim.mailbox_id, claim.token)
        assert worker.process is not None
        assert worker.process.wait(timeout=60) == -signal.SIGKILL
    message.refresh_from_db()
    assert message.status == "sending"

    with after_leases_expire():
        assert outgoing.settle_expired_claims() == 1
        message.refresh_from_db()
        assert message.status == "outcome_unknown"
        # The next run finds it in Sent Items: sent, and never sent again.
        outgoing.send_pending(mailbox=alice)
    message.refresh_from_db()
    assert message.status == "sent"
    assert len(exchange.inbox(bob)) == 1
    assert len(exchange.sent_items(alice)) == 1
