"""The API's filters: related records among those the requester may see (any other id, another
user's or one that does not exist, is alike "not a valid choice", so existence does not leak),
and moments held in UTC.

Kept apart from ``web.api_base`` because DRF's settings name ``ApiFilterBackend``
(``DEFAULT_FILTER_BACKENDS``) and read it while ``rest_framework.generics`` is still being
imported: this module imports nothing that imports that."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django_filters import rest_framework as filters
from django_filters.conf import settings as django_filters_settings
from django_filters.fields import IsoDateTimeField
from rest_framework.request import Request

from web.roles import visible

_M = TypeVar("_M", bound=models.Model)


def visible_choices(model: type[_M]) -> Callable[[Request | None], models.QuerySet[_M]]:
    """The rows a filter naming a ``model`` accepts: those the requester may see. Any other id,
    another user's or one that does not exist, is alike "not a valid choice"."""

    def choices(request: Request | None) -> models.QuerySet[_M]:
        rows = model._default_manager.all()
        if request is None:  # the schema, generated without a request
            return rows.none()
        return visible(rows, request.user)

    return choices


def _related_filter(field: Any) -> dict[str, Any]:
    return {
        "queryset": visible_choices(field.remote_field.model),
        "to_field_name": field.remote_field.field_name,
        "null_label": django_filters_settings.NULL_CHOICE_LABEL if field.null else None,
    }


class BoundedIsoDateTimeField(IsoDateTimeField):  # type: ignore[misc]  # django-filter has no type information
    """An ISO 8601 moment, held in UTC: PostgreSQL refuses offsets beyond 15:59 hours, and a
    moment that is not one in UTC (9999-12-31T23:00-05:00) is refused here, with a message."""

    def to_python(self, value: Any) -> datetime | None:
        parsed: datetime | None = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise DjangoValidationError(self.error_messages["invalid"], code="invalid") from None


class BoundedIsoDateTimeFilter(filters.IsoDateTimeFilter):  # type: ignore[misc]  # no type information
    field_class = BoundedIsoDateTimeField


# django-filter has no type information for its default filters.
FILTER_DEFAULTS: dict[Any, dict[str, Any]] = {
    **filters.FilterSet.FILTER_DEFAULTS,
    models.DateTimeField: {"filter_class": BoundedIsoDateTimeFilter},
    models.ForeignKey: {"filter_class": filters.ModelChoiceFilter, "extra": _related_filter},
    models.OneToOneField: {"filter_class": filters.ModelChoiceFilter, "extra": _related_filter},
}


class ApiFilterSet(filters.FilterSet):  # type: ignore[misc]  # django-filter has no type information
    """Every API filter set: related records among those the requester may see, moments in UTC."""

    FILTER_DEFAULTS = FILTER_DEFAULTS


class ApiFilterBackend(filters.DjangoFilterBackend):  # type: ignore[misc]  # no type information
    """``filterset_fields`` built on ``ApiFilterSet`` (a view's own ``filterset_class`` derives from it)."""

    filterset_base = ApiFilterSet
