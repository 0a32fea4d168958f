"""New mail announced by push (an IMAP IDLE answer, a Graph notification): the
mailbox's incoming sync starts at once, coalesced.

An announcement marks the mailbox's push lease pending (since when: the latest
announcement) and makes its schedule due; one dispatch then claims it within
the scheduler's leases and connection caps, so a mailbox runs once at a time
however many announcements come. A run that started after the latest
announcement covers it (pending is cleared); one announced while a run was
already going is run again once that run lets go, so nothing announced is left
for the safety-net poll.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef

from sync import clock, enqueue, scheduler
from sync.models import MailboxSchedule, PushLease, SyncKind, SyncRun


def notify(mailbox_ids: Collection[int], *, noticed_on: datetime | None = None) -> int:
    """New mail in these mailboxes: returns how many runs were enqueued."""
    if mailbox_ids:
        PushLease.objects.filter(mailbox_id__in=list(mailbox_ids)).update(
            pending_since=noticed_on or clock.now()
        )
    return wake()


def has_pending() -> bool:
    return PushLease.objects.filter(pending_since__isnull=False).exists()


def wake() -> int:
    """Make each mailbox with mail announced and no run started since due now,
    and dispatch incoming sync once; returns how many runs were enqueued."""
    pending = PushLease.objects.filter(pending_since__isnull=False)
    started_since = SyncRun.objects.filter(
        mailbox_id=OuterRef("mailbox_id"), kind=SyncKind.INCOMING, started_on__gte=OuterRef("pending_since")
    )
    # One statement per row: an announcement written meanwhile moves pending_since past the run.
    pending.filter(Exists(started_since)).update(pending_since=None)
    now = clock.now()
    # A mailbox that cannot run (disabled, in backoff for long) is left to the safety-net
    # poll, which has come by then, rather than dispatched for every second it waits.
    pending.filter(pending_since__lt=now - timedelta(minutes=settings.PUSH_SAFETY_POLL_MINUTES)).update(
        pending_since=None
    )
    waiting = pending.values("mailbox_id")
    MailboxSchedule.objects.filter(
        mailbox_id__in=waiting, kind=SyncKind.INCOMING, next_due_on__gt=now
    ).update(next_due_on=now)
    claims = scheduler.dispatch(kinds=(SyncKind.INCOMING,))
    for claim in claims:
        enqueue.mailbox_sync(mailbox_id=claim.mailbox_id, kind=claim.kind, lease_token=claim.token)
    return len(claims)
