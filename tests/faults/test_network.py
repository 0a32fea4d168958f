"""Networks that break: the connection to the IMAP server cut part way through a run
(during sign-in, SELECT or a FETCH), stalled, or slow; the connection to the SMTP relay cut
part way through DATA. After each, the next runs recover on their own, and every message is
exactly one activity (incoming) or was delivered once or left "outcome unknown" with its
alert (outgoing): nothing lost, nothing doubled. Each fault runs many times, cutting at a
different byte each time, and adds its row to the fault table (docs/reliability.md)."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from crm.models import EmailActivity
from profiles.models import EmailServerProfile
from sync import outgoing
from sync.incoming import sync_incoming
from sync.models import MailboxAlert, Receipt, SyncOutcome
from tests import messages
from tests.harness.tcp_proxy import FaultyProxy
from tests.sync.exchange_stack import EwsStack
from tests.sync.test_engine_outgoing import api_client_for, compose, inbox

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

RUNS = 20
MESSAGES = 12


def through(stack, proxy, *, incoming: bool) -> None:
    field = "incoming_port" if incoming else "outgoing_port"
    EmailServerProfile.objects.filter(pk=stack.profile.pk).update(
        **{field: proxy.port}, connection_timeout_seconds=3
    )


def until_caught_up(mailbox, started: float, *, tries: int = 4) -> float:
    """Sync until a run succeeds (each run, as the scheduler would start it); seconds since
    ``started`` (the faulty run's start)."""
    for _ in range(tries):
        if sync_incoming(mailbox=mailbox).outcome == SyncOutcome.SUCCESS:
            return time.monotonic() - started
    raise AssertionError(f"no successful run in {tries} tries")


def incoming_outcome(mailbox, subjects: list[str]) -> tuple[int, int]:
    """(lost, doubled) of ``subjects`` among the mailbox's receipts and activities."""
    seen = Counter(Receipt.objects.filter(mailbox=mailbox).values_list("subject", flat=True))
    activities = Counter(
        EmailActivity.objects.filter(receipts__mailbox=mailbox).values_list("subject", flat=True)
    )
    lost = sum(1 for s in subjects if seen[s] == 0 or activities[s] == 0)
    doubled = sum(max(seen[s] - 1, 0) + max(activities[s] - 1, 0) for s in subjects)
    return lost, doubled


def test_imap_cut_anywhere_in_a_run_loses_and_doubles_nothing(stack, imap_proxy, fault_table):
    through(stack, imap_proxy, incoming=True)
    row = fault_table("IMAP connection cut part way (sign-in, SELECT, FETCH)")
    for run in range(RUNS):
        mailbox = stack.user_mailbox(f"cut{run}")
        subjects = [f"Cut {run} message {n:02d}" for n in range(MESSAGES)]
        for subject in subjects:
            stack.deliver(
                mailbox, messages.simple(to=mailbox.email_address, subject=subject, body="x" * 2000)
            )
        # From early in the greeting to deep into the FETCH responses, a different byte each run.
        imap_proxy.cut_after(downstream=300 + run * 1700)
        started = time.monotonic()
        first = sync_incoming(mailbox=mailbox)
        recovered_in = until_caught_up(mailbox, started)
        lost, doubled = incoming_outcome(mailbox, subjects)
        row.add(messages=MESSAGES, lost=lost, doubled=doubled, recovered_in=recovered_in)
        assert (lost, doubled) == (0, 0), (run, first.outcome)
    assert imap_proxy.cuts >= RUNS


def test_imap_stalled_mid_run_times_out_and_the_next_run_finishes(stack, imap_proxy, fault_table):
    through(stack, imap_proxy, incoming=True)
    row = fault_table("IMAP connection stalled (nothing moves; the client's timeout)")
    for run in range(3):
        mailbox = stack.user_mailbox(f"stall{run}")
        subjects = [f"Stall {run} message {n:02d}" for n in range(MESSAGES)]
        for subject in subjects:
            stack.deliver(mailbox, messages.simple(to=mailbox.email_address, subject=subject))
        imap_proxy.stall()
        started = time.monotonic()
        stalled = sync_incoming(mailbox=mailbox)
        assert stalled.outcome == SyncOutcome.FAILED
        recovered_in = until_caught_up(mailbox, started)
        lost, doubled = incoming_outcome(mailbox, subjects)
        row.add(messages=MESSAGES, lost=lost, doubled=doubled, recovered_in=recovered_in)
        assert (lost, doubled) == (0, 0)


def test_a_slow_imap_connection_still_finishes_whole(stack, imap_proxy, fault_table):
    through(stack, imap_proxy, incoming=True)
    row = fault_table("IMAP connection slow (64 KB/s)")
    imap_proxy.slow(64 * 1024)
    mailbox = stack.user_mailbox("slow")
    subjects = [f"Slow message {n:02d}" for n in range(MESSAGES)]
    for subject in subjects:
        stack.deliver(mailbox, messages.simple(to=mailbox.email_address, subject=subject, body="y" * 8000))
    recovered_in = until_caught_up(mailbox, time.monotonic(), tries=1)
    lost, doubled = incoming_outcome(mailbox, subjects)
    row.add(messages=MESSAGES, lost=lost, doubled=doubled, recovered_in=recovered_in)
    assert (lost, doubled) == (0, 0)


def test_smtp_cut_mid_data_sends_each_email_once_or_says_outcome_unknown(stack, smtp_proxy, fault_table):
    through(stack, smtp_proxy, incoming=False)
    row = fault_table("SMTP connection cut part way (EHLO, AUTH, MAIL, DATA)")
    bob = stack.user_mailbox("bob")
    for run in range(RUNS):
        alice = stack.user_mailbox(f"sender{run}")
        client = api_client_for(alice)
        subjects = [f"Run {run} email {n}" for n in range(4)]
        emails = [
            compose(client, subject=s, body_text="Hello\n" * 200, to=[bob.email_address]) for s in subjects
        ]
        smtp_proxy.cut_after(upstream=200 + run * 900)
        started = time.monotonic()
        outgoing.send_pending(mailbox=alice)
        # Retries come later (their backoff): the clock moves on, as the scheduler's would.
        with time_machine.travel(datetime.now(UTC) + timedelta(hours=2), tick=True):
            outgoing.send_pending(mailbox=alice)
            outgoing.send_pending(mailbox=alice)
        recovered_in = time.monotonic() - started
        # By Message-ID (the subject carries the tracking token): fixed before any network I/O.
        delivered = Counter(str(m["Message-ID"]).strip("<>") for m in inbox(stack, bob))
        sent = {e.subject: EmailActivity.objects.get(pk=e.pk) for e in emails}
        statuses = {s: e.status for s, e in sent.items()}
        unknown = [s for s, status in statuses.items() if status == EmailActivity.Status.OUTCOME_UNKNOWN]
        copies = {s: delivered[e.message_id] for s, e in sent.items()}
        lost = sum(1 for s in subjects if s not in unknown and copies[s] == 0)
        doubled = sum(max(n - 1, 0) for n in copies.values())
        row.add(
            messages=len(subjects),
            lost=lost,
            doubled=doubled,
            recovered_in=recovered_in,
            unknown=len(unknown),
        )
        assert (lost, doubled) == (0, 0), (run, statuses)
        assert all(statuses[s] == EmailActivity.Status.SENT for s in subjects if s not in unknown)
        if unknown:
            assert MailboxAlert.objects.filter(
                mailbox=alice, code="outcome_unknown", resolved_on__isnull=True
            ).exists()


def test_ews_cut_anywhere_in_a_response_loses_and_doubles_nothing(settings, ews_server, fault_table):
    exchange = EwsStack.build(settings, ews_server)
    proxy = FaultyProxy(ews_server.host, ews_server.port)
    try:
        EmailServerProfile.objects.filter(pk=exchange.profile.pk).update(
            incoming_server_location=ews_server.url.replace(f":{ews_server.port}/", f":{proxy.port}/"),
            connection_timeout_seconds=3,
        )
        row = fault_table("EWS connection cut part way (a SOAP response)")
        for run in range(RUNS):
            mailbox = exchange.user_mailbox(f"ewscut{run}")
            subjects = [f"EWS cut {run} message {n:02d}" for n in range(MESSAGES)]
            for subject in subjects:
                exchange.deliver(
                    mailbox, messages.simple(to=mailbox.email_address, subject=subject, body="z" * 2000)
                )
            proxy.cut_after(downstream=500 + run * 2500)
            started = time.monotonic()
            sync_incoming(mailbox=mailbox)
            recovered_in = until_caught_up(mailbox, started)
            lost, doubled = incoming_outcome(mailbox, subjects)
            row.add(messages=MESSAGES, lost=lost, doubled=doubled, recovered_in=recovered_in)
            assert (lost, doubled) == (0, 0), run
        assert proxy.cuts >= 1
    finally:
        proxy.close()
