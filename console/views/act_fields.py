"""System Settings > Appointments, contacts and tasks: field directions
(/settings/act-fields/). One table per entity: each synced field (``sync.act_fields``),
its default and the direction it syncs in now; fixed fields are shown, not offered.
Administrators only; the choices are checked by ``act_fields.setting_errors``, as the
API and the admin check them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from console.views.access import HtmxHttpRequest, administrator_required
from mailboxes.filter_criteria import SyncEntity
from sync import act_fields
from sync.models import FieldDirection


def field_key(entity: str, name: str) -> str:
    return f"{entity}.{name}"


@dataclass(frozen=True)
class FieldRow:
    synced: act_fields.SyncedField
    bound: forms.BoundField | None  # None: fixed, shown without a choice

    @property
    def default_label(self) -> str:
        return FieldDirection(self.synced.default).label


class FieldDirectionsForm(forms.Form):
    """One select per field an administrator may change, named ``entity.field``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for entity in act_fields.FIELDS:
            now = act_fields.directions(entity)
            for synced in act_fields.FIELDS[entity]:
                if not synced.fixed:
                    self.fields[field_key(entity, synced.name)] = forms.ChoiceField(
                        label=synced.label, choices=FieldDirection.choices, initial=now[synced.name]
                    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for key, direction in cleaned.items():
            entity, name = key.split(".", 1)
            for error in act_fields.setting_errors(entity, name, direction):
                self.add_error(key, error)
        return cleaned

    def tables(self) -> list[tuple[str, str, list[FieldRow]]]:
        """(entity, its label, its rows) in the order ``sync.act_fields`` lists them."""
        labels = dict(SyncEntity.choices)
        return [
            (
                entity,
                str(labels.get(entity, entity)),
                [
                    FieldRow(synced, None if synced.fixed else self[field_key(entity, synced.name)])
                    for synced in fields
                ],
            )
            for entity, fields in act_fields.FIELDS.items()
        ]

    @transaction.atomic
    def save(self) -> int:
        """Store the choices that differ from now; how many changed."""
        changed = 0
        for key, direction in self.cleaned_data.items():
            entity, name = key.split(".", 1)
            if act_fields.directions(entity)[name] != direction:
                act_fields.store_direction(entity, name, FieldDirection(direction))
                changed += 1
        return changed


@require_http_methods(["GET", "POST"])
@administrator_required
def act_field_settings(request: HtmxHttpRequest) -> HttpResponse:
    if request.method != "POST":
        form = FieldDirectionsForm()
    else:
        form = FieldDirectionsForm(request.POST)
        if form.is_valid():
            changed = form.save()
            messages.success(request, f"Saved the field directions ({changed} changed).")
            return redirect("act-field-settings")
    return render(request, "console/act_fields.html", {"form": form})
