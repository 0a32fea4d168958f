"""Which mailbox is due, leases and connection caps, with time moved in-process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from crm.models import OrganizationSettings
from mailboxes.models import ApprovalStatus, Mailbox
from profiles.models import CredentialsSource, ServerType
from sync import scheduler
from sync.connectors import registry
from sync.errors import ThrottledError
from sync.mailbox_state import record_failure
from sync.models import MailboxSchedule, SyncKind, SyncOutcome, SyncRun
from tests import factories

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def ready(mailbox: Mailbox, **changes) -> Mailbox:
    """Approved and enabled for incoming and outgoing, as test & enable leaves it."""
    values = {
        "approval_status": ApprovalStatus.APPROVED,
        "incoming_enabled": True,
        "outgoing_enabled": True,
        **changes,
    }
    Mailbox.objects.filter(pk=mailbox.pk).update(**values)
    mailbox.refresh_from_db()
    return mailbox


def incoming_claims() -> set[int]:
    return {claim.mailbox_id for claim in scheduler.dispatch(kinds=(SyncKind.INCOMING,))}


@time_machine.travel(T0, tick=False)
def test_only_eligible_mailboxes_are_claimed(world, monkeypatch):
    # A type with no connector in the registry (none today: Exchange Online's is taken out).
    monkeypatch.delitem(registry.KINDS, ServerType.EXCHANGE_ONLINE)
    alice = ready(world["alice"].mailbox)
    ready(world["bob"].mailbox, approval_status=ApprovalStatus.PENDING_APPROVAL)
    ready(world["quinn"].mailbox, incoming_enabled=False)
    exchange = factories.profile(
        "EXO",
        server_type=ServerType.EXCHANGE_ONLINE,
        incoming_server_location="",
        outgoing_server_location="",
    )
    ready(world["admin"].mailbox, profile=exchange)
    ready(world.queue_mailbox, incoming_postponed_until=T0 + timedelta(minutes=5))
    assert incoming_claims() == {alice.pk}
    # The mailbox of a type without connectors is "not supported yet": skipped, never failed or disabled.
    admin_box = Mailbox.objects.get(pk=world["admin"].mailbox.pk)
    assert (admin_box.incoming_enabled, admin_box.incoming_status) == (True, "not_run")


@time_machine.travel(T0, tick=False)
def test_nothing_runs_unless_the_organization_uses_server_side_sync(world):
    ready(world["alice"].mailbox)
    OrganizationSettings.objects.filter(pk=1).update(process_email_using="email_router")
    assert incoming_claims() == set()


@time_machine.travel(T0, tick=False)
def test_approval_is_not_required_when_the_organization_says_so(world):
    ready(world["bob"].mailbox, approval_status=ApprovalStatus.EMPTY)
    OrganizationSettings.objects.filter(pk=1).update(process_email_only_for_approved_users=False)
    assert world["bob"].mailbox.pk in incoming_claims()


@time_machine.travel(T0, tick=False)
def test_a_deactivated_users_mailbox_stops(world):
    ready(world["alice"].mailbox)
    world["alice"].crm_user.is_active = False
    world["alice"].crm_user.save()
    assert incoming_claims() == set()


def test_a_held_lease_is_not_claimed_twice_and_an_expired_one_is_reclaimed(world):
    ready(world["alice"].mailbox)
    with time_machine.travel(T0, tick=False):
        assert incoming_claims() == {world["alice"].mailbox.pk}
        assert incoming_claims() == set()
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        assert incoming_claims() == {world["alice"].mailbox.pk}


def test_a_task_whose_lease_is_not_its_own_does_nothing(world):
    ready(world["alice"].mailbox)
    ran: list[int] = []

    def work(mailbox: Mailbox) -> SyncRun:
        ran.append(mailbox.pk)
        return factories.sync_run(mailbox=mailbox, outcome=SyncOutcome.SUCCESS)

    with time_machine.travel(T0, tick=False):
        (claim,) = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
        stale = scheduler.Claim(claim.mailbox_id, claim.kind, "00000000-0000-0000-0000-000000000000")
        assert scheduler.run_claimed(stale, work) is None
        assert scheduler.run_claimed(claim, work) is not None
        assert scheduler.run_claimed(claim, work) is None  # a redelivered task after release
    assert ran == [world["alice"].mailbox.pk]


@time_machine.travel(T0, tick=False)
def test_the_profile_connection_cap_holds_when_the_profile_holds_the_credentials(world):
    shared = factories.profile(
        "Shared", credentials_source=CredentialsSource.PROFILE, username="svc", max_concurrent_connections=2
    )
    boxes = [ready(factories.mailbox(user=factories.crm_user(), profile=shared)) for _ in range(5)]
    first = incoming_claims()
    assert len(first & {b.pk for b in boxes}) == 2
    assert len(incoming_claims() & {b.pk for b in boxes}) == 0


@time_machine.travel(T0, tick=False)
def test_with_per_mailbox_credentials_each_mailbox_counts_alone(world):
    own = factories.profile("Own", max_concurrent_connections=1)
    boxes = [ready(factories.mailbox(user=factories.crm_user(), profile=own)) for _ in range(4)]
    assert {b.pk for b in boxes} <= incoming_claims()


def test_busy_mailboxes_return_after_the_polling_interval_idle_ones_back_off(world):
    mailbox = ready(world["alice"].mailbox)
    world.profile.min_polling_interval_minutes = 2
    world.profile.save()
    mailbox.refresh_from_db()
    waits = []
    for received in (3, 0, 0, 0, 0, 0, 0):
        with time_machine.travel(T0, tick=False):
            schedule, _ = MailboxSchedule.objects.update_or_create(
                mailbox=mailbox, kind=SyncKind.INCOMING, defaults={"next_due_on": T0, "lease_token": None}
            )
            (claim,) = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
            run = factories.sync_run(mailbox=mailbox, outcome=SyncOutcome.SUCCESS, received=received)
            scheduler.release(claim, run=run, mailbox=mailbox)
            waits.append(MailboxSchedule.objects.get(pk=schedule.pk).next_due_on - T0)
    assert waits[0] == timedelta(minutes=2)
    assert waits[1:4] == [timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=8)]
    assert waits[-1] == timedelta(minutes=30)  # SYNC_IDLE_BACKOFF_MAX_MINUTES


@time_machine.travel(T0, tick=False)
def test_a_run_stopped_by_its_budget_is_due_again_at_once(world):
    mailbox = ready(world["alice"].mailbox)
    (claim,) = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
    run = factories.sync_run(mailbox=mailbox, outcome=SyncOutcome.PARTIAL, received=200)
    scheduler.release(claim, run=run, mailbox=mailbox)
    assert MailboxSchedule.objects.get(mailbox=mailbox, kind=SyncKind.INCOMING).next_due_on == T0


def test_idle_runs_back_off_through_run_claimed_and_a_count_reset_meanwhile_is_kept(world):
    mailbox = ready(world["alice"].mailbox)
    world.profile.min_polling_interval_minutes = 2
    world.profile.save()

    def idle(reset: bool = False):
        def work(loaded: Mailbox) -> SyncRun:
            if reset:  # someone sets the count back while the mailbox syncs
                MailboxSchedule.objects.filter(mailbox=loaded).update(idle_runs=0)
            return factories.sync_run(mailbox=loaded, outcome=SyncOutcome.SUCCESS, received=0)

        return work

    def poll(work) -> tuple[int, timedelta]:
        MailboxSchedule.objects.filter(mailbox=mailbox).update(next_due_on=T0)
        (claim,) = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
        assert scheduler.run_claimed(claim, work) is not None
        schedule = MailboxSchedule.objects.get(mailbox=mailbox, kind=SyncKind.INCOMING)
        return schedule.idle_runs, schedule.next_due_on - T0

    with time_machine.travel(T0, tick=False):
        polls = [poll(idle()) for _ in range(3)]
        assert polls == [(1, timedelta(minutes=2)), (2, timedelta(minutes=4)), (3, timedelta(minutes=8))]
        assert poll(idle(reset=True)) == (1, timedelta(minutes=2))
        assert MailboxSchedule.objects.get(mailbox=mailbox).lease_token is None


def test_a_throttled_mailbox_is_claimed_again_once_the_servers_wait_is_over(world):
    mailbox = ready(world["alice"].mailbox)
    with time_machine.travel(T0, tick=False):
        record_failure(
            mailbox=mailbox,
            kind=SyncKind.INCOMING,
            error=ThrottledError("Too many requests.", retry_after=120),
        )
    with time_machine.travel(T0 + timedelta(seconds=119), tick=False):
        assert mailbox.pk not in incoming_claims()
    with time_machine.travel(T0 + timedelta(seconds=120), tick=False):
        assert mailbox.pk in incoming_claims()
