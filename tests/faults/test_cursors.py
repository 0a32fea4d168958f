"""Cursors the server stops honouring and messages it hands over twice: a new UIDVALIDITY
(IMAP), an expired delta link (Graph) or sync state (EWS) between two runs, and one message
delivered twice. The folder is read again from the start; every message stays exactly one
activity (a message delivered twice is two copies of one message: one activity)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from crm.models import EmailActivity
from sync.incoming import sync_incoming
from sync.models import Receipt, SyncOutcome
from tests import messages
from tests.sync.exchange_stack import EwsStack, GraphStack

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

RUNS = 20
BEFORE, AFTER = 4, 3


def activities_per_subject(mailbox, subjects: list[str]) -> tuple[int, int]:
    """(lost, doubled) of ``subjects`` among the activities the mailbox's receipts name."""
    found = Counter(
        EmailActivity.objects.filter(receipts__mailbox=mailbox).distinct().values_list("subject", flat=True)
    )
    lost = sum(1 for s in subjects if found[s] == 0)
    doubled = sum(max(found[s] - 1, 0) for s in subjects)
    return lost, doubled


def synced(mailbox) -> None:
    run = sync_incoming(mailbox=mailbox)
    assert run.outcome == SyncOutcome.SUCCESS, (run.error_code, run.error_text)


def read_forgotten_cursor(row, mailbox, deliver, forget, prefix: str) -> None:
    subjects = [f"{prefix} before {n}" for n in range(BEFORE)] + [f"{prefix} after {n}" for n in range(AFTER)]
    for subject in subjects[:BEFORE]:
        deliver(mailbox, messages.simple(to=mailbox.email_address, subject=subject))
    synced(mailbox)
    forget(mailbox)
    for subject in subjects[BEFORE:]:
        deliver(mailbox, messages.simple(to=mailbox.email_address, subject=subject))
    started = time.monotonic()
    synced(mailbox)
    lost, doubled = activities_per_subject(mailbox, subjects)
    row.add(messages=len(subjects), lost=lost, doubled=doubled, recovered_in=time.monotonic() - started)
    assert (lost, doubled) == (0, 0)


def test_a_new_uidvalidity_reads_the_folder_again_without_doubling(stack, fault_table):
    row = fault_table("IMAP UIDVALIDITY changed between runs")
    for run in range(RUNS):
        mailbox = stack.user_mailbox(f"uv{run}")
        read_forgotten_cursor(
            row,
            mailbox,
            stack.deliver,
            lambda m, run=run: stack.dovecot.set_uidvalidity(m.email_address, "INBOX", 5000 + run),
            f"UV {run}",
        )


@pytest.mark.parametrize("kind", ["graph", "ews"])
def test_an_expired_delta_link_or_sync_state_reads_the_folder_again_without_doubling(
    kind, request, settings, fault_table
):
    if kind == "graph":
        exchange = GraphStack.build(settings, request.getfixturevalue("graph_server"))
        row = fault_table("Graph delta link expired between runs (410 SyncStateNotFound)")
    else:
        exchange = EwsStack.build(settings, request.getfixturevalue("ews_server"))
        row = fault_table("EWS sync state invalid between runs (ErrorInvalidSyncStateData)")
    for run in range(RUNS):
        mailbox = exchange.user_mailbox(f"exp{run}")
        read_forgotten_cursor(
            row, mailbox, exchange.deliver, lambda m: exchange.invalidate_cursors(), f"{kind} {run}"
        )


def test_one_message_delivered_twice_is_one_activity(stack, fault_table):
    row = fault_table("The same message delivered twice")
    for run in range(RUNS):
        mailbox = stack.user_mailbox(f"twice{run}")
        raw = messages.simple(to=mailbox.email_address, subject=f"Twice {run}")
        started = time.monotonic()
        stack.deliver(mailbox, raw)
        synced(mailbox)
        stack.deliver(mailbox, raw)
        synced(mailbox)
        lost, doubled = activities_per_subject(mailbox, [f"Twice {run}"])
        row.add(messages=1, lost=lost, doubled=doubled, recovered_in=time.monotonic() - started)
        assert (lost, doubled) == (0, 0)
        # One message, one receipt a user can find (copies of a message share it).
        assert Receipt.objects.filter(mailbox=mailbox, subject=f"Twice {run}").count() == 1
