"""CRM records as items (``sync.connectors.items``) and items written back into records.

The one mapping between the CRM's appointments, tasks and contacts and what a calendar,
task list or address book holds. ``to_item`` reads a record as the server would hold it;
``write`` stores the named item fields (``sync.act_fields`` members) into a record, new
or existing, and checks it as a form would (a ``ValidationError`` is one item's problem,
not the run's).

Rules that live here because they are about the mapping: completed and canceled
appointments show as Free on the server (as Dynamics); the tracking category is the
server's business and never a CRM category; a contact's first address is ``email`` and
its mailing address the server's business address.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from django.db import models, transaction

from crm.models import Appointment, AppointmentParty, Contact, Task
from mailboxes.models import Mailbox
from sync.connectors.interfaces import Item
from sync.connectors.items import (
    Address,
    Attendee,
    Card,
    Event,
    EventStatus,
    Party,
    Priority,
    ShowAs,
    Todo,
    TodoStatus,
)
from sync.tracking import Parties

Record = Appointment | Task | Contact

# What an exception of a series holds of its own.
OCCURRENCE_MEMBERS = frozenset(
    {"start", "subject", "body", "location", "reminder_minutes", "categories", "show_as", "status"}
)
ADDRESS_PREFIXES = {"business_address": "mailing", "home_address": "home", "other_address": "other"}


@dataclass(frozen=True)
class Context:
    """What a mapping needs besides the record: whose mailbox, the tracking category."""

    mailbox: Mailbox
    tracking_category: str
    parties: Parties

    @property
    def address(self) -> str:
        return self.mailbox.email_address.strip().lower()


# --- records as items --------------------------------------------------------------------


def to_item(record: Record, uid: str, context: Context, *, tracked: bool = False) -> Item:
    if isinstance(record, Appointment):
        return _event(record, uid, context, tracked=tracked)
    if isinstance(record, Task):
        return _todo(record, uid, context, tracked=tracked)
    return _card(record, uid)


def organizer_of(appointment: Appointment) -> AppointmentParty | None:
    return next((p for p in appointment.parties.all() if p.role == AppointmentParty.Role.ORGANIZER), None)


def _event(appointment: Appointment, uid: str, context: Context, *, tracked: bool) -> Event:
    organizer = organizer_of(appointment)
    attendees = tuple(
        Attendee(p.address, p.display_name, optional=p.role == AppointmentParty.Role.OPTIONAL)
        for p in appointment.parties.all()
        if p.role != AppointmentParty.Role.ORGANIZER
    )
    master = _occurrence(appointment, uid, context, tracked=tracked)
    return replace(
        master,
        organizer=Party(organizer.address, organizer.display_name) if organizer else None,
        attendees=attendees,
        recurrence=appointment.recurrence_rule,
        deleted_occurrences=tuple(sorted(appointment.deleted_occurrences)),
        changed_occurrences=tuple(
            replace(
                _occurrence(exception, uid, context, tracked=tracked),
                organizer=master.organizer
                if organizer is None
                else Party(organizer.address, organizer.display_name),
                attendees=attendees,
                original_start=exception.original_start,
            )
            for exception in sorted(appointment.exceptions.all(), key=lambda e: e.original_start or e.start)
        )
        if appointment.recurrence_rule
        else (),
    )


def _occurrence(appointment: Appointment, uid: str, context: Context, *, tracked: bool) -> Event:
    closed = appointment.status in (Appointment.Status.COMPLETED, Appointment.Status.CANCELED)
    return Event(
        uid=uid,
        start=appointment.start.astimezone(ZoneInfo(appointment.start_time_zone)),
        end=appointment.end.astimezone(ZoneInfo(appointment.end_time_zone)),
        start_zone=appointment.start_time_zone,
        end_zone=appointment.end_time_zone,
        all_day=appointment.all_day,
        subject=appointment.subject,
        body=appointment.body_text,
        location=appointment.location,
        show_as=ShowAs.FREE if closed else ShowAs(appointment.show_as),
        reminder_minutes=appointment.reminder_minutes_before,
        categories=_categories(appointment.categories, context, tracked=tracked),
        status=EventStatus.CANCELLED
        if appointment.status == Appointment.Status.CANCELED
        else EventStatus.CONFIRMED,
    )


def _categories(categories: list[str], context: Context, *, tracked: bool) -> tuple[str, ...]:
    kept = [c for c in categories if c.casefold() != context.tracking_category.casefold()]
    return (*kept, context.tracking_category) if tracked else tuple(kept)


def _todo(task: Task, uid: str, context: Context, *, tracked: bool) -> Todo:
    return Todo(
        uid=uid,
        subject=task.subject,
        body=task.body_text,
        start=task.start,
        due=task.due,
        status=TodoStatus(task.status),
        percent_complete=task.percent_complete,
        priority=Priority(task.priority),
        completed_on=task.completed_on,
        categories=(context.tracking_category,) if tracked else (),
    )


def _card(contact: Contact, uid: str) -> Card:
    return Card(
        uid=uid,
        first_name=contact.first_name,
        middle_name=contact.middle_name,
        last_name=contact.last_name,
        nickname=contact.nickname,
        company=contact.company_name,
        department=contact.department,
        job_title=contact.job_title,
        emails=tuple(e for e in (contact.email, contact.email2, contact.email3) if e),
        business_phone=contact.phone,
        mobile_phone=contact.mobile_phone,
        home_phone=contact.home_phone,
        business_fax=contact.business_fax,
        business_address=_address(contact, "mailing"),
        home_address=_address(contact, "home"),
        other_address=_address(contact, "other"),
        birthday=contact.birthday,
        notes=contact.notes,
    )


def _address(contact: Contact, prefix: str) -> Address | None:
    address = Address(
        street=getattr(contact, f"{prefix}_street"),
        city=getattr(contact, f"{prefix}_city"),
        region=getattr(contact, f"{prefix}_state"),
        postal_code=getattr(contact, f"{prefix}_postal_code"),
        country=getattr(contact, f"{prefix}_country"),
    )
    return None if address == Address() else address


def for_server(item: Item, record: Record, context: Context) -> Item:
    """What the server is sent of a record. Servers invite the attendees of a meeting written
    in its organizer's calendar (Graph, EWS, CalDAV servers that schedule), and invitations go
    only to future meetings the syncing user organizes (as Dynamics): any other appointment
    is written without its attendees, which stay in the CRM."""
    invited = isinstance(record, Appointment) and is_future(record) and organized_by_user(record, context)
    if isinstance(item, Event) and item.attendees and not invited:
        return replace(item, attendees=())
    return item


def is_future(appointment: Appointment) -> bool:
    """Whether the appointment (a series: one of its occurrences) has not started yet."""
    now = dt.datetime.now(dt.UTC)
    if appointment.recurrence_rule:
        return appointment.rule().after(now) is not None
    return appointment.start > now


def organized_by_user(appointment: Appointment, context: Context) -> bool:
    organizer = organizer_of(appointment)
    if organizer is None:
        return appointment.owner_id == context.mailbox.user_id
    if organizer.user_id is not None:
        return organizer.user_id == context.mailbox.user_id
    return organizer.address.strip().lower() == context.address


# --- items into records ------------------------------------------------------------------


def new_record(entity: str, context: Context) -> Record:
    """An empty record of ``entity`` owned by the mailbox's user, for an item tracked on the server."""
    owner = context.mailbox.user
    if entity == "appointment":
        return Appointment(owner=owner)
    if entity == "task":
        return Task(owner=owner)
    return Contact(owner=owner)


