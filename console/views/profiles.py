"""Email server profile pages (/profiles/): list, create (server type first), edit,
and "Test Connection". Administrators only.

The form (profiles.forms.ProfileForm) shows only the fields that apply to the
profile's server type and way of signing in; when one of those choices changes,
htmx asks this same page for the form redrawn (a GET carrying the form's values,
never its secrets) and swaps it in. Without JavaScript the form still works: a
submitted change of type or credentials redraws it with the fields that apply.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.views.access import HtmxHttpRequest, administrator_required
from profiles.forms import ProfileForm, type_defaults
from profiles.models import EmailServerProfile, ServerType
from profiles.server_types import facts
from sync.checks import profile_test_connection
from sync.connectors import registry
from sync.rollout import RolloutError, profile_rollout


@require_GET
@administrator_required
def profile_list(request: HtmxHttpRequest) -> HttpResponse:
    profiles = EmailServerProfile.objects.select_related("owner").annotate(mailbox_count=Count("mailboxes"))
    return render(request, "console/profiles/list.html", {"profiles": profiles})


@require_http_methods(["GET", "POST"])
@administrator_required
def profile_create(request: HtmxHttpRequest) -> HttpResponse:
    """Choose the server type, then fill in the form for that type."""
    source = request.POST if request.method == "POST" else request.GET
    server_type = source.get("server_type", "")
    if server_type not in ServerType.values:
        return _choose_type(request, asked=bool(server_type) or request.method == "POST")
    profile = EmailServerProfile(server_type=server_type)
    # A type changed where no JavaScript redrew the form: show that type's form before saving.
    type_changed = request.POST.get("shown_server_type", server_type) != server_type
    if request.method == "POST" and not type_changed:
        form = ProfileForm(request.POST, request.FILES, instance=profile)
        if form.is_valid():
            saved = form.save()
            messages.success(request, f"Created the profile {saved.name}. Test its connection next.")
            return redirect("profiles-edit", pk=saved.pk)
    else:
        form = _unsaved_form(request, profile)
    return _form_page(request, form, profile=None)


@require_http_methods(["GET", "POST"])
@administrator_required
def profile_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    profile = get_object_or_404(EmailServerProfile.objects.select_related("owner"), pk=pk)
    if request.method != "POST":
        return _form_page(request, _unsaved_form(request, profile), profile=profile)
    form = ProfileForm(request.POST, request.FILES, instance=profile)
    if form.is_valid():
        form.save()
        messages.success(request, f"Saved the profile {profile.name}.")
        return redirect("profiles-edit", pk=profile.pk)
    # The page describes the stored profile (heading, last test), not the rejected input.
    profile.refresh_from_db()
    return _form_page(request, form, profile=profile)


def _unsaved_form(request: HtmxHttpRequest, profile: EmailServerProfile) -> ProfileForm:
    """The form shown without saving: redrawn from the values the page sent, or as stored
    (a new profile: its type's usual ports and location)."""
    values = request.POST if request.method == "POST" else request.GET
    if "shown_fields" in values:
        return ProfileForm.redrawn(values, instance=profile)
    initial = type_defaults(profile.server_type) if profile.pk is None else None
    return ProfileForm(instance=profile, initial=initial)


@require_POST
@administrator_required
def profile_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """ "Test Connection": both directions with the saved profile's own credentials."""
    profile = get_object_or_404(EmailServerProfile.objects.select_related("owner"), pk=pk)
    results = profile_test_connection(profile=profile)
    context = {"profile": profile, "results": results}
    if request.htmx:
        return render(request, "console/profiles/_test_results.html", context)
    return _form_page(request, ProfileForm(instance=profile), profile=profile, results=results)


@require_POST
@administrator_required
def profile_test_and_enable_mailboxes(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """ "Test & Enable Mailboxes": all the profile's mailboxes as one paced rollout,
    watched on the mailbox page filtered to this profile."""
    profile = get_object_or_404(EmailServerProfile, pk=pk)
    try:
        plan = profile_rollout(profile=profile, created_by=request.user)
    except RolloutError as error:
        messages.error(request, str(error))
        target = reverse("profiles-edit", args=[profile.pk])
    else:
        messages.success(
            request, f"Rollout #{plan.pk} will test & enable the mailboxes of {profile.name}, queues first."
        )
        target = f"{reverse('mailboxes')}?profile={profile.pk}"
    if request.htmx:
        return HttpResponse(headers={"HX-Redirect": target})
    return redirect(target)


def _choose_type(request: HtmxHttpRequest, *, asked: bool) -> HttpResponse:
    types = [
        (value, label, facts(value).description, registry.kind_of(value) is not None)
        for value, label in ServerType.choices
    ]
    return render(request, "console/profiles/choose_type.html", {"types": types, "asked": asked})


def _form_page(
    request: HtmxHttpRequest, form: ProfileForm, *, profile: EmailServerProfile | None, **extra: Any
) -> HttpResponse:
    context = {"form": form, "profile": profile, **extra}
    return render(request, "console/profiles/form.html", context)
