"""Appointments, tasks and contacts as plain data, the form connectors exchange with the engine.

Frozen dataclasses, no Django and no CRM: Graph, EWS and CalDAV / CardDAV
connectors read and write these, the engine maps them to and from CRM records.
Values follow the CRM's choices (``crm/models/appointments.py``, ``tasks.py``,
``records.py``) so that the mapping there is a rename, not a translation.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from enum import StrEnum

import icalendar

from sync.errors import MessageError

MAX_EMAILS = 3  # what Outlook, Graph and EWS keep per contact


def invalid(message: str) -> MessageError:
    return MessageError(message, code="item_invalid")


def check_zone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise invalid(f"The time zone {name!r} is not an IANA zone.") from None


def check_aware(name: str, value: dt.datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise invalid(f"The {name} {value.isoformat()} has no time zone; give an aware date-time.")


def canonical_rule(text: str) -> str:
    """An RRULE value with its parts in RFC 5545's order (icalendar's): a server may
    store a rule reordered (Radicale does), and the same rule must compare equal."""
    if not text.strip():
        return ""
    try:
        rule = icalendar.vRecur.from_ical(text.strip())
    except ValueError as error:
        raise invalid(f"The recurrence rule {text!r} is not an RRULE value: {error}") from None
    if "FREQ" not in rule:
        raise invalid(f"The recurrence rule {text!r} has no FREQ.")
    return bytes(rule.to_ical()).decode()


_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def explicit_rule(rule: str, local_start: dt.datetime) -> str:
    """The rule with the parts RFC 5545 takes from DTSTART written out: a weekly rule's day,
    a monthly rule's day of the month, a yearly rule's month and day. Exchange always states
    them (a weekly pattern names its days), so the same series reads the same from every side."""
    if not rule:
        return rule
    parts = icalendar.vRecur.from_ical(rule)
    given = set(parts)
    frequency = str(parts["FREQ"][0]).upper()
    if frequency == "WEEKLY" and "BYDAY" not in given:
        parts["BYDAY"] = [_WEEKDAYS[local_start.weekday()]]
    elif frequency == "MONTHLY" and not given & {"BYMONTHDAY", "BYDAY", "BYSETPOS"}:
        parts["BYMONTHDAY"] = [local_start.day]
    elif frequency == "YEARLY" and not given & {"BYMONTH", "BYMONTHDAY", "BYDAY", "BYYEARDAY", "BYWEEKNO"}:
        parts["BYMONTH"], parts["BYMONTHDAY"] = [local_start.month], [local_start.day]
    else:
        return rule
    return canonical_rule(bytes(parts.to_ical()).decode())


class ShowAs(StrEnum):
    """The free/busy states Graph and EWS share (the CRM's ``Appointment.ShowAs``)."""

    FREE = "free"
    TENTATIVE = "tentative"
    BUSY = "busy"
    OUT_OF_OFFICE = "out_of_office"
    WORKING_ELSEWHERE = "working_elsewhere"


class EventStatus(StrEnum):
    """iCalendar's VEVENT STATUS (a cancelled meeting stays on the calendar, marked)."""

    CONFIRMED = "confirmed"
    TENTATIVE = "tentative"
    CANCELLED = "cancelled"


class TodoStatus(StrEnum):
    """The CRM's ``Task.Status``."""

    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    WAITING = "waiting"
    COMPLETED = "completed"
    DEFERRED = "deferred"
    CANCELED = "canceled"


class Priority(StrEnum):
    """The CRM's ``Task.Priority``."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


@dataclass(frozen=True)
class Party:
    """An organizer: an email address and the name shown with it."""

    address: str
    name: str = ""


@dataclass(frozen=True)
class Attendee:
    address: str
    name: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Event:
    """An appointment, a series master (``recurrence`` set) or a changed occurrence of one
    (``original_start`` set: the start of the occurrence it replaces, RECURRENCE-ID).

    ``start`` / ``end`` are aware; ``start_zone`` / ``end_zone`` the IANA zones they were
    given in (a series repeats in its start zone's wall clock). ``recurrence`` is kept
    in one canonical order of its parts (``canonical_rule``). An all-day event starts
    and ends at midnight in its zones, ``end`` being the day after the last (exclusive),
    as iCalendar and the CRM keep it. ``deleted_occurrences`` are original starts (EXDATE).
    """

    uid: str
    start: dt.datetime
    end: dt.datetime
    start_zone: str = "UTC"
    end_zone: str = "UTC"
    all_day: bool = False
    subject: str = ""
    body: str = ""
    location: str = ""
    organizer: Party | None = None
    attendees: tuple[Attendee, ...] = ()
    show_as: ShowAs = ShowAs.BUSY
    reminder_minutes: int | None = None
    categories: tuple[str, ...] = ()
    status: EventStatus = EventStatus.CONFIRMED
    recurrence: str = ""
    deleted_occurrences: tuple[dt.datetime, ...] = ()
    changed_occurrences: tuple[Event, ...] = ()
    original_start: dt.datetime | None = None

    def __post_init__(self) -> None:
        if not self.uid:
            raise invalid("An event needs a UID.")
        check_aware("start", self.start)
        check_aware("end", self.end)
        check_aware("original start", self.original_start)
        for start in self.deleted_occurrences:
            check_aware("deleted occurrence", start)
        check_zone(self.start_zone)
        check_zone(self.end_zone)
        if self.end < self.start:
            raise invalid(f"The event {self.uid!r} ends before it starts.")
        if self.all_day:
            self._check_midnights()
        if self.reminder_minutes is not None and self.reminder_minutes < 0:
            raise invalid("A reminder comes some minutes before the start (0 or more).")
        # Frozen, so set through object: the normalizations the data does itself.
        rule = canonical_rule(self.recurrence)
        local_start = self.start.astimezone(zoneinfo.ZoneInfo(self.start_zone))
        object.__setattr__(self, "recurrence", explicit_rule(rule, local_start))
        if self.original_start is not None and (self.recurrence or self.changed_occurrences):
            raise invalid("A changed occurrence is not a series of its own.")

    def _check_midnights(self) -> None:
        for name, value, zone in (("start", self.start, self.start_zone), ("end", self.end, self.end_zone)):
            if value.astimezone(zoneinfo.ZoneInfo(zone)).time() != dt.time(0):
                raise invalid(f"An all-day event's {name} is midnight in its time zone {zone}.")

    @property
    def start_date(self) -> dt.date:
        """An all-day event's first day."""
        return self.start.astimezone(zoneinfo.ZoneInfo(self.start_zone)).date()

    @property
    def end_date(self) -> dt.date:
        """An all-day event's day after the last (exclusive)."""
        return self.end.astimezone(zoneinfo.ZoneInfo(self.end_zone)).date()


@dataclass(frozen=True)
class Todo:
    """A task. ``completed_on`` is when it was completed (the CRM sets it with the status)."""

    uid: str
    subject: str = ""
    body: str = ""
    start: dt.datetime | None = None
    due: dt.datetime | None = None
    status: TodoStatus = TodoStatus.NOT_STARTED
    percent_complete: int = 0
    priority: Priority = Priority.NORMAL
    completed_on: dt.datetime | None = None
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.uid:
            raise invalid("A task needs a UID.")
        check_aware("start", self.start)
        check_aware("due date", self.due)
        check_aware("completion time", self.completed_on)
        if not 0 <= self.percent_complete <= 100:
            raise invalid(f"A task is 0 to 100 % complete, not {self.percent_complete}.")


@dataclass(frozen=True)
class Address:
    street: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""


@dataclass(frozen=True)
class Card:
    """A contact. ``emails``: at most three, the first the primary one. The business
    address is the CRM's mailing address."""

    uid: str
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    nickname: str = ""
    company: str = ""
    department: str = ""
    job_title: str = ""
    emails: tuple[str, ...] = ()
    business_phone: str = ""
    mobile_phone: str = ""
    home_phone: str = ""
    business_fax: str = ""
    business_address: Address | None = None
    home_address: Address | None = None
    other_address: Address | None = None
    birthday: dt.date | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.uid:
            raise invalid("A contact needs a UID.")
        if len(self.emails) > MAX_EMAILS:
            raise invalid(f"A contact has at most {MAX_EMAILS} email addresses, not {len(self.emails)}.")
