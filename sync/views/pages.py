"""The shell's other pages: what exists so far, as simple honest lists."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Field, Model, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from crm.api_base import visible
from crm.models import OrganizationSettings
from mailboxes.models import Mailbox, SyncStatus
from profiles.models import EmailServerProfile
from sync.models import MailboxAlert, TestState
from sync.views.access import administrator_required, member_required

ALERTS_SHOWN = 200


@require_GET
@member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    mailboxes = visible(Mailbox.objects.all(), request.user)
    failing = Q(incoming_status=SyncStatus.FAILURE) | Q(outgoing_status=SyncStatus.FAILURE)
    counts = mailboxes.aggregate(
        total=Count("pk"),
        enabled=Count("pk", filter=Q(incoming_enabled=True) | Q(outgoing_enabled=True)),
        failing=Count("pk", filter=failing | Q(act_status=SyncStatus.FAILURE)),
        testing=Count("pk", filter=Q(tests__state__in=(TestState.QUEUED, TestState.TESTING)), distinct=True),
    )
    open_alerts = visible(MailboxAlert.objects.filter(resolved_on__isnull=True), request.user).count()
    return render(request, "sync/dashboard.html", {"counts": counts, "open_alerts": open_alerts})


@require_GET
@member_required
def alert_list(request: HttpRequest) -> HttpResponse:
    alerts = visible(MailboxAlert.objects.filter(resolved_on__isnull=True), request.user)
    shown = alerts.select_related("mailbox", "profile")[:ALERTS_SHOWN]
    return render(request, "sync/alerts.html", {"alerts": shown, "limit": ALERTS_SHOWN})


@require_GET
@administrator_required
def profile_list(request: HttpRequest) -> HttpResponse:
    profiles = EmailServerProfile.objects.annotate(mailbox_count=Count("mailboxes"))
    return render(request, "sync/profiles.html", {"profiles": profiles})


@require_GET
@administrator_required
def migration(request: HttpRequest) -> HttpResponse:
    return render(request, "sync/migration.html")


@require_GET
@administrator_required
def email_settings(request: HttpRequest) -> HttpResponse:
    """System Settings > Email, read-only here; changed in the admin."""
    organization = OrganizationSettings.load()
    fields = [
        (field.verbose_name, _display(organization, field))
        for field in organization._meta.concrete_fields
        if field.name != "id"
    ]
    return render(request, "sync/settings.html", {"fields": fields})


def _display(instance: Model, field: Field[Any, Any]) -> str:
    value = getattr(instance, field.attname)
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value)
