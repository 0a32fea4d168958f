"""Which fields of appointments, tasks and contacts sync, in which direction: the one place.

A synced field is a name an administrator sees and the item fields it covers
(``sync.connectors.items``): an appointment's schedule (start, end, their zones, all
day, the recurrence and its exceptions) is one field, because half of it changed on
one side and half on the other is no schedule at all; a task's status, percent
complete and completion time are one, because completing on either side completes the
other. Each field has a default direction, and some are fixed as in Dynamics 365 (the
schedule, the organizer and the attendees: a meeting that differed between the CRM and
the calendar would invite people to the wrong time). Administrators change the others
organization-wide (``ActFieldSetting``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.models import ActFieldSetting, FieldDirection


@dataclass(frozen=True)
class SyncedField:
    name: str
    label: str
    members: tuple[str, ...]
    default: FieldDirection = FieldDirection.BOTH
    fixed: bool = False


def _one(name: str, label: str, **options: object) -> SyncedField:
    return SyncedField(name, label, (name,), **options)  # type: ignore[arg-type]


SCHEDULE = (
    "start",
    "end",
    "start_zone",
    "end_zone",
    "all_day",
    "recurrence",
    "deleted_occurrences",
    "changed_occurrences",
    "original_start",
)

FIELDS: dict[str, tuple[SyncedField, ...]] = {
    "appointment": (
        SyncedField("schedule", "Start, end, time zones and recurrence", SCHEDULE, fixed=True),
        _one("organizer", "Organizer", fixed=True),
        _one("attendees", "Required and optional attendees", fixed=True),
        _one("subject", "Subject"),
        _one("body", "Description"),
        _one("location", "Location"),
        _one("show_as", "Show as"),
        _one("reminder_minutes", "Reminder"),
        _one("categories", "Categories"),
        _one("status", "Status (canceled)"),
    ),
    "task": (
        _one("subject", "Subject"),
        _one("body", "Description"),
        _one("start", "Start date"),
        _one("due", "Due date"),
        SyncedField(
            "status",
            "Status, percent complete and completion",
            ("status", "percent_complete", "completed_on"),
        ),
        _one("priority", "Priority"),
        _one("categories", "Categories"),
    ),
    "contact": (
        SyncedField(
            "name", "First, middle and last name", ("first_name", "middle_name", "last_name"), fixed=True
        ),
        _one("nickname", "Nickname"),
        _one("company", "Company name"),
        _one("department", "Department"),
        _one("job_title", "Job title"),
        _one("emails", "Email addresses"),
        _one("business_phone", "Business phone"),
        _one("mobile_phone", "Mobile phone"),
        _one("home_phone", "Home phone"),
        _one("business_fax", "Fax"),
        _one("business_address", "Mailing address"),
        _one("home_address", "Home address"),
        _one("other_address", "Other address"),
        _one("birthday", "Birthday"),
        _one("notes", "Notes"),
    ),
}


def field(entity: str, name: str) -> SyncedField:
    for synced in FIELDS[entity]:
        if synced.name == name:
            return synced
    raise KeyError(f"{entity} has no synced field {name!r}")


def directions(entity: str) -> dict[str, FieldDirection]:
    """Every synced field of ``entity`` and its direction now (defaults where no administrator chose)."""
    chosen = dict(ActFieldSetting.objects.filter(entity=entity).values_list("field", "direction"))
    return {
        synced.name: synced.default
        if synced.fixed or synced.name not in chosen
        else FieldDirection(chosen[synced.name])
        for synced in FIELDS[entity]
    }


def setting_errors(entity: str, name: str, direction: str) -> list[str]:
    """Why an administrator's choice cannot be saved (empty: it can)."""
    if entity not in FIELDS:
        return [f"{entity!r} is not one of {', '.join(FIELDS)}."]
    names = [synced.name for synced in FIELDS[entity]]
    if name not in names:
        return [f"The {entity} has no synced field {name!r}; one of {', '.join(names)}."]
    if field(entity, name).fixed:
        return [
            f"The {entity}'s {field(entity, name).label.lower()} always sync both ways; it cannot be changed."
        ]
    if direction not in FieldDirection.values:
        return [f"{direction!r} is not a direction; one of {', '.join(FieldDirection.values)}."]
    return []


def store_direction(entity: str, name: str, direction: FieldDirection) -> None:
    """Set a field's direction (checked by ``setting_errors`` before). A field set back to its
    default keeps no row, so it follows the default should that change."""
    if direction == field(entity, name).default:
        ActFieldSetting.objects.filter(entity=entity, field=name).delete()
    else:
        ActFieldSetting.objects.update_or_create(entity=entity, field=name, defaults={"direction": direction})
