from __future__ import annotations

from django.db import models
from django.db.models import Q


class TimestampedModel(models.Model):
    created_on = models.DateTimeField(auto_now_add=True)
    modified_on = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


def at_most_one(fields: list[str], name: str) -> models.CheckConstraint:
    """A constraint allowing at most one of ``fields`` to be set (the others null)."""
    condition = Q()
    for chosen in [None, *fields]:
        branch = Q()
        for field in fields:
            branch &= Q(**{f"{field}__isnull": field != chosen})
        condition |= branch
    return models.CheckConstraint(condition=condition, name=name)
