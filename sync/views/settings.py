"""System Settings > Email (/settings/email/): the organization's email settings,
grouped as Dynamics 365 groups them. Administrators only."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from crm.models import OrganizationSettings
from profiles.forms import FieldRow
from sync.views.access import HtmxHttpRequest, administrator_required

# The sections of Dynamics' "System Settings > Email" tab (the admin groups them the same way).
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Configure email processing",
        ("process_email_using", "default_incoming_method", "default_outgoing_method", "default_act_method"),
    ),
    (
        "Email processing for unapproved users and queues",
        ("process_email_only_for_approved_users", "process_email_only_for_approved_queues"),
    ),
    (
        "Email correlation",
        (
            "correlation_enabled",
            "tracking_token_enabled",
            "tracking_token_prefix",
            "tracking_token_base_number",
            "tracking_token_user_digits",
            "tracking_token_counter_digits",
        ),
    ),
    (
        "Smart matching",
        (
            "smart_matching_enabled",
            "smart_matching_filter_keywords",
            "smart_matching_max_hash_count",
            "smart_matching_min_recipient_matches",
            "smart_matching_subject_delta",
        ),
    ),
    (
        "Email options",
        (
            "track_email_between_users_as_two_activities",
            "set_unresolved_when_multiple_matches",
            "max_attachment_size_kb",
        ),
    ),
    (
        "Alerts",
        ("record_error_alerts", "record_warning_alerts", "record_information_alerts", "notify_mailbox_owner"),
    ),
    ("Email Router migration", ("crm_urls",)),
)


class OrganizationSettingsForm(forms.ModelForm):
    """The rules are the model's (``OrganizationSettings.clean()`` and field validators)."""

    class Meta:
        model = OrganizationSettings
        fields = [name for _, names in SECTIONS for name in names]
        widgets = {
            "smart_matching_filter_keywords": forms.Textarea(attrs={"rows": 4}),
            "crm_urls": forms.Textarea(attrs={"rows": 3}),
        }

    def sections(self) -> list[tuple[str, list[FieldRow]]]:
        return [(title, [FieldRow(self[name]) for name in names]) for title, names in SECTIONS]


@require_http_methods(["GET", "POST"])
@administrator_required
def email_settings(request: HtmxHttpRequest) -> HttpResponse:
    organization = OrganizationSettings.load()
    if request.method != "POST":
        form = OrganizationSettingsForm(instance=organization)
    else:
        form = OrganizationSettingsForm(request.POST, instance=organization)
        if form.is_valid():
            form.save()
            messages.success(request, "Saved the email settings.")
            return redirect("email-settings")
    return render(request, "sync/settings.html", {"form": form})
