"""A mailbox's synchronization filters: the CRM records they select, and the organization's
defaults every new user's mailbox starts with (as Dynamics' "My …" filters)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from mailboxes.filter_criteria import ENTITY_MODELS, OPEN_TASK_STATES, SyncEntity, criteria_q
from mailboxes.models import Mailbox, SyncFilter, SyncFilterTemplate

# The organization's defaults as first installed (migration 0006 holds a frozen copy): owned
# by the mailbox's user and open; appointments also not ended more than two weeks ago,
# Microsoft's best practice for the first synchronization.
DEFAULT_TEMPLATES: list[dict[str, Any]] = [
    {
        "entity": SyncEntity.APPOINTMENT.value,
        "name": "My appointments",
        "criteria": {"owner": "mine", "states": ["open"], "window": {"field": "end", "days_ago": 14}},
    },
    {
        "entity": SyncEntity.CONTACT.value,
        "name": "My contacts",
        "criteria": {"owner": "mine", "states": ["active"]},
    },
    {
        "entity": SyncEntity.TASK.value,
        "name": "My tasks",
        "criteria": {"owner": "mine", "states": [str(s) for s in OPEN_TASK_STATES]},
    },
]


def filter_records(entity: str) -> models.QuerySet[Any]:
    """All of an entity's CRM records a filter could select. A changed occurrence of a series
    travels with its master, so appointments are singles and series masters."""
    records = ENTITY_MODELS[entity]._default_manager.all()
    if entity == SyncEntity.APPOINTMENT:
        records = records.filter(series_master__isnull=True)
    return records


def criteria_matching(
    mailbox: Mailbox, entity: str, criteria: dict[str, Any], *, now: dt.datetime | None = None
) -> models.QuerySet[Any]:
    """The records one set of (valid) criteria selects for ``mailbox``."""
    moment = now or timezone.now()
    return filter_records(entity).filter(criteria_q(entity, criteria, owner_id=mailbox.user_id, now=moment))


def matching(mailbox: Mailbox, entity: str, *, now: dt.datetime | None = None) -> models.QuerySet[Any]:
    """The CRM records of ``entity`` the mailbox's filters select, OR-ed; none without a
    filter, and none for a mailbox with no user (queues do not synchronize appointments,
    contacts and tasks in Dynamics either)."""
    records = filter_records(entity)
    filters = list(SyncFilter.objects.filter(mailbox=mailbox, entity=entity))
    if not filters or not mailbox.user_id:
        return records.none()
    moment = now or timezone.now()
    selected = Q(pk__in=[])
    for sync_filter in filters:
        selected |= criteria_q(entity, sync_filter.criteria, owner_id=mailbox.user_id, now=moment)
    return records.filter(selected)


def create_default_filters(mailbox: Mailbox) -> list[SyncFilter]:
    """Copy the organization's defaults onto a user's mailbox (other mailboxes get none)."""
    if not mailbox.user_id:
        return []
    return SyncFilter.objects.bulk_create(
        SyncFilter(mailbox=mailbox, entity=t.entity, name=t.name, criteria=t.criteria)
        for t in SyncFilterTemplate.objects.all()
    )


def ensure_default_templates(**kwargs: Any) -> None:
    """After migrate (and a test's flush, which empties the table): the organization has
    default filters. Only an empty table is filled: administrators' edits stay."""
    if not SyncFilterTemplate.objects.exists():
        SyncFilterTemplate.objects.bulk_create(SyncFilterTemplate(**values) for values in DEFAULT_TEMPLATES)
