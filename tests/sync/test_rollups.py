"""Hourly roll-ups equal the counts of the rows they sum; checked with plain ORM counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db.models import Sum

from crm.choices import TrackIncomingEmail
from sync import rollups
from sync.incoming import sync_incoming
from sync.models import HourlyRollup, HourlyTotal, Receipt, ReceiptOutcome, SyncKind, SyncOutcome, SyncRun
from tests import factories, messages

pytestmark = pytest.mark.django_db

HOUR = datetime(2024, 3, 1, 10, tzinfo=UTC)


def stored_receipt(mailbox, *, created_on: datetime, waited: timedelta | None, email=True) -> Receipt:
    receipt = factories.receipt(
        mailbox=mailbox,
        outcome=ReceiptOutcome.TRACKED if email else ReceiptOutcome.NOT_TRACKED_OPTION,
        email=factories.email(direction="incoming") if email else None,
        server_received_on=created_on - waited if waited is not None else None,
    )
    Receipt.objects.filter(pk=receipt.pk).update(created_on=created_on)  # auto_now_add otherwise
    return receipt


def runs_in_hour(mailbox, start: datetime) -> dict[str, int]:
    runs = SyncRun.objects.filter(mailbox=mailbox, started_on__gte=start, started_on__lt=start + rollups.HOUR)
    sums = runs.aggregate(
        received=Sum("received"), tracked=Sum("tracked"), sent=Sum("sent"), failed=Sum("failed")
    )
    return {
        "runs": runs.count(),
        "failed_runs": runs.filter(outcome=SyncOutcome.FAILED).count(),
        **{name: value or 0 for name, value in sums.items()},
    }


def rollup_counts(mailbox, start: datetime) -> dict[str, int]:
    row = HourlyRollup.objects.get(mailbox=mailbox, hour=start)
    return {f: getattr(row, f) for f in ("runs", "failed_runs", "received", "tracked", "sent", "failed")}


def test_an_hours_rollup_equals_the_rows_of_that_hour(world):
    alice, bob = world["alice"].mailbox, world["bob"].mailbox
    for minute, received, tracked in [(0, 5, 3), (17, 2, 2), (59, 1, 0)]:
        factories.sync_run(
            mailbox=alice, started_on=HOUR + timedelta(minutes=minute), received=received, tracked=tracked
        )
    factories.sync_run(mailbox=alice, started_on=HOUR + timedelta(minutes=30), outcome=SyncOutcome.FAILED)
    factories.sync_run(
        mailbox=alice, kind=SyncKind.OUTGOING, started_on=HOUR + timedelta(minutes=5), sent=4, failed=1
    )
    factories.sync_run(mailbox=bob, started_on=HOUR + timedelta(minutes=1), received=7, tracked=7)
    # Just outside the hour on either side.
    factories.sync_run(mailbox=alice, started_on=HOUR - timedelta(microseconds=1), received=100)
    factories.sync_run(mailbox=alice, started_on=HOUR + rollups.HOUR, received=100)

    assert rollups.rollup_hour(hour=HOUR + timedelta(minutes=42)) == 2

    assert rollup_counts(alice, HOUR) == runs_in_hour(alice, HOUR)
    assert rollup_counts(bob, HOUR) == runs_in_hour(bob, HOUR)
    assert rollup_counts(alice, HOUR) == {
        "runs": 5,
        "failed_runs": 1,
        "received": 8,
        "tracked": 5,
        "sent": 4,
        "failed": 1,
    }
    assert HourlyRollup.objects.get(mailbox=alice, hour=HOUR).profile == world.profile


def test_latency_counts_receipts_stored_in_the_hour_with_an_activity(world):
    alice = world["alice"].mailbox
    for seconds in (2, 3, 40, 200, 90_000):
        stored_receipt(alice, created_on=HOUR + timedelta(minutes=10), waited=timedelta(seconds=seconds))
    stored_receipt(alice, created_on=HOUR + timedelta(minutes=10), waited=timedelta(seconds=2), email=False)
    stored_receipt(alice, created_on=HOUR + timedelta(minutes=10), waited=None)
    stored_receipt(alice, created_on=HOUR + rollups.HOUR, waited=timedelta(seconds=2))

    rollups.rollup_hour(hour=HOUR)

    row = HourlyRollup.objects.get(mailbox=alice, hour=HOUR)
    expected = Receipt.objects.filter(
        mailbox=alice,
        created_on__gte=HOUR,
        created_on__lt=HOUR + rollups.HOUR,
        email__isnull=False,
        server_received_on__isnull=False,
    ).count()
    assert row.latency_count == expected == 5
    assert row.latency_histogram == {"5": 2, "60": 1, "300": 1, "inf": 1}
    assert sum(row.latency_histogram.values()) == row.latency_count


def test_rolling_up_again_recomputes_rather_than_adds(world):
    alice, bob = world["alice"].mailbox, world["bob"].mailbox
    run = factories.sync_run(mailbox=alice, started_on=HOUR, received=3)
    factories.sync_run(mailbox=bob, started_on=HOUR, received=1)
    rollups.rollup_hour(hour=HOUR)
    rollups.rollup_hour(hour=HOUR)
    assert rollup_counts(alice, HOUR)["received"] == 3

    SyncRun.objects.filter(mailbox=bob).delete()
    SyncRun.objects.filter(pk=run.pk).update(received=4)
    rollups.rollup_hour(hour=HOUR)

    assert rollup_counts(alice, HOUR) == runs_in_hour(alice, HOUR)
    assert not HourlyRollup.objects.filter(mailbox=bob, hour=HOUR).exists()


def test_rollup_recent_covers_this_hour_and_the_last(world):
    alice = world["alice"].mailbox
    factories.sync_run(mailbox=alice, started_on=HOUR - timedelta(minutes=1), received=2)
    factories.sync_run(mailbox=alice, started_on=HOUR + timedelta(minutes=1), received=3)
    factories.sync_run(mailbox=alice, started_on=HOUR - timedelta(minutes=61), received=5)
    with time_machine.travel(HOUR + timedelta(minutes=20), tick=False):
        rollups.rollup_recent()
    hours = dict(HourlyRollup.objects.filter(mailbox=alice).values_list("hour", "received"))
    assert hours == {HOUR - rollups.HOUR: 2, HOUR: 3}


def test_the_hours_profile_totals_sum_its_mailboxes_and_follow_recomputes(world):
    alice, bob, quinn = (world[name].mailbox for name in ("alice", "bob", "quinn"))
    other_profile = factories.profile(name="Other")
    bob.profile = other_profile
    bob.save()
    factories.sync_run(mailbox=alice, started_on=HOUR, received=3, tracked=2)
    factories.sync_run(mailbox=quinn, started_on=HOUR, received=4, tracked=4, outcome=SyncOutcome.FAILED)
    factories.sync_run(mailbox=bob, started_on=HOUR, sent=7)
    stored_receipt(alice, created_on=HOUR + timedelta(minutes=1), waited=timedelta(seconds=3))
    stored_receipt(quinn, created_on=HOUR + timedelta(minutes=1), waited=timedelta(seconds=50))
    rollups.rollup_hour(hour=HOUR)

    totals = {row.profile_id: row for row in HourlyTotal.objects.filter(hour=HOUR)}
    for profile_id, total in totals.items():
        summed = HourlyRollup.objects.filter(hour=HOUR, profile_id=profile_id).aggregate(
            received=Sum("received"), tracked=Sum("tracked"), sent=Sum("sent"), failed_runs=Sum("failed_runs")
        )
        assert {name: getattr(total, name) for name in summed} == summed
        assert total.mailboxes == HourlyRollup.objects.filter(hour=HOUR, profile_id=profile_id).count()
    assert set(totals) == {alice.profile_id, other_profile.pk}
    assert totals[alice.profile_id].latency_histogram == {"5": 1, "60": 1}

    SyncRun.objects.filter(mailbox=bob).delete()
    rollups.rollup_hour(hour=HOUR)
    assert set(HourlyTotal.objects.filter(hour=HOUR).values_list("profile_id", flat=True)) == {
        alice.profile_id
    }


def test_percentiles_come_from_the_histogram():
    histogram = {"5": 50, "60": 45, "inf": 5}
    assert rollups.percentile(histogram, 0.5) == 5
    assert rollups.percentile(histogram, 0.95) == 60
    assert rollups.percentile(histogram, 0.99) == float("inf")
    assert rollups.percentile({}, 0.5) is None
    assert rollups.merge_histograms([{"5": 1}, {"5": 2, "60": 1}]) == {"5": 3, "60": 1}


def test_rollup_of_real_sync_runs_equals_their_receipts(stack):
    alice = stack.user_mailbox("alice", option=TrackIncomingEmail.ALL)
    for number in range(3):
        stack.deliver(
            alice, messages.simple(sender="carl@example.org", to=alice.email_address, subject=f"M{number}")
        )
    sync_incoming(mailbox=alice)
    stack.deliver(alice, messages.simple(sender="carl@example.org", to=alice.email_address, subject="M3"))
    sync_incoming(mailbox=alice)

    rollups.rollup_recent()

    # Summed over rows: the runs may straddle the turn of an hour.
    rows = HourlyRollup.objects.filter(mailbox=alice).aggregate(
        runs=Sum("runs"), received=Sum("received"), tracked=Sum("tracked"), latency=Sum("latency_count")
    )
    receipts = Receipt.objects.filter(mailbox=alice)
    assert (rows["runs"], rows["received"]) == (2, receipts.count()) == (2, 4)
    assert rows["tracked"] == receipts.filter(outcome=ReceiptOutcome.TRACKED).count()
    assert rows["latency"] == receipts.filter(email__isnull=False, server_received_on__isnull=False).count()
    assert set(HourlyRollup.objects.filter(mailbox=alice).values_list("profile", flat=True)) == {
        stack.profile.pk
    }
