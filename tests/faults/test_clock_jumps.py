"""The clock jumping forward and back while mailboxes wait and while a run is under way.

Each run leaves a mailbox in every kind of wait the engine stores: its incoming schedule
set ahead after a run, its outgoing direction postponed after a send the server refused
for now (451), that email's retry backoff, and a second email that the profile's send
rate (one a minute) holds back. Then the clock jumps (time-machine moves ``sync.clock``
and everything else), and the dispatcher and the worker's tasks run as Celery beat and
a worker would, one dispatcher tick every 30 s of the moved clock, until the mailbox has
every message and sent both emails. The rule that keeps a clock set back from stalling
it is in sync/clock.py.

Counted: messages lost or doubled (receipts and activities) and emails lost or doubled
(the recipient's copies, by Message-ID); "recovered in" is the moved clock's seconds from
the jump until the mailbox is caught up (a multiple of the 30 s tick). A mailbox must be
caught up within ``MAX_TICKS`` ticks: a stall lasts as long as the jump (an hour, a day).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from celery import Task
from imapclient import IMAPClient

from crm.models import EmailActivity, OrganizationSettings
from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from sync import alerts, checkpoints, outages, outgoing, retention, scheduler, tasks
from sync.clock import now as clock_now
from sync.incoming import sync_incoming
from sync.models import MailboxAlert, MailboxSchedule, OutgoingClaim, Rollout, SyncKind, SyncOutcome, SyncRun
from tests import factories, messages
from tests.faults.conftest import FaultRow
from tests.faults.runs import runs
from tests.faults.test_network import incoming_outcome
from tests.harness.fixtures import MailUser
from tests.sync.stack import Stack
from tests.sync.test_engine_outgoing import api_client_for, compose
from tests.sync.test_rollout import organization, plan_at, tick_at
from tests.sync.test_scheduler import ready

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

RUNS = runs(in_make_test=2)
TICK = timedelta(seconds=30)
# Ten minutes of the moved clock: the send rate's minute and a first retry's five, with room.
MAX_TICKS = 20
T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
FORWARD = {"+1 h": timedelta(hours=1), "+1 day": timedelta(days=1), "+30 days": timedelta(days=30)}
BACK = {"-1 h": timedelta(hours=-1), "-1 day": timedelta(days=-1)}
TASKS: dict[str, Task[[int, str], str]] = {
    SyncKind.INCOMING: tasks.incoming_mailbox,
    SyncKind.OUTGOING: tasks.outgoing_mailbox,
}


def tick(mailbox: Mailbox) -> None:
    """One dispatcher beat (as ``sync.tasks.dispatch``) and the worker's tasks it enqueues for ``mailbox``."""
    outgoing.settle_expired_claims()
    for claim in scheduler.dispatch(kinds=tuple(TASKS)):
        if claim.mailbox_id == mailbox.pk:
            TASKS[claim.kind](claim.mailbox_id, claim.token)


