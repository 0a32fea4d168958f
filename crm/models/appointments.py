"""Appointments: single, recurring (a series master with its rule) and their exceptions, with parties."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from crm import recurrence
from crm.fields import DateTimeListField
from crm.models.base import TimestampedModel, at_most_one
from crm.models.people import CrmUser
from crm.models.records import Account, Contact, Lead
from crm.time_zones import validate_time_zone, zone

REGARDING_FIELDS = ["regarding_account", "regarding_contact", "regarding_lead"]
CATEGORY_MAX_LENGTH = 255


def clean_categories(categories: list[Any]) -> list[str]:
    """Names, stripped, none blank or too long, each once: Outlook compares them without case."""
    if not all(isinstance(c, str) for c in categories):
        raise ValidationError("Categories are names (text).")
    cleaned: list[str] = []
    for name in (c.strip() for c in categories):
        if len(name) > CATEGORY_MAX_LENGTH:
            raise ValidationError(f"A category name has at most {CATEGORY_MAX_LENGTH} characters.")
        if not name:
            raise ValidationError("A category needs a name.")
        if name.casefold() in {c.casefold() for c in cleaned}:
            raise ValidationError(f"The category {name!r} is given twice.")
        cleaned.append(name)
    return cleaned


def clean_regarding(record: Any) -> None:
    """An activity is regarding one record at most (accounts, contacts, leads)."""
    given = [name for name in REGARDING_FIELDS if getattr(record, f"{name}_id")]
    if len(given) > 1:
        raise ValidationError({given[1]: ["An activity is regarding one record at most."]})


class AppointmentQuerySet(models.QuerySet["Appointment"]):
    def visible_to(self, crm_user: CrmUser) -> AppointmentQuerySet:
        return self.filter(owner=crm_user)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a series in a window: the master's, or the exception that replaces it."""

    appointment: Appointment
    start: dt.datetime
    end: dt.datetime
    original_start: dt.datetime

    @property
    def is_exception(self) -> bool:
        return self.appointment.series_master_id is not None


