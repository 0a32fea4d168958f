"""Which mailbox is due, leases, connection caps and backoff.

The database is the one source of truth for any number of workers on any
number of machines: the dispatcher claims due schedules with a conditional
update (under ``SELECT … FOR UPDATE SKIP LOCKED`` where the database has it),
and a task whose lease is no longer its own returns at once, so a redelivered
task does no harm.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import DurationField, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Greatest

from crm.choices import ActMethod, IncomingMethod, OutgoingMethod, ProcessEmailUsing
from crm.models import OrganizationSettings
from mailboxes.models import DIRECTION_FIELDS, Mailbox
from sync import clock, mailbox_state, outages, push_leases
from sync.connection_caps import OpenConnections
from sync.connectors import registry
from sync.models import MailboxSchedule, SyncKind, SyncOutcome, SyncRun
from sync.send_rate import RATE_WINDOW, send_slot_free_on


@dataclass(frozen=True)
class Claim:
    mailbox_id: int
    kind: str
    token: str


def eligible(kind: str, *, now: datetime | None = None) -> QuerySet[Mailbox]:
    """Mailboxes that may sync ``kind`` now. Those of a server type without connectors
    in the registry are "not supported yet": left out here, never failed or disabled."""
    now = now or clock.now()
    organization = OrganizationSettings.load()
    if organization.process_email_using != ProcessEmailUsing.SERVER_SIDE_SYNC:
        return Mailbox.objects.none()
    mailboxes = Mailbox.objects.for_active_owners().filter(
        profile__is_active=True, profile__server_type__in=registry.supported_types()
    )
    if kind == SyncKind.INCOMING:
        mailboxes = mailboxes.filter(incoming_method=IncomingMethod.SERVER_SIDE_SYNC, incoming_enabled=True)
    elif kind == SyncKind.ACT:
        mailboxes = mailboxes.filter(
            act_method=ActMethod.SERVER_SIDE_SYNC,
            act_enabled=True,
            user__isnull=False,
            profile__server_type__in=registry.act_types(),
        )
    else:
        mailboxes = mailboxes.filter(outgoing_method=OutgoingMethod.SERVER_SIDE_SYNC, outgoing_enabled=True)
    postponed_until = DIRECTION_FIELDS[kind].postponed_until
    mailboxes = mailboxes.filter(
        Q(**{f"{postponed_until}__isnull": True})
        | clock.came(postponed_until, now=now, longest=mailbox_state.longest_postponement())
    )
    return mailboxes.approved_where_required(organization)


def dispatch(*, kinds: tuple[str, ...] = (SyncKind.INCOMING, SyncKind.OUTGOING, SyncKind.ACT)) -> list[Claim]:
    """Claim every due mailbox within the connection caps; return the claims to enqueue."""
    now = clock.now()
    # A clock set back leaves leases far ahead (sync/clock.py): they lapse one lease length from now.
    leased = MailboxSchedule.objects.filter(lease_token__isnull=False)
    clock.rebase(leased, "lease_expires_on", now=now, length=_lease_length())
    claims: list[Claim] = []
    for kind in kinds:
        _ensure_schedules(kind, now)
        claims += _claim_due(kind, now)
    return claims


def _ensure_schedules(kind: str, now: datetime) -> None:
    missing = eligible(kind, now=now).exclude(schedules__kind=kind).values_list("pk", "profile_id")
    MailboxSchedule.objects.bulk_create(
        [
            MailboxSchedule(mailbox_id=pk, kind=kind, profile_id=profile, next_due_on=now)
            for pk, profile in missing
        ],
        ignore_conflicts=True,
    )


def _free(now: datetime) -> Q:
    return Q(lease_token__isnull=True) | Q(lease_expires_on__lt=now)


def _claim_due(kind: str, now: datetime) -> list[Claim]:
    with transaction.atomic():
        due = (
            MailboxSchedule.objects.filter(kind=kind, mailbox__in=eligible(kind, now=now))
            .filter(_due(kind, now))
            .filter(_free(now))
            .select_related("mailbox__profile")
            .order_by("next_due_on", "pk")
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        room = OpenConnections(now)
        probes = _Probes(kind, now)
        claims = []
        for schedule in due[: settings.SYNC_DISPATCH_BATCH]:
            if not probes.allows(schedule) or not room.take_run(schedule.mailbox):
                continue
            token = uuid.uuid4()
            claimed = MailboxSchedule.objects.filter(pk=schedule.pk).filter(_free(now))
            if claimed.update(lease_token=token, lease_expires_on=now + _lease_length()):
                claims.append(Claim(schedule.mailbox_id, kind, str(token)))
        return claims


def _lease_length() -> timedelta:
    # Long enough for a run's time budget, the last message's own time limit and
    # connecting, so a live run never outlives its lease; a dead worker's lease
    # lapses soon after.
    needed = 2 * settings.SYNC_RUN_MAX_SECONDS + settings.SYNC_MESSAGE_MAX_SECONDS
    return timedelta(seconds=max(settings.SYNC_LEASE_SECONDS, needed))


class _Probes:
    """A profile in an outage gets one mailbox through per retry interval, to see
    whether its server answers again; the rest wait without trying."""

    def __init__(self, kind: str, now: datetime) -> None:
        self.kind, self.now = kind, now
        self.in_outage = outages.probing_profiles(kind)
        self.probed: set[int] = set()

    def allows(self, schedule: MailboxSchedule) -> bool:
        profile_id = schedule.mailbox.profile_id
        if profile_id not in self.in_outage:
            return True
        if profile_id in self.probed or outages.probed_recently(
            profile_id=profile_id, kind=self.kind, now=self.now
        ):
            return False
        self.probed.add(profile_id)
        return True


def claim_now(*, mailbox: Mailbox, kind: str) -> Claim | None:
    """Claim one mailbox at once, due or not (``manage.py sync_mailbox``); None when a worker holds it."""
    now = clock.now()
    schedule, _ = MailboxSchedule.objects.get_or_create(
        mailbox=mailbox, kind=kind, defaults={"next_due_on": now, "profile": mailbox.profile}
    )
    token = uuid.uuid4()
    if (
        MailboxSchedule.objects.filter(pk=schedule.pk)
        .filter(_free(now))
        .update(lease_token=token, lease_expires_on=now + _lease_length())
    ):
        return Claim(mailbox.pk, kind, str(token))
    return None


def run_claimed(claim: Claim, work: Callable[[Mailbox], SyncRun]) -> SyncRun | None:
    """Run ``work`` for a claimed mailbox if the lease is still this claim's, then
    release it and set when the mailbox is next due."""
    now = clock.now()
    held = MailboxSchedule.objects.filter(
        mailbox_id=claim.mailbox_id, kind=claim.kind, lease_token=claim.token, lease_expires_on__gte=now
    )
    # The lease check reads the idle count and whether push is live too, so that the release
    # need not read them again (an idle poll is a handful of statements: B2).
    row = held.annotate(push_live=push_leases.live_for(OuterRef("mailbox_id"), now))
    found = row.values_list("idle_runs", "push_live").first()
    if found is None:
        return None  # redelivered or expired: someone else owns this mailbox now
    idle_runs, push_live = found
    mailbox = Mailbox.objects.select_related("profile", "user", "queue").get(pk=claim.mailbox_id)
    run = work(mailbox)
    release(claim, run=run, mailbox=mailbox, idle_runs=idle_runs, push_live=push_live)
    return run


def release(
    claim: Claim,
    *,
    run: SyncRun | None,
    mailbox: Mailbox,
    idle_runs: int | None = None,
    push_live: bool | None = None,
) -> None:
    """Give the lease back and set when the mailbox is next due. ``idle_runs``,
    the schedule's idle count as read when the run began, saves reading it
    again: the release then writes only if the count is still that (nothing
    else changed it meanwhile), and otherwise reads it anew. ``push_live``, as
    read when the run began, likewise (None: asked here)."""
    schedule = MailboxSchedule.objects.filter(mailbox_id=claim.mailbox_id, kind=claim.kind)
    if idle_runs is not None and _released(
        claim, run, mailbox, schedule.filter(idle_runs=idle_runs), idle_runs, push_live
    ):
        return
    _released(claim, run, mailbox, schedule, schedule.get().idle_runs, push_live)


def _released(
    claim: Claim,
    run: SyncRun | None,
    mailbox: Mailbox,
    schedule: QuerySet[MailboxSchedule],
    idle_runs: int,
    push_live: bool | None,
) -> bool:
    busy = run is not None and (run.received or run.sent or run.outcome == SyncOutcome.PARTIAL)
    failed = run is not None and run.outcome == SyncOutcome.FAILED
    # A failed run is not idleness: its retry time is the mailbox's postponement.
    idle_runs = idle_runs if failed else 0 if busy else idle_runs + 1
    updated = schedule.filter(lease_token=claim.token).update(
        lease_token=None,
        lease_expires_on=None,
        idle_runs=idle_runs,
        last_run_on=clock.now(),
        next_due_on=_not_before_send_slot(
            claim,
            run,
            mailbox,
            next_due(mailbox, run=run, idle_runs=idle_runs, kind=claim.kind, push_live=push_live),
        ),
        profile=mailbox.profile,
    )
    return updated > 0


def _not_before_send_slot(claim: Claim, run: SyncRun | None, mailbox: Mailbox, due: datetime) -> datetime:
    """A send run stopped by the profile's rate limit is due when the next slot frees, not at once."""
    if claim.kind != SyncKind.OUTGOING or run is None or run.outcome != SyncOutcome.PARTIAL:
        return due
    slot = send_slot_free_on(mailbox)
    return max(due, slot) if slot is not None else due


