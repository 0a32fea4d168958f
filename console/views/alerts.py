"""The alert wall (``/alerts/``): every alert with its count and first / last
seen, filtered and searched; acknowledge and resolve; emails whose outcome is
unknown offer resend / mark sent. A user sees their own mailboxes' alerts."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.forms import HiddenInput
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_filters import rest_framework as filters

from console.dashboard import open_alerts_by_level
from console.views.access import HtmxHttpRequest, member_required
from console.views.querystring import query_without
from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from sync import unknown_outcomes
from sync.alerts import alert_acknowledge, alert_resolve
from sync.models import AlertLevel, MailboxAlert
from web.roles import visible

PAGE_SIZE = 50
STATES = (("open", "Open"), ("acknowledged", "Acknowledged"), ("resolved", "Resolved"), ("all", "All"))


class AlertWallFilter(filters.FilterSet):  # type: ignore[misc]  # django-filter has no type information
    q = filters.CharFilter(method="search", label="Search")
    state = filters.ChoiceFilter(choices=STATES, method="filter_state", label="State", empty_label=None)
    level = filters.ChoiceFilter(choices=AlertLevel.choices, label="Level")
    category = filters.ChoiceFilter(choices=(), label="Category")
    profile = filters.ModelChoiceFilter(queryset=EmailServerProfile.objects.none(), label="Profile")
    # From a mailbox's page (?mailbox=ID); a select of every mailbox would not scale.
    mailbox = filters.NumberFilter(field_name="mailbox_id", label="Mailbox", widget=HiddenInput)

    class Meta:
        model = MailboxAlert
        fields: list[str] = []

    def __init__(self, data: Any, queryset: QuerySet[MailboxAlert], **kwargs: Any) -> None:
        data = data.copy()
        data.setdefault("state", "open")
        super().__init__(data, queryset=queryset, **kwargs)
        # Only what this viewer's alerts are about: no other names leak to a user.
        categories = queryset.order_by("category").values_list("category", flat=True).distinct()
        self.filters["category"].extra["choices"] = [(name, name) for name in categories]
        self.filters["profile"].queryset = EmailServerProfile.objects.filter(
            pk__in=queryset.values("profile")
        )

    def search(self, queryset: QuerySet[MailboxAlert], name: str, value: str) -> QuerySet[MailboxAlert]:
        return queryset.filter(
            Q(message__icontains=value)
            | Q(code__icontains=value)
            | Q(mailbox__email_address__icontains=value)
            | Q(mailbox__name__icontains=value)
            | Q(profile__name__icontains=value)
        )

    def filter_state(self, queryset: QuerySet[MailboxAlert], name: str, value: str) -> QuerySet[MailboxAlert]:
        if value == "open":
            return queryset.filter(resolved_on__isnull=True)
        if value == "acknowledged":
            return queryset.filter(resolved_on__isnull=True, acknowledged_on__isnull=False)
        if value == "resolved":
            return queryset.filter(resolved_on__isnull=False)
        return queryset


@require_GET
@member_required
def alert_wall(request: HttpRequest) -> HttpResponse:
    alerts = visible(MailboxAlert.objects.all(), request.user)
    wall = AlertWallFilter(request.GET, queryset=alerts)
    shown = wall.qs.select_related("mailbox", "profile", "acknowledged_by", "resolved_by").order_by(
        "-last_seen", "-pk"
    )
    page = Paginator(shown, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    context = {
        "filter": wall,
        "page": page,
        "rows": _rows(rows),
        "open_by_level": open_alerts_by_level(alerts),
        "query": query_without(request, "page"),
        "every_mailbox_query": query_without(request, "page", "mailbox"),
        "mailbox": _filtered_mailbox(wall, visible(Mailbox.objects.all(), request.user)),
    }
    return render(request, "console/alerts.html", context)


def _filtered_mailbox(wall: AlertWallFilter, mailboxes: QuerySet[Mailbox]) -> Mailbox | None:
    """The mailbox the wall is narrowed to, if the viewer may see it."""
    mailbox_id = wall.form.cleaned_data.get("mailbox") if wall.is_valid() else None
    if not mailbox_id:
        return None
    return mailboxes.filter(pk=mailbox_id).only("email_address").first()


def _rows(alerts: list[MailboxAlert]) -> list[tuple[MailboxAlert, list[Any]]]:
    """Each alert with the emails it is about, when its outcome is unknown (one query for all)."""
    unknown = [alert for alert in alerts if unknown_outcomes.is_outcome_unknown_alert(alert)]
    emails = unknown_outcomes.by_mailbox([alert.mailbox for alert in unknown if alert.mailbox])
    return [(alert, emails.get(alert.mailbox_id or 0, []) if alert in unknown else []) for alert in alerts]


def _render_row(request: HttpRequest, alert: MailboxAlert) -> HttpResponse:
    return render(request, "console/alerts/_row.html", {"alert": alert, "emails": _rows([alert])[0][1]})


def _after_post(request: HtmxHttpRequest, alert: MailboxAlert) -> HttpResponse:
    if request.htmx:
        return _render_row(request, alert)
    return redirect("alerts")


@require_POST
@member_required
def acknowledge(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(visible(MailboxAlert.objects.all(), request.user), pk=pk)
    return _after_post(request, alert_acknowledge(alert=alert, by=request.user))


@require_POST
@member_required
def resolve(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    alert = get_object_or_404(visible(MailboxAlert.objects.all(), request.user), pk=pk)
    return _after_post(request, alert_resolve(alert=alert, by=request.user))


def _settle(request: HtmxHttpRequest, pk: int, *, resend: bool) -> HttpResponse:
    mailboxes = visible(Mailbox.objects.all(), request.user)
    email = get_object_or_404(unknown_outcomes.sent_by(mailboxes), pk=pk)
    try:
        email = unknown_outcomes.settle(email=email, resend=resend, by=request.user)
        outcome, problem = ("Queued to send again" if resend else "Marked as sent"), ""
    except ValidationError as error:
        outcome, problem = "", " ".join(error.messages)
    if request.htmx:
        return render(
            request, "console/alerts/_settled.html", {"email": email, "outcome": outcome, "problem": problem}
        )
    if problem:
        messages.error(request, problem)
    else:
        messages.success(request, f"{email.subject or 'The email'}: {outcome.lower()}.")
    return redirect("alerts")


@require_POST
@member_required
def resend(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _settle(request, pk, resend=True)


@require_POST
@member_required
def mark_sent(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _settle(request, pk, resend=False)
