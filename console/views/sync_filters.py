"""A mailbox's sync filters (/mailboxes/<id>/sync-filters/): per entity, its filters, each a
form whose criteria can be changed (conditions added and removed) with the number of CRM
records it selects counted live as the criteria change, before anything is saved.

The mailbox's user and administrators only (as the API); anyone else gets 404. The rules
are mailboxes.filter_criteria's: this page turns its form into the same JSON and checks it
there, so it refuses exactly what the API refuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from console.views.access import HtmxHttpRequest, member_required
from mailboxes.filter_criteria import (
    OPERATORS,
    OWNER_SCOPES,
    STATES,
    SyncEntity,
    condition_fields,
    criteria_errors,
    window_fields,
)
from mailboxes.models import Mailbox, SyncFilter
from mailboxes.sync_filters import criteria_matching, matching
from web.roles import visible

CARD = "console/sync_filters/_filter.html"


@dataclass
class FilterCard:
    """One filter's form: the values shown (saved, or as just typed), what is wrong, the count."""

    sync_filter: SyncFilter
    name: str
    criteria: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    count: int | None = None
    saved: bool = False

    @property
    def entity(self) -> str:
        return self.sync_filter.entity

    @property
    def fields(self) -> list[tuple[str, str]]:
        return [(name, str(f.verbose_name)) for name, f in sorted(condition_fields(self.entity).items())]

    @property
    def window_fields(self) -> list[str]:
        return window_fields(self.entity)

    @property
    def states(self) -> list[tuple[str, str, bool]]:
        chosen = self.criteria.get("states") or []
        return [
            (state, state.replace("_", " ").capitalize(), state in chosen)
            for state in STATES[self.entity].values
        ]

    @property
    def window(self) -> dict[str, Any]:
        return dict(self.criteria.get("window") or {})

    @property
    def conditions(self) -> list[dict[str, str]]:
        return [
            {
                "field": str(c.get("field", "")),
                "op": str(c.get("op", "")),
                "value": ", ".join(map(str, c["value"]))
                if isinstance(c.get("value"), list)
                else str(c.get("value", "")),
            }
            for c in self.criteria.get("conditions", [])
        ]


def _card(sync_filter: SyncFilter, name: str, criteria: dict[str, Any]) -> FilterCard:
    card = FilterCard(sync_filter, name, criteria, errors=criteria_errors(sync_filter.entity, criteria))
    if not card.errors:
        card.count = criteria_matching(sync_filter.mailbox, sync_filter.entity, criteria).count()
    return card


@require_GET
@member_required
def sync_filters_page(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    mailbox = _mailbox(request, pk)
    filters = list(mailbox.sync_filters.all())
    sections = [
        {
            "entity": entity,
            "label": label,
            "total": matching(mailbox, entity).count(),
            "cards": [_card(f, f.name, f.criteria) for f in filters if f.entity == entity],
        }
        for entity, label in SyncEntity.choices
    ]
    context = {"mailbox": mailbox, "sections": sections, "owner_scopes": OWNER_SCOPES, "operators": OPERATORS}
    return render(request, "console/sync_filters/page.html", context)


@require_POST
@member_required
def sync_filter_add(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A new filter of the entity named in the form: the mailbox user's records, to narrow down."""
    mailbox = _mailbox(request, pk)
    entity = request.POST.get("entity", "")
    label = dict(SyncEntity.choices).get(entity, "")
    added = SyncFilter(mailbox=mailbox, entity=entity, name=f"My {label.lower()}", criteria={"owner": "mine"})
    try:
        added.full_clean()
    except ValidationError as error:
        messages.error(request, f"No filter added: {' '.join(error.messages)}")
    else:
        added.save()
        messages.success(request, f"Added the filter {added.name}.")
    return _back_to_page(request, mailbox)


@require_POST
@member_required
def sync_filter_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The filter's form, posted: ``?preview=count`` answers the live count of what it would
    select; the buttons add or remove a condition (nothing saved) or save it."""
    sync_filter = _filter(request, pk)
    name, criteria = request.POST.get("name", "").strip(), criteria_from_form(request.POST)
    action = request.POST.get("action", "")
    if action == "add-condition":
        criteria.setdefault("conditions", []).append({"field": "", "op": "equals", "value": ""})
    elif action.startswith("remove-condition-"):
        index = action.removeprefix("remove-condition-")
        conditions = criteria.get("conditions", [])
        if index.isdigit() and int(index) < len(conditions):
            del conditions[int(index)]
        if not conditions:
            criteria.pop("conditions", None)
    card = _card(sync_filter, name, criteria)
    if not name:
        card.errors.insert(0, "Give the filter a name.")
    if request.GET.get("preview") == "count":
        return render(request, "console/sync_filters/_count.html", {"card": card})
    if action == "save" and not card.errors:
        sync_filter.name, sync_filter.criteria = name, criteria
        sync_filter.full_clean()
        sync_filter.save()
        messages.success(request, f"Saved the filter {name}.")
        return _back_to_page(request, sync_filter.mailbox)
    if not request.htmx:
        messages.error(request, f"The filter {sync_filter.name} was not saved: {' '.join(card.errors)}")
        return redirect("mailbox-sync-filters", sync_filter.mailbox_id)
    return render(request, CARD, {"card": card, "owner_scopes": OWNER_SCOPES, "operators": OPERATORS})


@require_POST
@member_required
def sync_filter_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    sync_filter = _filter(request, pk)
    sync_filter.delete()
    messages.success(request, f"Deleted the filter {sync_filter.name}.")
    return _back_to_page(request, sync_filter.mailbox)


def criteria_from_form(data: QueryDict) -> dict[str, Any]:
    """The JSON criteria the form's fields say (checked afterwards by filter_criteria)."""
    criteria: dict[str, Any] = {"owner": data.get("owner", "mine")}
    if data.getlist("states"):
        criteria["states"] = data.getlist("states")
    if data.get("window_field"):
        criteria["window"] = {
            "field": data["window_field"],
            "days_ago": _days(data.get("window_days_ago", "")),
            "days_ahead": _days(data.get("window_days_ahead", "")),
        }
    fields, ops, values = (
        data.getlist("condition_field"),
        data.getlist("condition_op"),
        data.getlist("condition_value"),
    )
    conditions = [
        {
            "field": f,
            "op": op,
            "value": [v.strip() for v in value.split(",")] if op == "in" else value.strip(),
        }
        for f, op, value in zip(fields, ops, values, strict=False)
    ]
    if conditions:
        criteria["conditions"] = conditions
    return criteria


def _days(text: str) -> int | str | None:
    text = text.strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text  # not a number: the check says so


def _mailbox(request: HtmxHttpRequest, pk: int) -> Mailbox:
    return get_object_or_404(visible(Mailbox.objects.select_related("user", "queue"), request.user), pk=pk)


def _filter(request: HtmxHttpRequest, pk: int) -> SyncFilter:
    return get_object_or_404(visible(SyncFilter.objects.select_related("mailbox"), request.user), pk=pk)


def _back_to_page(request: HtmxHttpRequest, mailbox: Mailbox) -> HttpResponse:
    url = reverse("mailbox-sync-filters", args=[mailbox.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
