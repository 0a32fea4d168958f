"""Paced test & enable of many mailboxes (Dynamics' migration best practice: at
most 200 mailboxes every 5 hours, queue mailboxes first, then users).

A rollout is planned once — every mailbox gets a batch number — and then moved
on by ``rollout_tick``, which Celery beat runs every minute: a due batch is
started (its tests created and enqueued), a batch whose workers died is
requeued, and a rollout whose every test has finished is completed. Each step
is a conditional update, so concurrent ticks never start a batch twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Q, Value, When

from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from sync import clock, enqueue
from sync.models import MailboxTest, Rollout, RolloutItem, TestState

ACTIVE = (Rollout.State.PLANNED, Rollout.State.RUNNING)
UNFINISHED = (TestState.QUEUED, TestState.TESTING)
# A rollout none of whose tests has been queued, started or finished for this long
# while some are still unfinished has lost its workers (or their broker messages):
# the unfinished tests are queued again. Long enough for the slowest round trip.
STALLED_AFTER = timedelta(minutes=10)

# Planned in this order: queue mailboxes, user mailboxes, forward mailboxes.
_OWNER_ORDER = Case(
    When(queue__isnull=False, then=Value(0)),
    When(user__isnull=False, then=Value(1)),
    When(is_forward_mailbox=True, then=Value(2)),
    default=Value(3),
    output_field=IntegerField(),
)


class RolloutError(Exception):
    """A rollout cannot be planned or changed as asked; the message says why."""


@dataclass
class BatchProgress:
    number: int
    mailboxes: int = 0
    started: bool = False
    counts: dict[str, int] = field(default_factory=lambda: {state: 0 for state in TestState.values})


@dataclass
class TickResult:
    started: list[tuple[int, int]] = field(default_factory=list)  # (rollout id, batch number)
    requeued: int = 0
    completed: list[int] = field(default_factory=list)


@transaction.atomic
def profile_rollout(*, profile: EmailServerProfile, created_by: User | AnonymousUser | None) -> Rollout:
    """ "Test & Enable Mailboxes" of a profile: every one of its mailboxes, as one
    background job paced like any rollout; its first batch starts at the next tick."""
    mailbox_ids = list(profile.mailboxes.values_list("pk", flat=True))
    if not mailbox_ids:
        raise RolloutError("This profile has no mailboxes to test.")
    return rollout_plan(mailbox_ids=mailbox_ids, created_by=created_by)


def rollout_plan(
    *, mailbox_ids: Iterable[int], created_by: User | AnonymousUser | None, round_trip: bool = False
) -> Rollout:
    """Plan a rollout of these mailboxes in numbered batches; its first batch is due at once."""
    ordered = list(
        Mailbox.objects.filter(pk__in=set(mailbox_ids))
        .annotate(owner_order=_OWNER_ORDER)
        .order_by("owner_order", "pk")
        .values_list("pk", flat=True)
    )
    if not ordered:
        raise RolloutError("Select at least one mailbox.")
    now = clock.now()
    rollout = Rollout.objects.create(
        created_by=created_by if isinstance(created_by, User) else None,
        created_on=now,
        batch_size=settings.SYNC_ROLLOUT_BATCH_SIZE,
        window_minutes=settings.SYNC_ROLLOUT_WINDOW_MINUTES,
        round_trip=round_trip,
        next_batch_on=now,
    )
    RolloutItem.objects.bulk_create(
        RolloutItem(
            rollout=rollout,
            mailbox_id=mailbox_id,
            batch_number=index // rollout.batch_size + 1,
            position=index + 1,
        )
        for index, mailbox_id in enumerate(ordered)
    )
    return rollout


def rollout_tick(*, now: datetime | None = None) -> TickResult:
    """Move every active rollout on: start due batches, requeue stalled tests, complete finished ones."""
    now = now or clock.now()
    result = TickResult()
    for rollout_id in Rollout.objects.filter(state__in=ACTIVE).values_list("pk", flat=True):
        batch = _start_due_batch(rollout_id, now)
        if batch is not None:
            result.started.append((rollout_id, batch))
        result.requeued += _requeue_stalled(rollout_id, now)
        if _complete_if_done(rollout_id, now):
            result.completed.append(rollout_id)
    return result


@transaction.atomic
def _start_due_batch(rollout_id: int, now: datetime) -> int | None:
    # A batch is due at its time, or at once when that lies further ahead than the
    # rollout's window (the clock went back since: sync/clock.py).
    due = clock.came("next_batch_on", now=now, longest=clock.minutes("window_minutes"))
    rollout = Rollout.objects.filter(due, pk=rollout_id, state__in=ACTIVE).first()
    if rollout is None:
        return None
    number = rollout.next_batch_number
    items = list(rollout.items.filter(batch_number=number, test__isnull=True))
    later = rollout.items.filter(batch_number__gt=number).exists()
    # The claim: of two ticks that read the same batch number, only one updates the row.
    claimed = Rollout.objects.filter(pk=rollout_id, state__in=ACTIVE, next_batch_number=number).update(
        state=Rollout.State.RUNNING,
        next_batch_number=number + 1,
        next_batch_on=now + timedelta(minutes=rollout.window_minutes) if later else None,
    )
    if not claimed or not items:
        return None
    tests = MailboxTest.objects.bulk_create(
        MailboxTest(
            mailbox_id=item.mailbox_id,
            requested_by_id=rollout.created_by_id,
            rollout_id=rollout_id,
            round_trip=rollout.round_trip,
            queued_on=now,
        )
        for item in items
    )
    for item, test in zip(items, tests, strict=True):
        item.test = test
    RolloutItem.objects.bulk_update(items, ["test"])
    for test in tests:
        enqueue.run_queued_test(test_id=test.pk)
    return number


def _requeue_stalled(rollout_id: int, now: datetime) -> int:
    cutoff = now - STALLED_AFTER
    tests = MailboxTest.objects.filter(rollout_id=rollout_id)
    recent = Q(queued_on__gte=cutoff) | Q(started_on__gte=cutoff) | Q(finished_on__gte=cutoff)
    if tests.filter(recent).exists():
        return 0
    with transaction.atomic():
        # Rows another tick is requeueing right now are skipped, and once it commits
        # they are recent again: a test is requeued once per stall.
        stuck = list(
            tests.filter(state__in=UNFINISHED, queued_on__lt=cutoff)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        MailboxTest.objects.filter(pk__in=stuck).update(
            state=TestState.QUEUED, queued_on=now, started_on=None
        )
        for test_id in stuck:
            enqueue.run_queued_test(test_id=test_id)
    return len(stuck)


def _complete_if_done(rollout_id: int, now: datetime) -> bool:
    not_started = RolloutItem.objects.filter(
        rollout=OuterRef("pk"), batch_number__gte=OuterRef("next_batch_number")
    )
    unfinished = MailboxTest.objects.filter(rollout=OuterRef("pk"), state__in=UNFINISHED)
    return bool(
        Rollout.objects.filter(pk=rollout_id, state=Rollout.State.RUNNING)
        .exclude(Exists(not_started))
        .exclude(Exists(unfinished))
        .update(state=Rollout.State.COMPLETED, finished_on=now, next_batch_on=None)
    )


@transaction.atomic
def rollout_cancel(*, rollout: Rollout) -> Rollout:
    """Cancel the tests still queued and every batch not started; tests already running finish."""
    locked = Rollout.objects.select_for_update().get(pk=rollout.pk)
    if locked.state == Rollout.State.CANCELED:
        return locked
    if locked.state == Rollout.State.COMPLETED:
        raise RolloutError("This rollout has completed; there is nothing left to cancel.")
    now = clock.now()
    MailboxTest.objects.filter(rollout=locked, state=TestState.QUEUED).update(
        state=TestState.CANCELED, finished_on=now, summary="Canceled with the rollout."
    )
    locked.state = Rollout.State.CANCELED
    locked.next_batch_on = None
    locked.finished_on = now
    locked.save(update_fields=["state", "next_batch_on", "finished_on"])
    return locked


def rollout_progress(*, rollout: Rollout) -> list[BatchProgress]:
    """Per batch: how many mailboxes, whether it started, and how many tests are in each state."""
    batches: dict[int, BatchProgress] = {}
    rows = (
        rollout.items.order_by()
        .values("batch_number", "test__state")
        .annotate(count=Count("pk"))
        .order_by("batch_number")
    )
    for row in rows:
        batch = batches.setdefault(row["batch_number"], BatchProgress(number=row["batch_number"]))
        batch.mailboxes += row["count"]
        if row["test__state"] is not None:
            batch.started = True
            batch.counts[row["test__state"]] += row["count"]
    return list(batches.values())
