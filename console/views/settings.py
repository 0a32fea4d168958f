"""System Settings > Email (/settings/email/): the organization's email settings,
grouped as Dynamics 365 groups them. Administrators only."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from console.views.access import HtmxHttpRequest, administrator_required
from crm.models import EMAIL_SETTINGS_SECTIONS, OrganizationSettings
from profiles.forms import FieldRow


class OrganizationSettingsForm(forms.ModelForm[OrganizationSettings]):
    """The rules are the model's (``OrganizationSettings.clean()`` and field validators)."""

    class Meta:
        model = OrganizationSettings
        fields = [name for _, names in EMAIL_SETTINGS_SECTIONS for name in names]
        widgets = {
            "smart_matching_filter_keywords": forms.Textarea(attrs={"rows": 4}),
            "crm_urls": forms.Textarea(attrs={"rows": 3}),
        }

    def sections(self) -> list[tuple[str, list[FieldRow]]]:
        return [(title, [FieldRow(self[name]) for name in names]) for title, names in EMAIL_SETTINGS_SECTIONS]


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
    return render(request, "console/settings.html", {"form": form})