def received_copies(stack: Stack, user: MailUser) -> Counter[str]:
    """The recipient's copies, by Message-ID (fixed before any network I/O)."""
    with IMAPClient(
        stack.dovecot.host, port=stack.dovecot.imaps_port, ssl_context=stack.dovecot.ssl_context()
    ) as imap:
        imap.login(user.address, user.password)
        imap.select_folder("INBOX", readonly=True)
        fetched = imap.fetch(imap.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    ids = (
        data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip()
        for data in fetched.values()
    )
    return Counter(i.strip("<>") for i in ids)


class Waiting:
    """A mailbox left in every stored wait, with what it must end up holding and having sent."""

    def __init__(
        self, stack: Stack, recipient: MailUser, name: str, traveller: time_machine.Traveller
    ) -> None:
        self.stack, self.recipient = stack, recipient
        self.mailbox = stack.user_mailbox(name)
        self.subjects = [f"{name} message {n}" for n in range(6)]
        self.deliver(self.subjects[:3])
        client = api_client_for(self.mailbox)
        self.emails = [
            compose(client, subject=f"{name} email {n}", body_text="Hello", to=[recipient.address])
            for n in "AB"
        ]
        # A goes; B waits for the send rate's next slot (a minute on), when its DATA is refused
        # for now: B's backoff and the direction's postponement. C waits its turn.
        tick(self.mailbox)
        assert self.last_run(SyncKind.OUTGOING).outcome == SyncOutcome.PARTIAL
        assert self.last_run(SyncKind.INCOMING).received == 3
        self.stack.relay.fail_next(451, "4.3.0 Try again later")
        traveller.shift(timedelta(minutes=1))
        tick(self.mailbox)
        assert self.last_run(SyncKind.OUTGOING).outcome == SyncOutcome.FAILED
        self.emails.append(
            compose(client, subject=f"{name} email C", body_text="Hello", to=[recipient.address])
        )
        self.deliver(self.subjects[3:])
        self.assert_waiting()

    def assert_waiting(self) -> None:
        """Every wait the jump must not stretch is stored ahead of now."""
        now = clock_now()
        self.mailbox.refresh_from_db()
        assert self.mailbox.outgoing_postponed_until is not None
        assert self.mailbox.outgoing_postponed_until > now
        schedule = MailboxSchedule.objects.get(mailbox=self.mailbox, kind=SyncKind.INCOMING)
        assert schedule.next_due_on > now
        retry = OutgoingClaim.objects.get(email_id=self.emails[1].pk).next_attempt_on
        assert retry is not None
        assert retry > now
        sent = EmailActivity.objects.filter(pk=self.emails[0].pk, status=EmailActivity.Status.SENT)
        assert sent.exists()  # counted against the send rate once the clock is set back

    def deliver(self, subjects: list[str]) -> None:
        address = self.mailbox.email_address
        self.stack.dovecot.deliver_many(address, [messages.simple(to=address, subject=s) for s in subjects])

    def last_run(self, kind: str) -> SyncRun:
        run = SyncRun.objects.filter(mailbox=self.mailbox, kind=kind).order_by("-pk").first()
        assert run is not None
        return run

    def caught_up(self) -> bool:
        lost, _ = incoming_outcome(self.mailbox, self.subjects)
        statuses = EmailActivity.objects.filter(pk__in=[e.pk for e in self.emails]).values_list(
            "status", flat=True
        )
        return lost == 0 and set(statuses) == {EmailActivity.Status.SENT}

    def count(self, row: FaultRow, recovered_in: float) -> None:
        lost, doubled = incoming_outcome(self.mailbox, self.subjects)
        copies = received_copies(self.stack, self.recipient)
        sent = EmailActivity.objects.filter(pk__in=[e.pk for e in self.emails])
        lost += sum(1 for e in sent if copies[e.message_id] == 0)
        doubled += sum(max(copies[e.message_id] - 1, 0) for e in sent)
        row.add(
            messages=len(self.subjects) + len(self.emails),
            lost=lost,
            doubled=doubled,
            recovered_in=recovered_in,
        )
        assert (lost, doubled) == (0, 0)
        # Its state says it works again: both directions healthy, the 451's alert resolved.
        self.mailbox.refresh_from_db()
        assert (self.mailbox.incoming_status, self.mailbox.outgoing_status) == ("success", "success")
        assert not MailboxAlert.objects.filter(
            subject_key=alerts.subject_key(mailbox=self.mailbox), resolved_on__isnull=True
        ).exists()
        # Done with: later runs' ticks leave it alone.
        Mailbox.objects.filter(pk=self.mailbox.pk).update(incoming_enabled=False, outgoing_enabled=False)


def jump_and_recover(
    stack: Stack, recipient: MailUser, row: FaultRow, jump: timedelta, name: str, start: datetime
) -> None:
    with time_machine.travel(start, tick=False) as traveller:
        waiting = Waiting(stack, recipient, name, traveller)
        traveller.shift(jump)
        if jump >= timedelta(days=30):
            retention.cleanup()  # the daily clean-up, a month on: it must keep what the mailbox needs
        waited = ticks_until(waiting.mailbox, waiting.caught_up, traveller, MAX_TICKS)
        waiting.count(row, recovered_in=waited.total_seconds())


def ticks_until(
    mailbox: Mailbox, done: Callable[[], bool], traveller: time_machine.Traveller, most: int
) -> timedelta:
    """Dispatcher ticks every 30 s of the moved clock until ``done``; the moved time it took."""
    for ticks in range(most):
        tick(mailbox)
        if done():
            return ticks * TICK
        traveller.shift(TICK)
    raise AssertionError(f"{mailbox}: not caught up {most} ticks after the jump (a stall)")


@pytest.fixture
def rate_limited(stack: Stack) -> Stack:
    EmailServerProfile.objects.filter(pk=stack.profile.pk).update(outgoing_rate_limit_per_minute=1)
    return stack


@pytest.mark.parametrize("jump", list(FORWARD))
def test_a_clock_jumping_forward_loses_and_doubles_nothing(rate_limited, mail_user, fault_table, jump):
    row = fault_table(
        "Clock jumps forward (+1 h, +1 day, +30 days with the daily clean-up) while a mailbox waits "
        "(schedule, postponement, retry backoff, send rate); recovered in: seconds of the moved clock"
    )
    recipient = mail_user("fwdto")
    for run in range(RUNS):
        start = T0 + run * timedelta(days=60)
        jump_and_recover(rate_limited, recipient, row, FORWARD[jump], f"fwd{run}", start)


@pytest.mark.parametrize("jump", list(BACK))
def test_a_clock_set_back_stalls_no_mailbox(rate_limited, mail_user, fault_table, jump):
    row = fault_table(
        "Clock jumps back (-1 h, -1 day) while a mailbox waits (schedule, postponement, retry backoff, "
        "send rate); recovered in: seconds of the moved clock"
    )
    recipient = mail_user("backto")
    for run in range(RUNS):
        start = T0 + run * timedelta(days=60)
        jump_and_recover(rate_limited, recipient, row, BACK[jump], f"back{run}", start)


def test_a_lease_lapsing_under_a_live_run_doubles_nothing(stack, settings, fault_table):
    """+1 day in the middle of a run: its lease lapses, the dispatcher hands the mailbox
    to a second worker, which syncs it whole while the first run goes on storing."""
    settings.SYNC_BATCH_MESSAGES = 5
    row = fault_table(
        "Clock jumps forward +1 day mid-run (the run's lease lapses; a second worker syncs the "
        "mailbox while the first goes on); recovered in: no run fails"
    )
    for run in range(RUNS):
        with time_machine.travel(T0 + run * timedelta(days=60), tick=False) as traveller:
            handed_over_mid_run(stack, row, traveller, f"live{run}")


def handed_over_mid_run(stack: Stack, row: FaultRow, traveller: time_machine.Traveller, name: str) -> None:
    mailbox = stack.user_mailbox(name)
    subjects = [f"{name} message {n:02d}" for n in range(30)]
    address = mailbox.email_address
    stack.dovecot.deliver_many(address, [messages.simple(to=address, subject=s) for s in subjects])
    first = claimed(mailbox)
    second: list[SyncRun | None] = []

    def jump_and_hand_over(progress: SyncRun) -> None:
        if not second:
            traveller.shift(timedelta(days=1))
            second.append(scheduler.run_claimed(claimed(mailbox), lambda m: sync_incoming(mailbox=m)))

    outer = scheduler.run_claimed(first, lambda m: sync_incoming(mailbox=m, on_progress=jump_and_hand_over))
    # The proof that two workers had the mailbox at once: the second ran, and finished first.
    assert second
    assert second[0] is not None
    assert second[0].outcome == SyncOutcome.SUCCESS
    assert outer is not None
    assert outer.outcome == SyncOutcome.SUCCESS
    lost, doubled = incoming_outcome(mailbox, subjects)
    row.add(messages=len(subjects), lost=lost, doubled=doubled, recovered_in=0.0)
    assert (lost, doubled) == (0, 0)
    # The first run's release found the lease no longer its own and left the schedule be.
    schedule = MailboxSchedule.objects.get(mailbox=mailbox, kind=SyncKind.INCOMING)
    assert schedule.lease_token is None
    assert schedule.next_due_on > clock_now()
    Mailbox.objects.filter(pk=mailbox.pk).update(incoming_enabled=False, outgoing_enabled=False)


def test_a_clock_set_back_frees_a_dead_workers_lease_one_lease_length_later(stack, fault_table):
    """A worker claimed the mailbox and died; then the clock is set back a day. Its lease
    (now a day and more ahead) lapses one lease length after the dispatcher sees it, not a day."""
    row = fault_table(
        "Clock jumps back -1 day while a dead worker holds the mailbox's lease; recovered in: "
        "seconds of the moved clock (the lease length is 600 s)"
    )
    for run in range(RUNS):
        with time_machine.travel(T0 + run * timedelta(days=60), tick=False) as traveller:
            dead_lease_set_back(stack, row, traveller, f"dead{run}")


def dead_lease_set_back(stack: Stack, row: FaultRow, traveller: time_machine.Traveller, name: str) -> None:
    mailbox = stack.user_mailbox(name)
    subjects = [f"{name} message {n}" for n in range(3)]
    address = mailbox.email_address
    stack.dovecot.deliver_many(address, [messages.simple(to=address, subject=s) for s in subjects])
    claimed(mailbox)  # and the worker it went to died
    traveller.shift(timedelta(days=-1))
    lease_ticks = int(scheduler._lease_length() / TICK)
    waited = ticks_until(
        mailbox, lambda: incoming_outcome(mailbox, subjects)[0] == 0, traveller, most=lease_ticks + 2
    )
    lost, doubled = incoming_outcome(mailbox, subjects)
    row.add(messages=len(subjects), lost=lost, doubled=doubled, recovered_in=waited.total_seconds())
    assert (lost, doubled) == (0, 0)
    Mailbox.objects.filter(pk=mailbox.pk).update(incoming_enabled=False, outgoing_enabled=False)


def claimed(mailbox: Mailbox) -> scheduler.Claim:
    """The dispatcher's claim of the mailbox's incoming direction (it must make one)."""
    claims = [c for c in scheduler.dispatch(kinds=(SyncKind.INCOMING,)) if c.mailbox_id == mailbox.pk]
    assert len(claims) == 1, claims
    return claims[0]


# -- the rule (sync/clock.py), a piece at a time: no mail server needed ---------------------


def test_a_schedule_set_further_ahead_than_any_wait_is_due_and_one_within_its_wait_is_not(world):
    mailbox = ready(world["alice"].mailbox)
    with time_machine.travel(T0, tick=False):
        (claim,) = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
        scheduler.release(claim, run=None, mailbox=mailbox)  # an idle run: due again in a few minutes
        assert scheduler.dispatch(kinds=(SyncKind.INCOMING,)) == []
        schedule = MailboxSchedule.objects.filter(mailbox=mailbox, kind=SyncKind.INCOMING)
        # The clock set back an hour: the next due time now lies an hour and more ahead.
        schedule.update(next_due_on=T0 + timedelta(hours=1, minutes=5))
        assert [c.mailbox_id for c in scheduler.dispatch(kinds=(SyncKind.INCOMING,))] == [mailbox.pk]


def test_a_due_time_written_a_moment_after_a_ticks_now_is_not_a_clock_set_back(world, settings):
    """A run released while a dispatcher tick goes on writes its next due time from its own now,
    a little after the tick's: that is no clock set back, and the tick leaves the mailbox alone."""
    mailbox = ready(world["alice"].mailbox)
    with time_machine.travel(T0, tick=False):
        (claim,) = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
        scheduler.release(claim, run=None, mailbox=mailbox)
        schedule = MailboxSchedule.objects.filter(mailbox=mailbox, kind=SyncKind.INCOMING)
        longest = timedelta(
            minutes=max(settings.SYNC_IDLE_BACKOFF_MAX_MINUTES, settings.PUSH_SAFETY_POLL_MINUTES)
        )
        schedule.update(next_due_on=T0 + longest + timedelta(seconds=2))

        assert scheduler.dispatch(kinds=(SyncKind.INCOMING,)) == []


def test_a_send_claim_left_far_ahead_lapses_one_claim_length_after_the_clock_went_back(stack, settings):
    mailbox = stack.user_mailbox("claimback")
    email = compose(api_client_for(mailbox), subject="Held", body_text="Hello", to=["x@example.test"])
    organization = OrganizationSettings.load()
    with time_machine.travel(T0, tick=False) as traveller:
        assert outgoing.claim_email(email=email, mailbox=mailbox, organization=organization) is not None
        # The worker sending it dies; the clock is set back a day.
        traveller.shift(timedelta(days=-1))
        assert outgoing.settle_expired_claims() == 0  # a live send would keep its claim a claim length
        traveller.shift(timedelta(seconds=settings.SYNC_LEASE_SECONDS + 1))
        assert outgoing.settle_expired_claims() == 1
    email.refresh_from_db()
    assert email.status == EmailActivity.Status.OUTCOME_UNKNOWN


def test_a_run_stamped_after_now_is_no_recent_probe(world):
    mailbox = world["alice"].mailbox
    with time_machine.travel(T0, tick=False):
        factories.sync_run(mailbox=mailbox, outcome=SyncOutcome.FAILED, started_on=T0 + timedelta(days=1))
        assert not outages.probed_recently(profile_id=mailbox.profile_id, kind=SyncKind.INCOMING, now=T0)
        factories.sync_run(mailbox=mailbox, outcome=SyncOutcome.FAILED, started_on=T0 - timedelta(minutes=1))
        assert outages.probed_recently(profile_id=mailbox.profile_id, kind=SyncKind.INCOMING, now=T0)


def test_a_rollouts_next_batch_left_far_ahead_starts_and_one_within_its_window_waits(settings):
    settings.SYNC_ROLLOUT_BATCH_SIZE = 1
    rollout = plan_at(T0, organization(queues=3, users=0))
    assert [number for _, number in tick_at(T0)] == [1]
    assert tick_at(T0 + timedelta(minutes=10)) == []  # within the window: waits
    assert [number for _, number in tick_at(T0 - timedelta(days=1))] == [2]  # the clock set back a day
    assert Rollout.objects.get(pk=rollout.pk).next_batch_number == 3


def test_a_send_claim_lapsing_mid_send_sends_once(stack, mail_user, fault_table):
    """+1 day between the server's answer to DATA and the email recorded Sent: its send
    claim lapses and a dispatcher beat settles it meanwhile. It is delivered once, and
    never sent again; the worker still records it Sent."""
    row = fault_table(
        "Clock jumps forward +1 day mid-send (after DATA: the send claim lapses and the dispatcher "
        "settles it meanwhile); recovered in: no run fails"
    )
    recipient = mail_user("midsendto")
    for run in range(RUNS):
        with time_machine.travel(T0 + run * timedelta(days=60), tick=False) as traveller:
            sent_while_settled(stack, recipient, row, traveller, f"midsend{run}")


def sent_while_settled(
    stack: Stack, recipient: MailUser, row: FaultRow, traveller: time_machine.Traveller, name: str
) -> None:
    mailbox = stack.user_mailbox(name)
    email = compose(api_client_for(mailbox), subject=f"{name} email", body_text="Hi", to=[recipient.address])
    settled: list[int] = []

    def jump_and_settle(point: str) -> None:
        if point == "after_smtp_data" and not settled:
            traveller.shift(timedelta(days=1))
            settled.append(outgoing.settle_expired_claims())

    checkpoints.install(jump_and_settle)
    try:
        run = outgoing.send_pending(mailbox=mailbox)
    finally:
        checkpoints.install(None)
    assert settled == [1]  # the proof: the claim lapsed under the live send and was settled
    for _ in range(3):  # later runs must not send it again
        outgoing.send_pending(mailbox=mailbox)
    email.refresh_from_db()
    copies = received_copies(stack, recipient)[email.message_id]
    row.add(messages=1, lost=int(copies == 0), doubled=max(copies - 1, 0), recovered_in=0.0)
    assert copies == 1
    assert run.outcome == SyncOutcome.SUCCESS
    assert email.status == EmailActivity.Status.SENT
