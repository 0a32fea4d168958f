"""Workers killed (SIGKILL, as a power cut or the OOM killer would) mid-run, for every
connector: a real Celery worker syncing a mailbox's incoming mail dies once part of it is
stored (IMAP, POP3, Graph, EWS); a real worker sending a mailbox's email dies right after
the server took one, with the next one claimed (SMTP, Graph sendMail, EWS SendAndSaveCopy:
``after_smtp_data`` in sync.checkpoints, the point where a crash costs most). The runs that
follow finish the work, and every message is one receipt and one activity, every email
was delivered once (counted on the server: the SMTP relay's deliveries, the recipient's
mailbox on the Graph or EWS test server) or is left "outcome unknown" with its alert.

Each run starts a worker (a few seconds): ``make test`` runs each connector a few times,
``make reliability`` (RELIABILITY_RUNS) twenty."""

from __future__ import annotations

import email
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from crm.models import EmailActivity
from mailboxes.models import Mailbox
from sync import outgoing, scheduler
from sync.models import MailboxAlert, Receipt, SyncKind
from sync.tasks import incoming_mailbox, outgoing_mailbox
from tests import messages
from tests.faults.runs import runs
from tests.faults.test_network import incoming_outcome
from tests.harness.celery_worker import celery_worker
from tests.sync.exchange_stack import EwsStack, GraphStack
from tests.sync.test_crash_safety import after_leases_expire, wait_until
from tests.sync.test_engine_outgoing import api_client_for, compose

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RUNS = runs(in_make_test=1)
MESSAGES = 40
EMAILS = 4
# The doomed worker stores a few messages per transaction (50 by default, more than a run
# here holds), so there are many points to die between and inside them.
SMALL_BATCHES = {"SYNC_BATCH_MESSAGES": "4"}


@dataclass
class Side:
    """One connector as the test drives it: mailboxes on its server, mail put in, and the
    copies of each sent email the server delivered (by Message-ID, without ``<>``)."""

    mailbox: Callable[[str], Mailbox]
    deliver: Callable[[Mailbox, bytes], object]
    delivered: Callable[[Mailbox, str], int]


def side(kind: str, request: pytest.FixtureRequest, settings: Any) -> Side:
    if kind in ("imap", "pop3", "smtp"):
        stack = request.getfixturevalue("stack")
        profile = stack.pop3_profile(connection_timeout_seconds=10) if kind == "pop3" else stack.profile
        return Side(
            lambda name: stack.user_mailbox(name, profile=profile),
            stack.deliver,
            lambda _recipient, message_id: stack.relay.accepted_count(message_id),
        )
    exchange = (
        GraphStack.build(settings, request.getfixturevalue("graph_server"))
        if kind == "graph"
        else EwsStack.build(settings, request.getfixturevalue("ews_server"))
    )

    def delivered(recipient: Mailbox, message_id: str) -> int:
        held = Counter(
            str(email.message_from_bytes(raw)["Message-ID"]).strip(" <>") for raw in exchange.inbox(recipient)
        )
        return held[message_id.strip("<>")]

    return Side(exchange.user_mailbox, exchange.deliver, delivered)


def claim_for(mailbox: Mailbox, kind: SyncKind) -> scheduler.Claim:
    """The scheduler's claim on ``mailbox`` (others it claims in passing are finished ones)."""
    return next(c for c in scheduler.dispatch(kinds=(kind,)) if c.mailbox_id == mailbox.pk)


INCOMING = {
    "imap": "Worker killed (SIGKILL) mid-incoming: IMAP",
    "pop3": "Worker killed (SIGKILL) mid-incoming: POP3",
    "graph": "Worker killed (SIGKILL) mid-incoming: Graph",
    "ews": "Worker killed (SIGKILL) mid-incoming: EWS",
}


