"""The monitoring dashboard (``/``): is synchronization healthy, what failed, and
where to look. Administrators see the organization, its profiles and workers; a
user sees their own mailboxes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import formats, timezone
from django.views.decorators.http import require_GET

from console import charts, dashboard, health
from console.views.access import member_required
from crm.choices import SyncStatus
from mailboxes.models import DIRECTION_FIELDS, ApprovalStatus, Mailbox
from sync import clock, heartbeats
from sync.models import MailboxAlert
from web.roles import is_administrator, visible

DIRECTIONS = (
    ("incoming", "Incoming email"),
    ("outgoing", "Outgoing email"),
    ("act", "Appointments, contacts, and tasks"),
)


@dataclass(frozen=True)
class Tile:
    label: str
    count: int
    link: str
    tone: str = ""


@require_GET
@member_required
def dashboard_page(request: HttpRequest) -> HttpResponse:
    administrator = is_administrator(request.user)
    mailboxes = visible(Mailbox.objects.all(), request.user)
    now = clock.now()
    counts = health.mailbox_counts(mailboxes, now=now)
    flow = dashboard.throughput(mailboxes=None if administrator else mailboxes, now=now)
    hours = _hour_labels(flow)
    context = {
        "total": counts["total"],
        "first_steps": dashboard.first_steps(mailboxes, total=counts["total"], administrator=administrator),
        "status_rows": _status_rows(counts),
        "attention": _attention_tiles(counts),
        "disabled_reasons": dashboard.disabled_reasons(mailboxes),
        "alerts_by_level": dashboard.open_alerts_by_level(visible(MailboxAlert.objects.all(), request.user)),
        "flow": flow,
        "day_chart": charts.throughput(flow.hours, labels=hours, title="Last 24 hours"),
        "week_chart": charts.throughput(flow.days, labels=_day_labels(flow), title="Last 7 days"),
        # One hour of data draws no line: the table says it better.
        "latency_chart": sum(bool(hour.latency_histogram) for hour in flow.hours) > 1
        and charts.latency(flow.hours, labels=hours, title="Latency, last 24 hours (s)"),
        "latency_hours": list(reversed(flow.hours)),
    }
    if administrator:
        depths = health.queue_depths()
        context |= {
            "profiles": dashboard.profile_health(),
            "workers": heartbeats.recent_workers(),
            "queue_depths": depths,
            "broker_up": depths is not None,
        }
    return render(request, "console/dashboard.html", context)


def _mailboxes_link(**filters: str) -> str:
    return f"{reverse('mailboxes')}?{urlencode(filters)}"


def _status_rows(counts: dict[str, Any]) -> list[tuple[str, list[Tile]]]:
    rows = []
    for direction, label in DIRECTIONS:
        by_status = counts[direction]
        tiles = [
            Tile(
                status.label,
                by_status[status.value],
                _mailboxes_link(**{DIRECTION_FIELDS[direction].status: status.value}),
                tone={SyncStatus.FAILURE: "bad", SyncStatus.SUCCESS: "good"}.get(status, ""),
            )
            for status in SyncStatus
        ]
        rows.append((label, tiles))
    return rows


def _attention_tiles(counts: dict[str, Any]) -> list[Tile]:
    return [
        Tile("Disabled", counts["disabled"], _mailboxes_link(disabled="yes"), "bad"),
        Tile("In backoff", counts["in_backoff"], _mailboxes_link(backoff="yes"), "warn"),
        Tile(
            "Pending approval",
            counts["pending_approval"],
            _mailboxes_link(approval_status=ApprovalStatus.PENDING_APPROVAL),
            "warn",
        ),
    ]


def _hour_labels(flow: dashboard.Throughput) -> list[str]:
    return [
        timezone.localtime(period.start).strftime("%H")
        for period in flow.hours
        if isinstance(period.start, datetime)
    ]


def _day_labels(flow: dashboard.Throughput) -> list[str]:
    return [formats.date_format(period.start, "D j") for period in flow.days]