ACT_INTERVAL = timedelta(minutes=5)
ACT_IDLE_CAP = timedelta(minutes=15)


def _due(kind: str, now: datetime) -> Q:
    """Schedules due now: their time has come, or it lies further ahead than ``next_due``
    (or a send slot) ever sets one, the idle cap or the mailbox's profile's polling
    interval, whichever is longer (the clock went back: sync/clock.py)."""
    if kind == SyncKind.ACT:
        cap = max(ACT_IDLE_CAP, ACT_INTERVAL)
    else:
        cap = max(timedelta(minutes=settings.SYNC_IDLE_BACKOFF_MAX_MINUTES), RATE_WINDOW)
        if kind == SyncKind.INCOMING:  # the safety-net poll of a mailbox with live push
            cap = max(cap, timedelta(minutes=settings.PUSH_SAFETY_POLL_MINUTES))
    polling = clock.minutes("mailbox__profile__min_polling_interval_minutes")
    # PostgreSQL's GREATEST passes over NULL (a mailbox without a profile).
    longest = Greatest(Value(cap, output_field=DurationField()), polling)
    return clock.came("next_due_on", now=now, longest=longest, at_least=cap)


def next_due(
    mailbox: Mailbox,
    *,
    run: SyncRun | None,
    idle_runs: int,
    kind: str = SyncKind.INCOMING,
    push_live: bool | None = None,
) -> datetime:
    """Busy mailboxes come back after the minimum polling interval (at once when a
    run stopped at its budget); idle ones back off gradually to a cap; those push
    covers (``push_live`` if read already), after the safety-net interval."""
    now = clock.now()
    if run is not None and run.outcome in (SyncOutcome.PARTIAL, SyncOutcome.FAILED):
        return now
    interval = timedelta(minutes=mailbox.profile.min_polling_interval_minutes if mailbox.profile else 5)
    interval = max(interval, timedelta(minutes=1))
    if kind == SyncKind.ACT:
        # As Dynamics: appointments, contacts and tasks every 5 minutes, idle ones up to 15.
        interval = max(interval, ACT_INTERVAL)
    if idle_runs:
        cap = (
            ACT_IDLE_CAP
            if kind == SyncKind.ACT
            else timedelta(minutes=settings.SYNC_IDLE_BACKOFF_MAX_MINUTES)
        )
        interval = min(interval * 2 ** min(idle_runs - 1, 16), max(cap, interval))
    if kind == SyncKind.INCOMING and push_leases.covers_new_mail(mailbox, now=now, live_now=push_live):
        # Push brings new mail in seconds; the poll is only the safety net then.
        interval = max(interval, timedelta(minutes=settings.PUSH_SAFETY_POLL_MINUTES))
    return now + interval
