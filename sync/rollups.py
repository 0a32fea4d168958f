"""Hourly roll-ups of sync runs and receipts, for the dashboard.

A roll-up row is recomputed from the underlying rows every time, so running it
again (or late) gives the same answer. Latency — the mail server's receive time
to the activity being stored — goes into a fixed histogram, so percentiles need
no database function and work the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, Sum

from mailboxes.models import Mailbox
from sync import clock
from sync.models import HourlyRollup, HourlyTotal, Receipt, SyncOutcome, SyncRun

HOUR = timedelta(hours=1)
# Upper bounds in seconds; a latency above the last one counts under OVERFLOW.
LATENCY_BOUNDS: tuple[int, ...] = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)
OVERFLOW = "inf"


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def bucket_of(seconds: float) -> str:
    """The histogram key a latency falls in."""
    for bound in LATENCY_BOUNDS:
        if seconds <= bound:
            return str(bound)
    return OVERFLOW


# The counters of sync.models.HourCounts, besides the latency histogram.
COUNTERS = ("runs", "failed_runs", "received", "tracked", "sent", "failed", "latency_count")


@dataclass
class HourSums:
    """What sync runs add up to: one mailbox's hour, a profile's, a day on the dashboard."""

    runs: int = 0
    failed_runs: int = 0
    received: int = 0
    tracked: int = 0
    sent: int = 0
    failed: int = 0
    latency_count: int = 0
    latency_histogram: dict[str, int] = field(default_factory=dict)

    def add(self, other: Any) -> None:
        """Add another's sums: an HourSums, or an HourlyRollup / HourlyTotal row."""
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency_histogram = merge_histograms([self.latency_histogram, other.latency_histogram])


def rollup_hour(*, hour: datetime) -> int:
    """Recompute every mailbox's roll-up of the hour that ``hour`` falls in
    from its sync runs (by start) and receipts (by storage time), and the
    hour's per-profile totals from them; returns the number of roll-up rows
    the hour now has."""
    start = hour_of(hour)
    rows: dict[int, HourSums] = defaultdict(HourSums)
    _add_runs(rows, start)
    _add_latencies(rows, start)
    profiles = dict(Mailbox.objects.filter(pk__in=list(rows)).values_list("pk", "profile_id"))
    with transaction.atomic():
        HourlyRollup.objects.filter(hour=start).exclude(mailbox_id__in=list(rows)).delete()
        for mailbox_id, row in rows.items():
            HourlyRollup.objects.update_or_create(
                hour=start,
                mailbox_id=mailbox_id,
                defaults={"profile_id": profiles.get(mailbox_id), **row.__dict__},
            )
        _write_totals(start, rows, profiles)
    return len(rows)


def _write_totals(start: datetime, rows: Mapping[int, HourSums], profiles: Mapping[int, int | None]) -> None:
    totals: dict[int | None, HourSums] = defaultdict(HourSums)
    mailboxes: dict[int | None, int] = defaultdict(int)
    for mailbox_id, row in rows.items():
        profile_id = profiles.get(mailbox_id)
        total = totals[profile_id]
        mailboxes[profile_id] += 1
        total.add(row)
    stale = HourlyTotal.objects.filter(hour=start).exclude(
        profile_id__in=[p for p in totals if p is not None]
    )
    if None in totals:
        stale = stale.exclude(profile__isnull=True)
    stale.delete()
    for profile_id, total in totals.items():
        HourlyTotal.objects.update_or_create(
            hour=start,
            profile_id=profile_id,
            defaults={"mailboxes": mailboxes[profile_id], **total.__dict__},
        )


def _add_runs(rows: dict[int, HourSums], start: datetime) -> None:
    runs = (
        SyncRun.objects.filter(started_on__gte=start, started_on__lt=start + HOUR)
        .values("mailbox_id")
        .annotate(
            runs=Count("pk"),
            failed_runs=Count("pk", filter=Q(outcome=SyncOutcome.FAILED)),
            received=Sum("received"),
            tracked=Sum("tracked"),
            sent=Sum("sent"),
            failed=Sum("failed"),
        )
        .order_by()
    )
    for total in runs:
        row = rows[total.pop("mailbox_id")]
        for name, value in total.items():
            setattr(row, name, value or 0)


def _add_latencies(rows: dict[int, HourSums], start: datetime) -> None:
    # Differences are taken in Python: date arithmetic differs between databases.
    stored = (
        Receipt.objects.filter(
            created_on__gte=start,
            created_on__lt=start + HOUR,
            email__isnull=False,
            server_received_on__isnull=False,
        )
        .values_list("mailbox_id", "created_on", "server_received_on")
        .order_by()
    )
    for mailbox_id, created_on, server_received_on in stored.iterator(chunk_size=2000):
        row = rows[mailbox_id]
        waited = created_on - (server_received_on or created_on)  # never None: filtered above
        key = bucket_of(max(0.0, waited.total_seconds()))
        row.latency_histogram[key] = row.latency_histogram.get(key, 0) + 1
        row.latency_count += 1


def rollup_recent() -> int:
    """Roll up the current and the previous hour (runs near the turn of the
    hour finish after it); run every few minutes by beat."""
    current = hour_of(clock.now())
    return rollup_hour(hour=current - HOUR) + rollup_hour(hour=current)


def ensure_rolled_up(*, runs: Iterable[tuple[int, datetime]]) -> None:
    """Roll up every hour of these (mailbox id, started on) runs that has no
    roll-up row for that mailbox yet — before the runs are deleted."""
    wanted: dict[datetime, set[int]] = defaultdict(set)
    for mailbox_id, started_on in runs:
        wanted[hour_of(started_on)].add(mailbox_id)
    for hour, mailbox_ids in wanted.items():
        have = set(HourlyRollup.objects.filter(hour=hour).values_list("mailbox_id", flat=True))
        if mailbox_ids - have:
            rollup_hour(hour=hour)


def merge_histograms(histograms: Iterable[Mapping[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = defaultdict(int)
    for histogram in histograms:
        for key, count in histogram.items():
            merged[key] += count
    return dict(merged)


def percentile(histogram: Mapping[str, int], fraction: float) -> float | None:
    """The upper bound (seconds) of the bucket holding the given fraction
    (0.5 for p50, 0.95 for p95); ``inf`` above the last bound, None when empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for key in [*map(str, LATENCY_BOUNDS), OVERFLOW]:
        seen += histogram.get(key, 0)
        if seen >= rank:
            return float(key)
    return float("inf")
