"""The profile's outgoing rate limit holds whichever worker holds the mailbox.

The two "workers" here are in-process and take turns at dispatch and running
their claims under a clock the test moves (time-machine, 20 seconds a turn):
real worker processes would read the real clock, and three real minutes per
test is too slow, while moving only this process's clock would not move theirs.
The limit is counted in the database either way, so the worker that runs a
batch does not matter — which is what taking turns shows."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from crm.models import ActivityParty, EmailActivity
from profiles.models import EmailServerProfile
from sync import outgoing, scheduler
from sync.models import SyncKind
from tests import factories

pytestmark = pytest.mark.django_db

EMAILS, LIMIT = 100, 30
TURN = timedelta(seconds=20)


def test_100_emails_at_30_a_minute_take_three_minutes_across_two_workers(stack):
    EmailServerProfile.objects.filter(pk=stack.profile.pk).update(outgoing_rate_limit_per_minute=LIMIT)
    alice, bob = stack.user_mailbox("alice"), stack.user_mailbox("bob")
    for number in range(EMAILS):
        email = factories.email(
            subject=f"Offer {number:03d}", status=EmailActivity.Status.PENDING_SEND, owner=alice.user
        )
        factories.party(
            email=email, role=ActivityParty.Role.FROM, user=alice.user, address=alice.email_address
        )
        factories.party(email=email, role=ActivityParty.Role.TO, address=bob.email_address)
    start = datetime.now(UTC)
    sent_by: Counter[str] = Counter()

    for turn in range(40):
        worker = "worker-a" if turn % 2 == 0 else "worker-b"
        with time_machine.travel(start + TURN * turn, tick=False):
            for claim in scheduler.dispatch(kinds=(SyncKind.OUTGOING,)):
                run = scheduler.run_claimed(claim, lambda mailbox: outgoing.send_pending(mailbox=mailbox))
                sent_by[worker] += run.sent if run else 0
        if not EmailActivity.objects.exclude(status=EmailActivity.Status.SENT).exists():
            break

    emails = list(EmailActivity.objects.order_by("sent_on"))
    assert [e.status for e in emails] == [EmailActivity.Status.SENT] * EMAILS
    assert emails[-1].sent_on - start >= timedelta(minutes=3)
    per_minute = Counter(int((e.sent_on - start).total_seconds() // 60) for e in emails)
    assert per_minute == {0: 30, 1: 30, 2: 30, 3: 10}
    assert set(sent_by) == {"worker-a", "worker-b"}
    assert all(stack.relay.accepted_count(e.message_id) == 1 for e in emails)