class Appointment(TimestampedModel):
    """A meeting or appointment. A series is a master with a recurrence rule; a changed
    occurrence is its own row pointing at the master (with the start it replaces), a
    deleted one is a start recorded in the master's ``deleted_occurrences`` (EXDATE)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETED = "completed", "Completed"
        CANCELED = "canceled", "Canceled"

    class ShowAs(models.TextChoices):
        # The free/busy states Graph and EWS share.
        FREE = "free", "Free"
        TENTATIVE = "tentative", "Tentative"
        BUSY = "busy", "Busy"
        OUT_OF_OFFICE = "out_of_office", "Out of office"
        WORKING_ELSEWHERE = "working_elsewhere", "Working elsewhere"

    owner = models.ForeignKey(
        CrmUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="owned_appointments"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    subject = models.CharField(max_length=400, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(
        blank=True, help_text="As written or received; sanitized before any page shows it."
    )
    location = models.CharField(max_length=500, blank=True)

    # Aware instants; for an all-day appointment, midnight of its dates in its time zones.
    start = models.DateTimeField(blank=True, help_text="Set from start_date for an all-day appointment.")
    end = models.DateTimeField(blank=True, help_text="Set from end_date for an all-day appointment.")
    start_time_zone = models.CharField(
        max_length=64, validators=[validate_time_zone], help_text="The IANA time zone the start was given in."
    )
    end_time_zone = models.CharField(
        max_length=64, validators=[validate_time_zone], help_text="The IANA time zone the end was given in."
    )
    all_day = models.BooleanField("all day", default=False)
    start_date = models.DateField(null=True, blank=True, help_text="All-day appointments: the first day.")
    end_date = models.DateField(
        null=True,
        blank=True,
        help_text="All-day appointments: the day after the last (exclusive, as iCalendar).",
    )

    show_as = models.CharField(max_length=20, choices=ShowAs.choices, default=ShowAs.BUSY)
    reminder_minutes_before = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: no reminder."
    )
    # Strings of at most CATEGORY_MAX_LENGTH (clean_categories); JSON, not an ArrayField, so
    # that SQLite (``make run``) holds it too.
    categories = models.JSONField(default=list, blank=True)

    regarding_account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="appointments"
    )
    regarding_contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="appointments"
    )
    regarding_lead = models.ForeignKey(
        Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="appointments"
    )

    recurrence_rule = models.CharField(
        max_length=500,
        blank=True,
        help_text="A series master's RFC 5545 RRULE value, e.g. FREQ=WEEKLY;BYDAY=TU;COUNT=10 "
        "(UNTIL in UTC, or a date for all-day series). Empty: not a series.",
    )
    deleted_occurrences = DateTimeListField(
        default=list,
        blank=True,
        help_text="A series master's deleted occurrences (EXDATE): their original starts.",
    )
    series_master = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="exceptions"
    )
    original_start = models.DateTimeField(
        null=True, blank=True, help_text="An exception's: the start of the occurrence it replaces."
    )

    objects = AppointmentQuerySet.as_manager()

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            at_most_one(REGARDING_FIELDS, name="appointment_regarding_at_most_one"),
            models.CheckConstraint(condition=Q(end__gte=F("start")), name="appointment_ends_after_start"),
            models.CheckConstraint(
                condition=Q(series_master__isnull=True, original_start__isnull=True)
                | Q(series_master__isnull=False, original_start__isnull=False, recurrence_rule=""),
                name="appointment_exception_shape",
            ),
            models.UniqueConstraint(
                fields=["series_master", "original_start"],
                condition=Q(series_master__isnull=False),
                name="appointment_exception_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "start"], name="appointment_owner_start"),
            models.Index(fields=["status", "end"], name="appointment_status_end"),
        ]

    def __str__(self) -> str:
        return self.subject or f"(no subject) #{self.pk}"

    @property
    def regarding(self) -> Account | Contact | Lead | None:
        return self.regarding_account or self.regarding_contact or self.regarding_lead

    @property
    def is_series_master(self) -> bool:
        return bool(self.recurrence_rule)

    # --- rules ---------------------------------------------------------------------------

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        for check in (self._clean_times, self._clean_recurrence, self._clean_exception):
            try:
                check()
            except ValidationError as error:
                for field, messages in error.message_dict.items():
                    errors.setdefault(field, []).extend(messages)
        try:
            if not isinstance(self.categories, list):
                raise ValidationError("Categories are a list of names.")
            self.categories = clean_categories(self.categories)
        except ValidationError as error:
            errors.setdefault("categories", []).extend(error.messages)
        try:
            clean_regarding(self)
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                errors.setdefault(field, []).extend(messages)
        if errors:
            raise ValidationError(errors)

    def _clean_times(self) -> None:
        try:
            start_zone, end_zone = zone(self.start_time_zone), zone(self.end_time_zone)
        except ValidationError:
            return  # the field's own validator has said so
        if self.all_day:
            if self.start_date is None or self.end_date is None:
                raise ValidationError(
                    {"start_date": ["An all-day appointment needs its first and last day."]}
                )
            if self.end_date <= self.start_date:
                raise ValidationError(
                    {"end_date": ["The end date is the day after the last day: after the start date."]}
                )
            self.start = dt.datetime.combine(self.start_date, dt.time(), start_zone)
            self.end = dt.datetime.combine(self.end_date, dt.time(), end_zone)
            return
        self.start_date = self.end_date = None
        missing = {
            name: ["Give the start and the end."] for name in ("start", "end") if getattr(self, name) is None
        }
        if missing:
            raise ValidationError(missing)
        if self.end < self.start:
            raise ValidationError({"end": ["The end is before the start."]})

    def _clean_recurrence(self) -> None:
        self.recurrence_rule = recurrence.normalize_rule(self.recurrence_rule)
        if not self.recurrence_rule:
            if self.deleted_occurrences:
                raise ValidationError({"deleted_occurrences": ["Only a series has occurrences to delete."]})
            return
        if self.series_master_id is not None:
            raise ValidationError({"recurrence_rule": ["An exception of a series has no rule of its own."]})
        if self.start is None or not self._zones_valid():
            return
        try:
            rule = self.rule()
        except ValidationError as error:
            raise ValidationError({"recurrence_rule": error.messages}) from None
        strays = [start for start in self.deleted_occurrences if not self._is_occurrence(rule, start)]
        if strays:
            raise ValidationError(
                {"deleted_occurrences": [f"{strays[0].isoformat()} is not an occurrence of this series."]}
            )
        # A changed rule must keep the occurrences its exceptions replace (as Outlook does,
        # the caller deletes them first): an exception of no occurrence would replace nothing.
        orphans = (
            []
            if self.pk is None
            else [
                e
                for e in self.exceptions.all()
                if e.original_start and not self._is_occurrence(rule, e.original_start)
            ]
        )
        if orphans:
            raise ValidationError(
                {
                    "recurrence_rule": [
                        f"The series would lose the occurrence that {len(orphans)} changed occurrence(s) "
                        "replace; delete those first."
                    ]
                }
            )

    def _clean_exception(self) -> None:
        master = self.series_master
        if master is None:
            if self.original_start is not None:
                raise ValidationError(
                    {"original_start": ["Only an exception of a series replaces an occurrence."]}
                )
            return
        if master.series_master_id is not None or not master.recurrence_rule or master.pk == self.pk:
            raise ValidationError({"series_master": ["Choose the master appointment of a series."]})
        if self.original_start is None:
            raise ValidationError({"original_start": ["Give the start of the occurrence this one replaces."]})
        if not master._is_occurrence(master.rule(), self.original_start):
            raise ValidationError({"original_start": ["The series has no occurrence starting then."]})

    def _zones_valid(self) -> bool:
        try:
            zone(self.start_time_zone)
        except ValidationError:
            return False
        return True

    # --- the series ----------------------------------------------------------------------

    @property
    def series_zone(self) -> ZoneInfo:
        return zone(self.start_time_zone)

    def rule(self) -> rrule:
        """The master's rule, stepping the wall clock in the series' own time zone (all-day
        series: from the first day, as dates)."""
        return recurrence.parse_rule(self.recurrence_rule, self._rule_start())

    def _rule_start(self) -> dt.datetime:
        if self.all_day and self.start_date is not None:
            return dt.datetime.combine(self.start_date, dt.time())  # naive: a date, UNTIL may be a date
        return self.start.astimezone(self.series_zone)

    def _rule_time(self, value: dt.datetime) -> dt.datetime:
        """An aware instant as the rule counts: local wall time for an all-day series."""
        local = value.astimezone(self.series_zone)
        return local.replace(tzinfo=None) if self.all_day else local

    def _is_occurrence(self, rule: rrule, start: dt.datetime) -> bool:
        return recurrence.is_occurrence(rule, self._rule_time(start), self._rule_start())

    def occurrences(self, window_start: dt.datetime, window_end: dt.datetime) -> list[Occurrence]:
        """The occurrences overlapping ``[window_start, window_end)``, expanded in the series'
        own time zone, with deleted occurrences left out and changed ones replaced by their
        exceptions (also those moved into the window from outside it). A single appointment
        is its own only occurrence."""
        if not self.recurrence_rule:
            single = Occurrence(self, self.start, self.end, self.start)
            return [single] if _overlaps(single, window_start, window_end) else []
        rule, length = self.rule(), self.end - self.start
        exceptions = list(self.exceptions.all())
        replaced = recurrence.instants(
            [*self.deleted_occurrences, *(e.original_start for e in exceptions if e.original_start)]
        )
        found = [
            Occurrence(self, start, self._end_of(start, length), start)
            for start in self._starts_between(rule, window_start - length, window_end)
        ]
        found = [o for o in found if o.start.astimezone(dt.UTC) not in replaced]
        found += [
            Occurrence(e, e.start, e.end, e.original_start)
            for e in exceptions
            if e.original_start is not None
        ]
        return sorted(
            (o for o in found if _overlaps(o, window_start, window_end)),
            key=lambda o: (o.start, o.original_start),
        )

    def _end_of(self, start: dt.datetime, length: dt.timedelta) -> dt.datetime:
        if self.all_day and self.start_date is not None and self.end_date is not None:
            # Whole days on the wall clock: midnight to midnight, 23 hours or 25.
            return start + (self.end_date - self.start_date)
        # A length of time: an hour-long meeting lasts an hour even on the night the clocks change.
        return (start.astimezone(dt.UTC) + length).astimezone(start.tzinfo)

    def _starts_between(self, rule: rrule, after: dt.datetime, before: dt.datetime) -> list[dt.datetime]:
        starts = recurrence.starts_between(rule, self._rule_time(after), self._rule_time(before))
        if not self.all_day:
            return starts
        return [start.replace(tzinfo=self.series_zone) for start in starts]


def _overlaps(occurrence: Occurrence, window_start: dt.datetime, window_end: dt.datetime) -> bool:
    if occurrence.start == occurrence.end:  # a zero-length appointment is in the window it starts in
        return window_start <= occurrence.start < window_end
    return occurrence.start < window_end and occurrence.end > window_start


PARTY_RECORD_FIELDS = ["user", "contact", "account", "lead"]


class AppointmentParty(models.Model):
    """The organizer or an attendee of an appointment, resolved to a CRM record or left unresolved."""

    class Role(models.TextChoices):
        ORGANIZER = "organizer", "Organizer"
        REQUIRED = "required", "Required attendee"
        OPTIONAL = "optional", "Optional attendee"

    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="parties")
    role = models.CharField(max_length=10, choices=Role.choices)
    address = models.EmailField(max_length=320, blank=True)
    display_name = models.CharField(max_length=300, blank=True)
    user = models.ForeignKey(CrmUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    account = models.ForeignKey(Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    lead = models.ForeignKey(Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        verbose_name = "appointment party"
        verbose_name_plural = "appointment parties"
        ordering = ["id"]
        constraints = [
            at_most_one(PARTY_RECORD_FIELDS, name="appointment_party_one_record"),
            models.UniqueConstraint(
                fields=["appointment"], condition=Q(role="organizer"), name="appointment_one_organizer"
            ),
        ]
        indexes = [models.Index(fields=["address"], name="appointment_party_address")]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.address or self.record}"

    @property
    def record(self) -> CrmUser | Contact | Account | Lead | None:
        return self.user or self.contact or self.account or self.lead

    def clean(self) -> None:
        given = [name for name in PARTY_RECORD_FIELDS if getattr(self, f"{name}_id")]
        if len(given) > 1:
            raise ValidationError({given[1]: ["A party is one record at most."]})
        record = self.record
        if not self.address and record is not None:
            self.address = record.email
        if not self.address:
            raise ValidationError({"address": ["Give an email address, or a record that has one."]})