@pytest.mark.parametrize("kind", list(INCOMING))
def test_a_worker_killed_mid_incoming_loses_and_doubles_nothing(kind, request, settings, fault_table):
    connector = side(kind, request, settings)
    row = fault_table(INCOMING[kind])
    for run in range(RUNS):
        mailbox = connector.mailbox(f"kill{run}")
        subjects = [f"Kill {run} message {n:02d}" for n in range(MESSAGES)]
        for subject in subjects:
            connector.deliver(mailbox, messages.simple(to=mailbox.email_address, subject=subject))
        # From the first stored batch to half way through (the other half leaves the worker
        # time to die before it finishes), a different point each run.
        at_kill, started = kill_once_stored(mailbox, 1 + (run * 7) % (MESSAGES // 2))
        assert at_kill < MESSAGES, "the worker must die mid-run for this run to mean anything"
        # The next run, once the dead worker's lease lapsed (the scheduler's own recovery).
        with after_leases_expire():
            claim = claim_for(mailbox, SyncKind.INCOMING)
            assert incoming_mailbox(claim.mailbox_id, claim.token) == "success"
        recovered_in = time.monotonic() - started
        lost, doubled = incoming_outcome(mailbox, subjects)
        row.add(messages=MESSAGES, lost=lost, doubled=doubled, recovered_in=recovered_in)
        assert (lost, doubled) == (0, 0), (run, at_kill)


def kill_once_stored(mailbox: Mailbox, count: int) -> tuple[int, float]:
    """Sync ``mailbox`` in a real worker, SIGKILLed once ``count`` messages are stored; how
    many were stored when it died, and when its run was started (time.monotonic)."""
    stored = Receipt.objects.filter(mailbox=mailbox)
    with celery_worker(queues="incoming", name="doomed", env=SMALL_BATCHES) as doomed:
        started = time.monotonic()
        claim = claim_for(mailbox, SyncKind.INCOMING)
        incoming_mailbox.delay(claim.mailbox_id, claim.token)
        wait_until(lambda: stored.count() >= count, what=f"{count} stored messages")
        doomed.kill(signal.SIGKILL)
    return stored.count(), started


OUTGOING = {
    "smtp": "Worker killed (SIGKILL) right after the server took an email: SMTP",
    "graph": "Worker killed (SIGKILL) right after the server took an email: Graph sendMail",
    "ews": "Worker killed (SIGKILL) right after the server took an email: EWS SendAndSaveCopy",
}


@pytest.mark.parametrize("kind", list(OUTGOING))
def test_a_worker_killed_mid_send_sends_each_email_once_or_says_outcome_unknown(
    kind, request, settings, fault_table
):
    connector = side(kind, request, settings)
    row = fault_table(OUTGOING[kind])
    bob = connector.mailbox("bob")
    for run in range(RUNS):
        sender = connector.mailbox(f"sender{run}")
        client = api_client_for(sender)
        emails = [
            compose(client, subject=f"Run {run} email {n}", to=[bob.email_address]) for n in range(EMAILS)
        ]
        # Killed after the server took the 1st, 2nd or 3rd email: the next one is claimed, unsent.
        nth = 1 + run % (EMAILS - 1)
        with celery_worker(queues="outgoing", name="crashing", crash_at=f"after_smtp_data@{nth}") as worker:
            started = time.monotonic()
            claim = claim_for(sender, SyncKind.OUTGOING)
            outgoing_mailbox.delay(claim.mailbox_id, claim.token)
            assert worker.process is not None
            assert worker.process.wait(timeout=60) == -signal.SIGKILL
        # The next run, once the dead worker's lease lapsed, through the scheduler (which
        # caps a profile's connections: a lease never given back would count against it).
        with after_leases_expire():
            assert outgoing.settle_expired_claims() == 2  # the one taken, the one claimed ahead
            claim = claim_for(sender, SyncKind.OUTGOING)
            outgoing_mailbox(claim.mailbox_id, claim.token)  # Exchange: settled from Sent Items first
        recovered_in = time.monotonic() - started
        statuses = [EmailActivity.objects.get(pk=e.pk).status for e in emails]
        copies = [connector.delivered(bob, EmailActivity.objects.get(pk=e.pk).message_id) for e in emails]
        unknown = [s == EmailActivity.Status.OUTCOME_UNKNOWN for s in statuses]
        lost = sum(1 for n in range(EMAILS) if not unknown[n] and copies[n] == 0)
        doubled = sum(max(n - 1, 0) for n in copies)
        row.add(messages=EMAILS, lost=lost, doubled=doubled, recovered_in=recovered_in, unknown=sum(unknown))
        assert (lost, doubled) == (0, 0), (run, statuses, copies)
        assert all(s == EmailActivity.Status.SENT for s, u in zip(statuses, unknown, strict=True) if not u)
        assert copies[nth - 1] == 1  # the email the server took before the kill
        if kind != "smtp":  # its copy in Sent Items says it was sent: settled, not left for a person
            assert statuses[nth - 1] == EmailActivity.Status.SENT
        if any(unknown):
            assert MailboxAlert.objects.filter(
                mailbox=sender, code="outcome_unknown", resolved_on__isnull=True
            ).exists()
