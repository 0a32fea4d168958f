"""Model fields the CRM's records share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.dateparse import parse_datetime


class DateTimeListField(models.JSONField):
    """A list of aware datetimes, kept as ISO 8601 strings in JSON so that it is the same
    on PostgreSQL and SQLite (``make run``'s database): an ArrayField is PostgreSQL's only."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> list[datetime]:
        return self.to_python(super().from_db_value(value, expression, connection))

    def to_python(self, value: Any) -> list[datetime]:
        if value in (None, ""):
            return []
        if not isinstance(value, list):
            raise ValidationError("Enter a list of date-times.", code="invalid")
        return [_datetime(item) for item in value]

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value([moment.isoformat() for moment in self.to_python(value)])

    def validate(self, value: Any, model_instance: models.Model | None) -> None:
        super().validate([moment.isoformat() for moment in self.to_python(value)], model_instance)


def _datetime(item: object) -> datetime:
    moment = item if isinstance(item, datetime) else parse_datetime(str(item))
    if moment is None or moment.tzinfo is None:
        raise ValidationError(f"{item!r} is not a date-time with its offset.", code="invalid")
    return moment
