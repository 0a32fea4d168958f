"""Paced rollouts: 450 mailboxes, queues first, 200 per window, a worker killed
mid-batch, and a cancel. Windows move with time-machine; the tick runs in-process."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from mailboxes.models import ApprovalStatus, Mailbox
from sync.models import MailboxTest, Rollout, RolloutItem
from sync.models import TestState as State
from sync.rollout import STALLED_AFTER, rollout_cancel, rollout_plan, rollout_progress, rollout_tick
from tests import factories
from tests.harness.celery_worker import celery_worker
from tests.harness.dovecot import free_port
from tests.sync.test_crash_safety import wait_until

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=300)
FINISHED = (State.PASSED, State.FAILED, State.CANCELED)


def organization(*, queues: int, users: int, forwards: int = 0) -> list[Mailbox]:
    """Approved mailboxes on a profile whose server refuses connections: every test
    fails fast and the same way, which is all a test of pacing needs."""
    port = free_port()  # nothing listens there
    profile = factories.profile(
        incoming_server_location="127.0.0.1",
        incoming_port=port,
        incoming_use_ssl=False,
        outgoing_server_location="127.0.0.1",
        outgoing_port=port,
        outgoing_use_ssl=False,
    )
    credentials = {"allow_credentials_for_email_processing": True, "username": "u", "password": "p"}
    owners = [{"queue": factories.queue()} for _ in range(queues)]
    owners += [{"user": factories.crm_user()} for _ in range(users)]
    owners += [
        {"is_forward_mailbox": True, "email_address": f"forward{n}@example.test"} for n in range(forwards)
    ]
    mailboxes = [factories.mailbox(profile=profile, **owner, **credentials) for owner in owners]
    Mailbox.objects.filter(pk__in=[m.pk for m in mailboxes]).update(approval_status=ApprovalStatus.APPROVED)
    return mailboxes


def plan_at(moment: datetime, mailboxes: list[Mailbox]) -> Rollout:
    with time_machine.travel(moment, tick=False):
        return rollout_plan(mailbox_ids=[m.pk for m in mailboxes], created_by=None)


def tick_at(moment: datetime) -> list[tuple[int, int]]:
    with time_machine.travel(moment, tick=False):
        return rollout_tick().started


def batch_tests(rollout: Rollout, number: int) -> list[MailboxTest]:
    items = RolloutItem.objects.filter(rollout=rollout, batch_number=number)
    return list(MailboxTest.objects.filter(pk__in=items.values("test")).order_by("pk"))


def owner_kinds(rollout: Rollout, number: int) -> list[str]:
    items = RolloutItem.objects.filter(rollout=rollout, batch_number=number).select_related("mailbox")
    return [item.mailbox.owner_kind for item in items]


@pytest.mark.django_db
def test_450_mailboxes_go_queues_first_200_per_window():
    mailboxes = organization(queues=150, users=300)
    admin = factories.login_user("admin", administrator=True)
    with time_machine.travel(START, tick=False):
        rollout = rollout_plan(mailbox_ids=[m.pk for m in reversed(mailboxes)], created_by=admin)

    assert [batch.mailboxes for batch in rollout_progress(rollout=rollout)] == [200, 200, 50]
    assert owner_kinds(rollout, 1) == ["queue"] * 150 + ["user"] * 50
    assert owner_kinds(rollout, 2) == ["user"] * 200
    assert rollout.next_batch_on == START

    assert tick_at(START) == [(rollout.pk, 1)]
    first = batch_tests(rollout, 1)[0]
    assert (first.queued_on, first.requested_by, first.state) == (START, admin, State.QUEUED)
    assert tick_at(START + timedelta(minutes=1)) == []
    assert tick_at(START + WINDOW - timedelta(seconds=1)) == []
    assert tick_at(START + WINDOW) == [(rollout.pk, 2)]
    assert tick_at(START + WINDOW) == []
    assert tick_at(START + 2 * WINDOW + timedelta(minutes=3)) == [(rollout.pk, 3)]
    assert tick_at(START + 5 * WINDOW) == []

    rollout.refresh_from_db()
    assert (rollout.state, rollout.next_batch_on) == (Rollout.State.RUNNING, None)
    assert [len(batch_tests(rollout, n)) for n in (1, 2, 3)] == [200, 200, 50]
    progress = rollout_progress(rollout=rollout)
    assert [(b.started, b.counts[State.QUEUED]) for b in progress] == [
        (True, 200),
        (True, 200),
        (True, 50),
    ]

    MailboxTest.objects.filter(rollout=rollout).update(state=State.FAILED, finished_on=START)
    with time_machine.travel(START + 5 * WINDOW, tick=False):
        assert rollout_tick().completed == [rollout.pk]
    rollout.refresh_from_db()
    assert (rollout.state, rollout.finished_on) == (Rollout.State.COMPLETED, START + 5 * WINDOW)


@pytest.mark.django_db
def test_queue_mailboxes_then_users_then_forward_mailboxes(settings):
    settings.SYNC_ROLLOUT_BATCH_SIZE = 2
    forward, user, queue = (
        *organization(queues=0, users=0, forwards=1),
        *organization(queues=0, users=1),
        *organization(queues=1, users=0),
    )
    rollout = rollout_plan(mailbox_ids=[forward.pk, user.pk, queue.pk], created_by=None)
    assert [(i.batch_number, i.position, i.mailbox_id) for i in rollout.items.all()] == [
        (1, 1, queue.pk),
        (1, 2, user.pk),
        (2, 3, forward.pk),
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_start_a_batch_exactly_once(settings):
    settings.SYNC_ROLLOUT_BATCH_SIZE = 3
    rollout = plan_at(START, organization(queues=2, users=4))

    def tick() -> list[tuple[int, int]]:
        try:
            return rollout_tick(now=START).started
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        started = [batch for result in pool.map(lambda _: tick(), range(4)) for batch in result]

    assert started == [(rollout.pk, 1)]
    assert MailboxTest.objects.filter(rollout=rollout).count() == 3


@pytest.mark.django_db
def test_cancel_cancels_queued_tests_and_later_batches_and_lets_running_ones_finish(settings):
    settings.SYNC_ROLLOUT_BATCH_SIZE = 3
    rollout = plan_at(START, organization(queues=1, users=5))
    tick_at(START)
    running, *queued = batch_tests(rollout, 1)
    MailboxTest.objects.filter(pk=running.pk).update(state=State.TESTING, started_on=START)

    with time_machine.travel(START + timedelta(minutes=5), tick=False):
        rollout_cancel(rollout=rollout)

    rollout.refresh_from_db()
    assert (rollout.state, rollout.next_batch_on) == (Rollout.State.CANCELED, None)
    assert {t.state for t in MailboxTest.objects.filter(pk__in=[t.pk for t in queued])} == {State.CANCELED}
    assert MailboxTest.objects.get(pk=running.pk).state == State.TESTING
    assert tick_at(START + 3 * WINDOW) == []
    assert batch_tests(rollout, 2) == []
    assert rollout_cancel(rollout=rollout).state == Rollout.State.CANCELED


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_is_resumed_by_the_tick_and_the_rollout_can_be_canceled():
    rollout = rollout_plan(mailbox_ids=[m.pk for m in organization(queues=150, users=300)], created_by=None)
    first_batch = MailboxTest.objects.filter(rollout=rollout)
    finished = first_batch.filter(state__in=FINISHED)

    with celery_worker(queues="default", name="doomed") as doomed:
        (started,) = rollout_tick().started
        wait_until(lambda: finished.count() >= 20, what="20 finished tests")
        doomed.kill(signal.SIGKILL)
    finished_at_kill = finished.count()
    assert started == (rollout.pk, 1)
    assert 20 <= finished_at_kill < 200, "the worker must die mid-batch for this test to mean anything"
    finished_on_at_kill = dict(finished.values_list("pk", "finished_on"))

    # The fresh worker starts with an empty broker: only the tick can bring the rest back.
    with celery_worker(queues="default", name="fresh"):
        assert rollout_tick().requeued == 0  # not stalled yet: the batch just ran
        later = datetime.now(UTC) + STALLED_AFTER + timedelta(minutes=1)
        with time_machine.travel(later, tick=True):
            result = rollout_tick()
        assert (result.started, result.requeued) == ([], 200 - finished_at_kill)
        wait_until(lambda: finished.count() == 200, timeout=120, what="the whole first batch")

    assert first_batch.count() == 200
    assert RolloutItem.objects.filter(rollout=rollout, test__isnull=True, batch_number=1).count() == 0
    # Tests finished before the kill were not run again.
    assert dict(first_batch.filter(pk__in=finished_on_at_kill).values_list("pk", "finished_on")) == (
        finished_on_at_kill
    )
    assert set(first_batch.values_list("state", flat=True)) <= {State.PASSED, State.FAILED}

    rollout_cancel(rollout=rollout)
    assert tick_at(datetime.now(UTC) + 3 * WINDOW) == []
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.CANCELED
    assert MailboxTest.objects.filter(rollout=rollout).count() == 200
