"""A mailbox run whose database went away part way (PostgreSQL restarted, crashed or
failed over; the network to it cut): the worker settles the run itself once the database
answers again, instead of leaving the mailbox to its lease.

What a run stores is written in transactions of its own (a batch of messages with their
receipts and the folder's cursor, an email's status), so a transaction the loss cut short
is rolled back whole and the next run does it again: nothing is lost or doubled. Left over
is the run's bookkeeping, which only the database could have recorded: the lease, which
would keep the mailbox from every worker until it lapses (``SYNC_LEASE_SECONDS``, ten
minutes by default); the run's row, still "running"; and an email the server may have
taken while its status could not be written, which would wait as long for its send claim
to lapse. So, with the database back, the run is recorded failed with the reason, such an
email is "outcome unknown" with its alert (never resent), and the lease is given back with
the mailbox due again at once. A database still gone after ``RECONNECT_SECONDS`` leaves
all that to the leases and claims lapsing, as a dead worker's would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.db import InterfaceError, OperationalError

from crm.models import EmailActivity
from mailboxes.models import Mailbox
from sync import clock, outgoing, scheduler
from sync.database_wait import RECONNECT_SECONDS, database_back
from sync.models import MailboxSchedule, OutgoingClaim, SyncKind, SyncOutcome, SyncRun

logger = logging.getLogger(__name__)

CODE = "database_unavailable"
MESSAGE = (
    "The run stopped on a database error (its connection lost: the database restarting or out of "
    "reach); the mailbox is due again at once. The worker log has the error."
)


def run_claimed(claim: scheduler.Claim, work: Callable[[Mailbox], SyncRun]) -> SyncRun | None:
    """``scheduler.run_claimed``, settling the run if the database goes away under it;
    the error is raised again, for the worker's log."""
    started = clock.now()
    try:
        return scheduler.run_claimed(claim, work)
    except (OperationalError, InterfaceError):
        if database_back():
            settle(claim, started_on=started)
        else:
            logger.error(
                "database still unavailable after %s s; %s waits for its lease", RECONNECT_SECONDS, claim
            )
        raise


def settle(claim: scheduler.Claim, *, started_on: datetime) -> None:
    """Record the interrupted run, settle the emails it was sending, give the lease back.
    Nothing is done for a lease no longer this claim's: its new holder owns the mailbox."""
    if not MailboxSchedule.objects.filter(
        mailbox_id=claim.mailbox_id, kind=claim.kind, lease_token=claim.token
    ).exists():
        return
    mailbox = Mailbox.objects.select_related("profile").get(pk=claim.mailbox_id)
    run = _failed_run(mailbox, claim.kind, started_on)
    if claim.kind == SyncKind.OUTGOING:
        _settle_sending(mailbox)
    scheduler.release(claim, run=run, mailbox=mailbox)


def _failed_run(mailbox: Mailbox, kind: str, started_on: datetime) -> SyncRun:
    """The run's row, saved once it had stored something (else a new one), closed as failed."""
    run = (
        SyncRun.objects.filter(
            mailbox=mailbox, kind=kind, finished_on__isnull=True, started_on__gte=started_on
        )
        .order_by("-started_on")
        .first()
    ) or SyncRun(mailbox=mailbox, kind=kind, started_on=started_on)
    run.finished_on, run.outcome = clock.now(), SyncOutcome.FAILED
    run.error_code, run.error_text = CODE, MESSAGE
    run.save()
    return run


def _settle_sending(mailbox: Mailbox) -> None:
    """Emails this run claimed (the lease holder alone sends for the mailbox) and left
    Sending: the server may have taken them; never send them again."""
    sending = OutgoingClaim.objects.filter(mailbox=mailbox, email__status=EmailActivity.Status.SENDING)
    for email_id in list(sending.values_list("email_id", flat=True)):
        outgoing.mark_outcome_unknown(
            email_id=email_id, reason="The database connection was lost while it was being sent."
        )