def write(record: Record, item: Item, members: set[str], context: Context) -> Record:
    """Store the item fields ``members`` into ``record`` (saved; created when new), checked
    as the record's form checks it. Raises ``ValidationError`` and changes nothing when the
    record would be invalid."""
    with transaction.atomic():
        if isinstance(record, Appointment) and isinstance(item, Event):
            _write_event(record, item, members, context)
        elif isinstance(record, Task) and isinstance(item, Todo):
            _write_todo(record, item, members)
        elif isinstance(record, Contact) and isinstance(item, Card):
            _write_card(record, item, members)
        else:
            raise TypeError(f"a {type(item).__name__} is not written into a {type(record).__name__}")
    # Parties and exceptions prefetched before were replaced: read them anew when asked.
    getattr(record, "_prefetched_objects_cache", {}).clear()
    return record


def _set(record: models.Model, values: dict[str, Any], members: set[str] | frozenset[str]) -> None:
    for member, (field, value) in values.items():
        if member in members:
            setattr(record, field, value)


def _write_event(appointment: Appointment, event: Event, members: set[str], context: Context) -> None:
    _set_occurrence(appointment, event, members, context)
    if "recurrence" in members:
        appointment.recurrence_rule = event.recurrence
        appointment.deleted_occurrences = list(event.deleted_occurrences)
    replacing = "changed_occurrences" in members and appointment.pk is not None
    if replacing:
        # A changed rule must keep its exceptions' occurrences: they go first and come back after.
        appointment.exceptions.all().delete()
    appointment.full_clean()
    appointment.save()
    if "changed_occurrences" in members:
        for changed in event.changed_occurrences:
            exception = Appointment(
                owner=appointment.owner, series_master=appointment, original_start=changed.original_start
            )
            _set_occurrence(exception, changed, OCCURRENCE_MEMBERS, context)
            exception.full_clean()
            exception.save()
    if "organizer" in members or "attendees" in members:
        _write_parties(appointment, event, members, context)


