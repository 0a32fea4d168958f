"""What a sync filter's criteria may say, how they are checked, and the query they make.

Criteria are one JSON object per filter, checked here when saved (``criteria_errors``)::

    {"owner": "mine" | "all",
     "states": ["open", ...],                      # the entity's state values; absent: any
     "window": {"field": "end", "days_ago": 14,    # field not before now - 14 days
                "days_ahead": null},               # field not after now + N days
     "conditions": [{"field": "subject", "op": "contains", "value": "Board"}, ...]}

All parts are AND-ed; a mailbox's filters are OR-ed (mailboxes.sync_filters). JSON rather
than rows of conditions: a filter is read and saved whole (the API, the page's form, the
engine's one query), SQLite holds it as well (``make run``), and this one check is the
only way in. Dynamics' owner scope "my team's" is left out: the CRM has no teams.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from crm.models import Appointment, Contact, Task


class SyncEntity(models.TextChoices):
    APPOINTMENT = "appointment", "Appointments"
    CONTACT = "contact", "Contacts"
    TASK = "task", "Tasks"


ENTITY_MODELS: dict[str, type[models.Model]] = {
    SyncEntity.APPOINTMENT: Appointment,
    SyncEntity.CONTACT: Contact,
    SyncEntity.TASK: Task,
}


@dataclass(frozen=True)
class StateField:
    """The field an entity's state is kept in, and each state's name and stored value."""

    field: str
    values: dict[str, Any]


STATES: dict[str, StateField] = {
    SyncEntity.APPOINTMENT: StateField("status", {v: v for v in Appointment.Status.values}),
    SyncEntity.TASK: StateField("status", {v: v for v in Task.Status.values}),
    SyncEntity.CONTACT: StateField("is_active", {"active": True, "inactive": False}),
}
# Dynamics' "open" activities: neither completed nor canceled.
OPEN_TASK_STATES = [
    Task.Status.NOT_STARTED,
    Task.Status.IN_PROGRESS,
    Task.Status.WAITING,
    Task.Status.DEFERRED,
]

OWNER_SCOPES = {"mine": "Owned by the mailbox's user", "all": "Anyone's"}
OPERATORS = {
    "equals": "equals",
    "in": "is one of",
    "before": "is before",
    "after": "is after",
    "contains": "contains",
}
TEXT_FIELDS = (models.CharField, models.TextField)
ORDERED_FIELDS = (models.DateField, models.IntegerField, models.DecimalField, models.FloatField)
MAX_WINDOW_DAYS = 36_500  # a century: more is a typing mistake (and overflows a date)
CRITERIA_KEYS = {"owner", "states", "window", "conditions"}


def condition_fields(entity: str) -> dict[str, models.Field[Any, Any]]:
    """The fields a condition may name: the record's own values and the records it points at
    (by id); not the JSON lists (categories, deleted occurrences), which no operator fits."""
    model = ENTITY_MODELS[entity]
    return {
        field.name: field
        for field in model._meta.concrete_fields
        if not isinstance(field, models.JSONField) and field.name != "id"
    }


def window_fields(entity: str) -> list[str]:
    return [name for name, f in condition_fields(entity).items() if isinstance(f, models.DateTimeField)]


def operators_for(field: models.Field[Any, Any]) -> list[str]:
    found = ["equals", "in"]
    if isinstance(field, ORDERED_FIELDS):
        found += ["before", "after"]
    if isinstance(field, TEXT_FIELDS) and not field.choices:
        found.append("contains")
    return found


def criteria_errors(entity: str, criteria: Any) -> list[str]:
    """Every problem with ``criteria`` for ``entity``, each a sentence naming its part."""
    if entity not in ENTITY_MODELS:
        return [f"Choose an entity: {', '.join(ENTITY_MODELS)}."]
    if not isinstance(criteria, dict):
        return ["Criteria are an object with owner, states, window and conditions."]
    errors = [
        f"Unknown part {key!r}: use {', '.join(sorted(CRITERIA_KEYS))}."
        for key in criteria.keys() - CRITERIA_KEYS
    ]
    owner = criteria.get("owner", "all")
    if owner not in OWNER_SCOPES:
        errors.append(f"Owner: {owner!r} is not a scope; use mine or all (the CRM has no teams).")
    errors += _state_errors(entity, criteria.get("states"))
    errors += _window_errors(entity, criteria.get("window"))
    conditions = criteria.get("conditions", [])
    if not isinstance(conditions, list):
        return [*errors, "Conditions are a list."]
    for number, condition in enumerate(conditions, start=1):
        errors += [f"Condition {number}: {message}" for message in _condition_errors(entity, condition)]
    return errors


def _state_errors(entity: str, states: Any) -> list[str]:
    if states is None:
        return []
    known = STATES[entity].values
    if not isinstance(states, list) or not states:
        return [f"States: give a list of one or more of {', '.join(known)} (or leave it out: any state)."]
    return [
        f"States: {s!r} is not a state of {entity}s; use {', '.join(known)}."
        for s in states
        if s not in known
    ]


def _window_errors(entity: str, window: Any) -> list[str]:
    if window is None:
        return []
    allowed = window_fields(entity)
    if not isinstance(window, dict) or window.get("field") not in allowed:
        return [f"Window: name its field, one of {', '.join(allowed)}."]
    errors = []
    for key in ("days_ago", "days_ahead"):
        days = window.get(key)
        if days is not None and (
            not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_WINDOW_DAYS
        ):
            errors.append(f"Window: {key} is a whole number of days, 0 to {MAX_WINDOW_DAYS}.")
    if window.get("days_ago") is None and window.get("days_ahead") is None:
        errors.append("Window: give days_ago, days_ahead or both.")
    return errors


def _condition_errors(entity: str, condition: Any) -> list[str]:
    if not isinstance(condition, dict):
        return ["give field, op and value."]
    fields = condition_fields(entity)
    name, op = condition.get("field"), condition.get("op")
    if name not in fields:
        return [f"{entity}s have no field {name!r}; use one of {', '.join(sorted(fields))}."]
    field = fields[name]
    if op not in operators_for(field):
        return [f"{op!r} does not apply to {name}; use {', '.join(operators_for(field))}."]
    try:
        _values(field, op, condition.get("value"))
    except ValidationError as error:
        return [f"{name}: {' '.join(error.messages)}"]
    return []


def _values(field: models.Field[Any, Any], op: str, value: Any) -> Any:
    """The condition's value as the field stores it (a list for ``in``)."""
    if op == "in":
        if not isinstance(value, list) or not value:
            raise ValidationError("give a list of one or more values.")
        return [_value(field, item) for item in value]
    if op == "contains":
        if not isinstance(value, str) or not value or "\x00" in value:
            raise ValidationError("give the text to look for.")
        return value
    return _value(field, value)


