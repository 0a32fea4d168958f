"""The incoming hot paths' SQL, pinned: a new tracked message with three
parties, and an idle poll (nothing new) that costs little more than what the
schedule needs. Counts include savepoints; the lists say what each query is for."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.choices import TrackIncomingEmail
from crm.models import Contact
from sync import scheduler
from sync.incoming import Source, store_message, sync_incoming
from sync.models import ReceiptOutcome, SyncKind, SyncRun
from tests import factories, messages

pytestmark = pytest.mark.django_db

# Per message: the identity check (receipts and activities in one query), the receipt already
# known, the organization (once per run), the parties in one query, the activity
# already stored, then the activity, its parties, its fingerprints and the receipt,
# and the savepoints around the message and around the activity (4).
NEW_TRACKED_MESSAGE = 13
# The lease check (which reads the idle count too), the mailbox, the folder
# cursor, one statement for the run (its INSERT), the mailbox's state, its alerts
# and its profile's outage (nothing to change: nothing written), and the
# schedule's release (one UPDATE). Before: 10 (the mailbox, its alerts and the
# outage's two tables an UPDATE each; the release read the schedule again), then
# 6 (the run's INSERT a statement of its own).
IDLE_POLL = 5


def statements(context: CaptureQueriesContext) -> list[str]:
    return [query["sql"].split(" ", 1)[0] for query in context.captured_queries]


def test_a_new_tracked_message_with_three_parties(world):
    alice = world["alice"]
    alice.crm_user.track_incoming_email = TrackIncomingEmail.ALL
    alice.crm_user.save()
    factories.contact(last_name="Customer", email="carl@example.org")
    raw = messages.simple(sender="Carl <carl@example.org>", to="alice@example.test, Bob <bob@example.test>")
    source = Source(alice.mailbox, "INBOX", "7:1", None)

    with CaptureQueriesContext(connection) as context:
        receipt = store_message(source=source, raw=raw, advance=lambda: None)

    assert receipt.outcome == ReceiptOutcome.TRACKED
    assert {p.record for p in receipt.email.parties.all()} == {
        alice.crm_user,
        world["bob"].crm_user,
        Contact.objects.get(email="carl@example.org"),
    }
    assert len(context.captured_queries) <= NEW_TRACKED_MESSAGE, statements(context)
    # Each address resolved once, all three in one query.
    assert sum("LOWER" in q["sql"] and "UNION" in q["sql"] for q in context.captured_queries) == 1


def test_an_idle_poll(stack):
    alice = stack.user_mailbox("alice")
    stack.deliver(alice, messages.simple(to=alice.email_address))
    sync_incoming(mailbox=alice)
    claim = scheduler.claim_now(mailbox=alice, kind=SyncKind.INCOMING)
    assert claim is not None

    with CaptureQueriesContext(connection) as context:
        run = scheduler.run_claimed(claim, lambda mailbox: sync_incoming(mailbox=mailbox))

    assert run is not None
    assert (run.outcome, run.received) == ("success", 0)
    assert len(context.captured_queries) <= IDLE_POLL, statements(context)
    # The run, written once: inside the state's one statement on PostgreSQL.
    assert sum('INSERT INTO "sync_syncrun"' in q["sql"] for q in context.captured_queries) == 1
    assert SyncRun.objects.get(pk=run.pk).outcome == "success"