def _set_occurrence(
    appointment: Appointment, event: Event, members: set[str] | frozenset[str], context: Context
) -> None:
    if "start" in members:
        appointment.start, appointment.end = event.start, event.end
        appointment.start_time_zone, appointment.end_time_zone = event.start_zone, event.end_zone
        appointment.all_day = event.all_day
        appointment.start_date = event.start_date if event.all_day else None
        appointment.end_date = event.end_date if event.all_day else None
    closed = appointment.status in (Appointment.Status.COMPLETED, Appointment.Status.CANCELED)
    _set(
        appointment,
        {
            "subject": ("subject", event.subject[:400]),
            "location": ("location", event.location[:500]),
            "reminder_minutes": ("reminder_minutes_before", event.reminder_minutes),
            "categories": ("categories", list(_categories(list(event.categories), context, tracked=False))),
        },
        members,
    )
    if "body" in members and event.body != appointment.body_text:
        appointment.body_text, appointment.body_html = event.body, ""
    if "show_as" in members and not closed:
        # A closed appointment shows as Free on the server; that is not a change of its own.
        appointment.show_as = event.show_as.value
    if "status" in members:
        if event.status == EventStatus.CANCELLED:
            appointment.status = Appointment.Status.CANCELED
        elif appointment.status == Appointment.Status.CANCELED:
            appointment.status = Appointment.Status.OPEN


def _write_parties(appointment: Appointment, event: Event, members: set[str], context: Context) -> None:
    parties = context.parties
    wanted: list[tuple[str, str, str]] = []
    if "organizer" in members:
        appointment.parties.filter(role=AppointmentParty.Role.ORGANIZER).delete()
        organizer = event.organizer or Party(context.mailbox.email_address, str(context.mailbox))
        wanted.append((AppointmentParty.Role.ORGANIZER, organizer.address, organizer.name))
    if "attendees" in members:
        appointment.parties.exclude(role=AppointmentParty.Role.ORGANIZER).delete()
        wanted += [
            (
                AppointmentParty.Role.OPTIONAL if a.optional else AppointmentParty.Role.REQUIRED,
                a.address,
                a.name,
            )
            for a in event.attendees
        ]
    parties.lookup(address for _, address, _ in wanted)
    rows = []
    for role, address, name in wanted:
        party = AppointmentParty(appointment=appointment, role=role, address=address, display_name=name[:300])
        found = parties.of(address)
        if found is not None and found[0] != "queue":
            setattr(party, f"{found[0]}_id", found[1])
        rows.append(party)
    AppointmentParty.objects.bulk_create(rows)


def _write_todo(task: Task, todo: Todo, members: set[str]) -> None:
    _set(
        task,
        {
            "subject": ("subject", todo.subject[:400] or "(no subject)"),
            "body": ("body_text", todo.body),
            "start": ("start", todo.start),
            "due": ("due", todo.due),
            "status": ("status", todo.status.value),
            "percent_complete": ("percent_complete", todo.percent_complete),
            "completed_on": ("completed_on", todo.completed_on),
            "priority": ("priority", todo.priority.value),
        },
        members,
    )
    task.full_clean()
    task.save()


def _write_card(contact: Contact, card: Card, members: set[str]) -> None:
    emails = [*card.emails, "", "", ""]
    _set(
        contact,
        {
            "first_name": ("first_name", card.first_name[:100]),
            "middle_name": ("middle_name", card.middle_name[:100]),
            "last_name": ("last_name", card.last_name[:100] or _fallback_last_name(card)),
            "nickname": ("nickname", card.nickname[:100]),
            "company": ("company_name", card.company[:200]),
            "department": ("department", card.department[:100]),
            "job_title": ("job_title", card.job_title[:100]),
            "business_phone": ("phone", card.business_phone[:50]),
            "mobile_phone": ("mobile_phone", card.mobile_phone[:50]),
            "home_phone": ("home_phone", card.home_phone[:50]),
            "business_fax": ("business_fax", card.business_fax[:50]),
            "birthday": ("birthday", card.birthday),
            "notes": ("notes", card.notes),
        },
        members,
    )
    if "emails" in members:
        contact.email, contact.email2, contact.email3 = emails[:3]
    for member, prefix in ADDRESS_PREFIXES.items():
        if member in members:
            address = getattr(card, member) or Address()
            contact.__dict__.update(
                {
                    f"{prefix}_street": address.street,
                    f"{prefix}_city": address.city,
                    f"{prefix}_state": address.region,
                    f"{prefix}_postal_code": address.postal_code,
                    f"{prefix}_country": address.country,
                }
            )
    contact.full_clean()
    contact.save()


def _fallback_last_name(card: Card) -> str:
    """The CRM needs a last name; a card without one (a company, a nickname) gives its next best."""
    for name in (card.first_name, card.nickname, card.company, *card.emails):
        if name.strip():
            return name.strip()[:100]
    return "(no name)"


def content_key(entity: str, record_or_item: Record | Item) -> tuple[object, ...]:
    """What makes a record and an item "the same" when neither knows the other's id (a full
    read after the server forgot the cursor, a link lost): subject and start, subject and due
    date, or name and first address, compared without case."""
    value = record_or_item
    if isinstance(value, Appointment | Event):
        return (value.subject.strip().casefold(), _instant(value.start))
    if isinstance(value, Task | Todo):
        # The due day, not the instant: To Do and EWS keep a task's due date without its time.
        due = _instant(value.due)
        return (value.subject.strip().casefold(), due.date() if due else None)
    if isinstance(value, Contact):
        return (value.first_name.casefold(), value.last_name.casefold(), value.email.casefold())
    return (value.first_name.casefold(), value.last_name.casefold(), (value.emails or ("",))[0].casefold())


def _instant(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(dt.UTC) if value is not None else None