def _value(field: models.Field[Any, Any], value: Any) -> Any:
    if value is None or value == "":
        raise ValidationError("give a value.")
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    if isinstance(value, (dict, list)) or (isinstance(value, str) and "\x00" in value):
        raise ValidationError(f"{value!r} is not a value of this field.")
    converted = target.to_python(value)
    # The field's own limits (a number the database can hold, an address's shape).
    target.run_validators(converted)
    if isinstance(converted, dt.datetime) and timezone.is_naive(converted):
        # A date or a time without an offset: the organization's time zone (settings.TIME_ZONE).
        converted = timezone.make_aware(converted)
    if field.choices and converted not in {str(choice) for choice, _ in field.flatchoices}:
        raise ValidationError(f"{value!r} is not one of {', '.join(str(c) for c, _ in field.flatchoices)}.")
    return converted


def validate_criteria(entity: str, criteria: Any) -> None:
    errors = criteria_errors(entity, criteria)
    if errors:
        raise ValidationError({"criteria": errors})


# --- the query -------------------------------------------------------------------------------


def criteria_q(entity: str, criteria: dict[str, Any], *, owner_id: int | None, now: dt.datetime) -> Q:
    """The records ``criteria`` select (valid criteria only). "mine" with no owner selects nothing."""
    query = Q()
    if criteria.get("owner", "all") == "mine":
        if owner_id is None:
            return Q(pk__in=[])
        query &= Q(owner_id=owner_id)
    states = criteria.get("states")
    if states is not None:
        state = STATES[entity]
        query &= Q(**{f"{state.field}__in": [state.values[s] for s in states]})
    window = criteria.get("window")
    if window is not None:
        query &= _window_q(entity, window, now)
    fields = condition_fields(entity)
    for condition in criteria.get("conditions", []):
        query &= _condition_q(fields[condition["field"]], condition["op"], condition["value"])
    return query


def _window_q(entity: str, window: dict[str, Any], now: dt.datetime) -> Q:
    name, query = window["field"], Q()
    if window.get("days_ago") is not None:
        query &= Q(**{f"{name}__gte": now - dt.timedelta(days=window["days_ago"])})
    if window.get("days_ahead") is not None:
        query &= Q(**{f"{name}__lte": now + dt.timedelta(days=window["days_ahead"])})
    if entity == SyncEntity.APPOINTMENT and name == "end":
        # A series master's end is its first occurrence's: a series still running has
        # occurrences in the window, which the engine expands; keep every series.
        query |= ~Q(recurrence_rule="")
    return query


def _condition_q(field: models.Field[Any, Any], op: str, value: Any) -> Q:
    converted = _values(field, op, value)
    lookup = {"equals": "exact", "in": "in", "before": "lt", "after": "gt", "contains": "icontains"}[op]
    return Q(**{f"{field.attname}__{lookup}": converted})
