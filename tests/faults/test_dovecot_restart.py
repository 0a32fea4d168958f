"""Dovecot restarted in the middle of a run, over IMAP and over POP3.

The restart is made to land mid-run for certain: the run's progress callback restarts
the server once the first batch of messages is stored (``SYNC_BATCH_MESSAGES`` = 5),
and the mailbox holds more than two FETCHes' worth of messages, so even reading ahead
(sync/read_ahead.py: at most ``FETCH_MESSAGES`` bodies queued) the engine has a FETCH
(a RETR, for POP3) still to send on the connection the restart killed. Each run proves
the fault landed: the faulty run ends failed and stored only part of the mailbox.

After it, the same process syncs again, as the scheduler would start the next run (no
restart by hand): every message is exactly one receipt and one activity, the failed
run left the mailbox's error and an open alert saying what happened, and the run that
caught up resolved them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from crm.choices import SyncStatus
from mailboxes.models import Mailbox
from sync import alerts
from sync.incoming import FETCH_MESSAGES, sync_incoming
from sync.models import MailboxAlert, SyncKind, SyncOutcome, SyncRun
from tests import messages
from tests.faults.conftest import FaultRow
from tests.faults.runs import runs
from tests.faults.test_network import incoming_outcome, until_caught_up
from tests.sync.stack import Stack

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# ``make reliability`` runs each fault RELIABILITY_RUNS (20) times; make test a few.
RUNS = runs(in_make_test=2)
BATCH = 5
# Past the second FETCH of bodies: the third is sent only after the restart.
MESSAGES = 2 * FETCH_MESSAGES + 10


def restart_after_first_batch(stack: Stack) -> tuple[list[int], Callable[[SyncRun], None]]:
    """A progress callback that restarts Dovecot once, when the run has stored its
    first batch; the list holds the count stored when it did."""
    restarted_at: list[int] = []

    def on_progress(run: SyncRun) -> None:
        if not restarted_at and run.received >= BATCH:
            restarted_at.append(run.received)
            stack.dovecot.restart()

    return restarted_at, on_progress


def restart_mid_run(stack: Stack, mailbox: Mailbox, row: FaultRow, label: str) -> None:
    subjects = [f"{label} message {n:03d}" for n in range(MESSAGES)]
    stack.dovecot.deliver_many(
        mailbox.email_address,
        [messages.simple(to=mailbox.email_address, subject=s, body=f"{s}\n" * 40) for s in subjects],
    )
    restarted_at, on_progress = restart_after_first_batch(stack)
    started = time.monotonic()
    faulty = sync_incoming(mailbox=mailbox, on_progress=on_progress)
    # The proof that the restart fell inside the run: it broke the run's connection.
    assert restarted_at == [BATCH]
    assert faulty.outcome == SyncOutcome.FAILED, (faulty.outcome, faulty.received)
    assert faulty.received < MESSAGES
    mailbox.refresh_from_db()
    assert mailbox.last_sync_error_code == faulty.error_code != ""
    assert MailboxAlert.objects.filter(
        subject_key=alerts.subject_key(mailbox=mailbox), category=SyncKind.INCOMING, resolved_on__isnull=True
    ).exists()
    recovered_in = until_caught_up(mailbox, started)
    lost, doubled = incoming_outcome(mailbox, subjects)
    row.add(messages=MESSAGES, lost=lost, doubled=doubled, recovered_in=recovered_in)
    assert (lost, doubled) == (0, 0)
    mailbox.refresh_from_db()
    assert mailbox.incoming_status == SyncStatus.SUCCESS
    assert not MailboxAlert.objects.filter(
        subject_key=alerts.subject_key(mailbox=mailbox), category=SyncKind.INCOMING, resolved_on__isnull=True
    ).exists()


def test_dovecot_restarted_mid_imap_run_loses_and_doubles_nothing(stack, settings, fault_table):
    settings.SYNC_BATCH_MESSAGES = BATCH
    row = fault_table("Dovecot restarted mid-run (IMAP, between FETCHes)")
    for run in range(RUNS):
        restart_mid_run(stack, stack.user_mailbox(f"restart{run}"), row, f"IMAP restart {run}")


def test_dovecot_restarted_mid_pop3_run_loses_and_doubles_nothing(stack, settings, fault_table):
    settings.SYNC_BATCH_MESSAGES = BATCH
    row = fault_table("Dovecot restarted mid-run (POP3, between RETRs)")
    pop3 = stack.pop3_profile()
    for run in range(RUNS):
        mailbox = stack.user_mailbox(f"poprestart{run}", profile=pop3)
        restart_mid_run(stack, mailbox, row, f"POP3 restart {run}")
