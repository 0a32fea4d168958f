"""The figures of the monitoring dashboard, read so that the page costs the same
handful of queries for 3 mailboxes or 10,000.

Throughput and latency come from the hourly roll-ups (sync.rollups): an
administrator reads the per-profile totals (``HourlyTotal``, a few rows per
hour); a user reads their own mailboxes' rows. Percentiles come from the
roll-ups' latency histograms, so SQLite and PostgreSQL give the same answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from crm.choices import SyncStatus
from mailboxes.models import DIRECTION_FIELDS, Mailbox
from profiles.models import EmailServerProfile
from sync import clock
from sync.models import AlertLevel, HourlyRollup, HourlyTotal, MailboxAlert
from sync.rollups import COUNTERS, HOUR, HourSums, hour_of, percentile

DISABLED_REASONS_SHOWN = 5


@dataclass
class Period(HourSums):
    """Sums over one hour or one day."""

    start: datetime | date = field(kw_only=True)

    @property
    def failures(self) -> int:
        """Emails that could not be sent plus sync runs that failed."""
        return self.failed + self.failed_runs

    @property
    def latency_p50(self) -> float | None:
        return percentile(self.latency_histogram, 0.5)

    @property
    def latency_p95(self) -> float | None:
        return percentile(self.latency_histogram, 0.95)


@dataclass
class Throughput:
    hours: list[Period]  # the last 24, oldest first
    days: list[Period]  # the last 7, oldest first

    @cached_property  # the page reads it four times
    def last_24_hours(self) -> Period:
        total = Period(start=self.hours[0].start)
        for hour in self.hours:
            total.add(hour)
        return total


def throughput(*, mailboxes: QuerySet[Mailbox] | None, now: datetime | None = None) -> Throughput:
    """Hourly points for the last 24 hours and daily ones for the last 7 days (the
    current hour and day included). ``mailboxes`` None: the whole organization."""
    this_hour = hour_of(now or clock.now())
    week_start = _day(this_hour) - timedelta(days=6)
    first_hour = min(this_hour - 23 * HOUR, _midnight(week_start))
    hours = {
        this_hour - offset * HOUR: Period(start=this_hour - offset * HOUR) for offset in range(23, -1, -1)
    }
    days = {
        week_start + timedelta(days=offset): Period(start=week_start + timedelta(days=offset))
        for offset in range(7)
    }
    for row in _rollup_rows(mailboxes, since=first_hour):
        if row.hour in hours:
            hours[row.hour].add(row)
        day = _day(row.hour)
        if day in days:
            days[day].add(row)
    return Throughput(hours=list(hours.values()), days=list(days.values()))


def _rollup_rows(mailboxes: QuerySet[Mailbox] | None, *, since: datetime) -> Iterable[Any]:
    columns = ("hour", *COUNTERS, "latency_histogram")
    if mailboxes is None:
        return HourlyTotal.objects.filter(hour__gte=since).only(*columns).order_by()
    return HourlyRollup.objects.filter(hour__gte=since, mailbox__in=mailboxes).only(*columns).order_by()


def _day(moment: datetime) -> date:
    return timezone.localtime(moment).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def disabled_reasons(mailboxes: QuerySet[Mailbox]) -> list[tuple[str, int]]:
    """The most common reasons mailboxes were disabled, with how many each."""
    rows = (
        mailboxes.exclude(disabled_reason="")
        .values_list("disabled_reason")
        .annotate(count=Count("pk"))
        .order_by("-count", "disabled_reason")[:DISABLED_REASONS_SHOWN]
    )
    return [(reason, count) for reason, count in rows]


def _failing() -> Q:
    failing = Q()
    for fields in DIRECTION_FIELDS.values():
        failing |= Q(**{f"mailboxes__{fields.status}": SyncStatus.FAILURE})
    return failing


@dataclass
class ProfileHealth:
    profile: EmailServerProfile
    mailboxes: int
    failing: int
    last_error: str
    last_error_on: datetime | None

    @property
    def failing_share(self) -> float:
        return self.failing / self.mailboxes if self.mailboxes else 0.0


def profile_health() -> list[ProfileHealth]:
    """Per profile: its mailboxes, how many have a direction in Failure, and the
    latest Error alert about the profile or one of its mailboxes."""
    latest_error = MailboxAlert.objects.filter(profile=OuterRef("pk"), level=AlertLevel.ERROR).order_by(
        "-last_seen", "-pk"
    )
    profiles = EmailServerProfile.objects.annotate(
        mailbox_count=Count("mailboxes"),
        failing_count=Count("mailboxes", filter=_failing()),
        last_error=Subquery(latest_error.values("message")[:1]),
        last_error_on=Subquery(latest_error.values("last_seen")[:1]),
    ).order_by("name")
    # The annotations are the query's own columns (django-stubs cannot see them).
    return [
        ProfileHealth(
            profile=profile,
            mailboxes=profile.mailbox_count,  # type: ignore[attr-defined]
            failing=profile.failing_count,  # type: ignore[attr-defined]
            last_error=profile.last_error or "",  # type: ignore[attr-defined]
            last_error_on=profile.last_error_on,  # type: ignore[attr-defined]
        )
        for profile in profiles
    ]


@dataclass(frozen=True)
class FirstSteps:
    """Where a new installation stands on its way to synchronizing: an email server
    profile, mailboxes, then test & enable (not done while the steps show)."""

    profile: bool
    mailboxes: bool


def first_steps(mailboxes: QuerySet[Mailbox], *, total: int, administrator: bool) -> FirstSteps | None:
    """The first steps while none of ``mailboxes`` (those the viewer sees; ``total`` of
    them) has been through test & enable, None from then on. A mailbox counts once a
    test finished (passed or failed: the page's own tiles then say what is wrong) or
    while a direction is enabled (one enabled another way, e.g. by the demo). Whether a
    profile exists is asked for administrators only: no one else can create one."""
    tested = Q(test_completed_on__isnull=False) | Q(incoming_enabled=True)
    tested |= Q(outgoing_enabled=True) | Q(act_enabled=True)
    if total and mailboxes.filter(tested).exists():
        return None
    return FirstSteps(
        profile=administrator and EmailServerProfile.objects.exists(),
        mailboxes=total > 0,
    )


def open_alerts_by_level(alerts: QuerySet[MailboxAlert]) -> dict[str, int]:
    counted = defaultdict(
        int,
        alerts.filter(resolved_on__isnull=True).values_list("level").annotate(count=Count("pk")).order_by(),
    )
    return {level.value: counted[level.value] for level in AlertLevel}
