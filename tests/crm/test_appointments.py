"""Appointments as a CRM user keeps them: times in their own zones, parties, and series
with changed and deleted occurrences expanded in the series' own time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from crm.models import Appointment, AppointmentParty
from crm.services import Party, appointment_save
from tests import factories

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC


def berlin(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN)


def weekly_series(**extra):
    """Tuesdays 09:00-10:00 Berlin from 10 March 2026 (before the DST change on 29 March)."""
    extra.setdefault("recurrence_rule", "FREQ=WEEKLY;BYDAY=TU;COUNT=6")
    return factories.appointment(start=berlin(2026, 3, 10, 9), end=berlin(2026, 3, 10, 10), **extra)


def errors_of(appointment: Appointment) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        appointment.full_clean()
    return raised.value.message_dict


# --- times and zones --------------------------------------------------------------------------


def test_start_and_end_keep_the_zones_they_were_given_in():
    flight = factories.appointment(
        subject="Flight to New York",
        start=berlin(2026, 6, 1, 10),
        start_time_zone="Europe/Berlin",
        end=dt.datetime(2026, 6, 1, 12, 30, tzinfo=NEW_YORK),
        end_time_zone="America/New_York",
    )

    flight.refresh_from_db()
    assert (flight.start_time_zone, flight.end_time_zone) == ("Europe/Berlin", "America/New_York")
    assert flight.start == dt.datetime(2026, 6, 1, 8, tzinfo=UTC)
    assert flight.end.astimezone(NEW_YORK).hour == 12


@pytest.mark.parametrize(
    "name", ["Mars/Olympus_Mons", "../../etc/passwd", "", "W. Europe Standard Time", "America", "x" * 5000]
)
def test_a_time_zone_must_be_an_iana_name(name):
    appointment = Appointment(
        subject="x", start=berlin(2026, 6, 1, 10), end=berlin(2026, 6, 1, 11), start_time_zone=name
    )
    appointment.end_time_zone = "Europe/Berlin"

    assert "start_time_zone" in errors_of(appointment)


def test_the_end_cannot_come_before_the_start():
    appointment = Appointment(
        start=berlin(2026, 6, 1, 10),
        end=berlin(2026, 6, 1, 9),
        start_time_zone="Europe/Berlin",
        end_time_zone="Europe/Berlin",
    )

    assert errors_of(appointment)["end"] == ["The end is before the start."]


def test_all_day_appointments_are_dates_with_midnights_in_their_zone():
    holiday = factories.appointment(
        subject="Company holiday",
        all_day=True,
        start_date=dt.date(2026, 10, 3),
        end_date=dt.date(2026, 10, 4),
    )

    holiday.refresh_from_db()
    assert holiday.start == berlin(2026, 10, 3, 0)
    assert holiday.end == berlin(2026, 10, 4, 0)


def test_an_all_day_appointment_needs_an_end_date_after_the_start_date():
    appointment = Appointment(
        all_day=True,
        start_date=dt.date(2026, 10, 3),
        end_date=dt.date(2026, 10, 3),
        start_time_zone="Europe/Berlin",
        end_time_zone="Europe/Berlin",
    )

    assert "end_date" in errors_of(appointment)


def test_categories_are_trimmed_and_each_given_once():
    appointment = factories.appointment(categories=[" Customer ", "Tracked to CRM"])
    assert appointment.categories == ["Customer", "Tracked to CRM"]

    appointment.categories = ["Customer", "customer"]
    assert "categories" in errors_of(appointment)


def test_an_appointment_is_regarding_one_record_at_most():
    appointment = factories.appointment()
    appointment.regarding_account = factories.account()
    appointment.regarding_contact = factories.contact()

    assert errors_of(appointment)["regarding_contact"] == ["An activity is regarding one record at most."]


# --- parties --------------------------------------------------------------------------------------


def test_the_organizer_and_attendees_are_resolved_records_or_addresses():
    alice = factories.crm_user("Alice Example")
    customer = factories.contact(first_name="Carl", last_name="Customer", email="carl@customer.test")
    appointment = factories.appointment(owner=alice)
    appointment_save(
        appointment,
        required_attendees=[Party(record=customer), Party(address="unknown@elsewhere.test")],
        optional_attendees=[Party(address="boss@example.test", display_name="The Boss")],
    )

    rows = {(p.role, p.address, p.record) for p in appointment.parties.all()}
    assert rows == {
        (AppointmentParty.Role.ORGANIZER, "alice@example.test", alice),
        (AppointmentParty.Role.REQUIRED, "carl@customer.test", customer),
        (AppointmentParty.Role.REQUIRED, "unknown@elsewhere.test", None),
        (AppointmentParty.Role.OPTIONAL, "boss@example.test", None),
    }


def test_an_appointment_needs_an_organizer():
    with pytest.raises(ValidationError) as raised:
        appointment_save(
            Appointment(
                subject="Nobody's",
                start=berlin(2026, 6, 1, 10),
                end=berlin(2026, 6, 1, 11),
                start_time_zone="Europe/Berlin",
                end_time_zone="Europe/Berlin",
            )
        )

    assert raised.value.message_dict == {"organizer": ["An appointment needs an organizer."]}
    assert not Appointment.objects.filter(subject="Nobody's").exists()


def test_replacing_the_attendees_keeps_the_organizer():
    appointment = factories.appointment(organizer=Party(address="org@example.test"))
    appointment_save(appointment, required_attendees=[Party(address="a@example.test")])
    appointment_save(appointment, required_attendees=[Party(address="b@example.test")])

    assert sorted(appointment.parties.values_list("role", "address")) == [
        ("organizer", "org@example.test"),
        ("required", "b@example.test"),
    ]


def test_a_party_without_an_address_names_a_record_that_has_one():
    nameless = factories.contact(email="")

    with pytest.raises(ValidationError) as raised:
        factories.appointment(organizer=Party(record=nameless))

    assert "organizer" in raised.value.message_dict


# --- series -----------------------------------------------------------------------------------------


def test_a_weekly_series_keeps_its_local_time_across_the_dst_change():
    series = weekly_series()

    found = series.occurrences(berlin(2026, 3, 1), berlin(2026, 5, 1))

    assert [o.start.astimezone(BERLIN).strftime("%m-%d %H:%M") for o in found] == [
        "03-10 09:00",
        "03-17 09:00",
        "03-24 09:00",
        "03-31 09:00",
        "04-07 09:00",
        "04-14 09:00",
    ]
    # In UTC the meeting moves an hour earlier once Berlin is on summer time.
    assert [o.start.astimezone(UTC).hour for o in found] == [8, 8, 8, 7, 7, 7]
    assert all(o.end.astimezone(UTC) - o.start.astimezone(UTC) == dt.timedelta(hours=1) for o in found)


def test_a_series_in_new_york_keeps_its_time_when_its_dst_changes_first():
    series = factories.appointment(
        start=dt.datetime(2026, 3, 2, 9, tzinfo=NEW_YORK),
        end=dt.datetime(2026, 3, 2, 9, 30, tzinfo=NEW_YORK),
        start_time_zone="America/New_York",
        recurrence_rule="FREQ=DAILY;INTERVAL=7;UNTIL=20260317T000000Z",
    )

    starts = [
        o.start.astimezone(NEW_YORK) for o in series.occurrences(berlin(2026, 3, 1), berlin(2026, 4, 1))
    ]

    assert [(s.day, s.hour) for s in starts] == [(2, 9), (9, 9), (16, 9)]


def test_a_monthly_series_on_the_second_tuesday():
    series = factories.appointment(
        start=berlin(2026, 1, 13, 14),
        end=berlin(2026, 1, 13, 15),
        recurrence_rule="RRULE:freq=monthly;byday=2TU;count=4",
    )

    assert series.recurrence_rule == "FREQ=MONTHLY;BYDAY=2TU;COUNT=4"
    found = series.occurrences(berlin(2026, 1, 1), berlin(2027, 1, 1))
    assert [o.start.date() for o in found] == [
        dt.date(2026, 1, 13),
        dt.date(2026, 2, 10),
        dt.date(2026, 3, 10),
        dt.date(2026, 4, 14),
    ]


def test_a_moved_and_a_deleted_occurrence_replace_the_series_ones():
    series = weekly_series()
    series.deleted_occurrences = [berlin(2026, 3, 24, 9)]
    appointment_save(series)
    moved = factories.appointment(
        series_master=series,
        original_start=berlin(2026, 3, 31, 9),
        start=berlin(2026, 4, 1, 15),
        end=berlin(2026, 4, 1, 16),
        subject="Moved to Wednesday",
    )

    found = series.occurrences(berlin(2026, 3, 1), berlin(2026, 5, 1))

    assert [(o.start.astimezone(BERLIN).strftime("%m-%d %H:%M"), o.is_exception) for o in found] == [
        ("03-10 09:00", False),
        ("03-17 09:00", False),
        ("04-01 15:00", True),
        ("04-07 09:00", False),
        ("04-14 09:00", False),
    ]
    assert found[2].appointment == moved
    assert found[2].original_start == berlin(2026, 3, 31, 9)
    # The exception takes the master's organizer.
    assert moved.parties.get().role == AppointmentParty.Role.ORGANIZER


def test_an_occurrence_moved_into_the_window_from_outside_it_is_found():
    series = weekly_series()
    factories.appointment(
        series_master=series,
        original_start=berlin(2026, 3, 10, 9),
        start=berlin(2026, 3, 12, 9),
        end=berlin(2026, 3, 12, 10),
    )

    found = series.occurrences(berlin(2026, 3, 11), berlin(2026, 3, 13))

    assert [o.start for o in found] == [berlin(2026, 3, 12, 9)]


def test_a_window_returns_only_the_occurrences_overlapping_it():
    series = weekly_series()

    found = series.occurrences(berlin(2026, 3, 17, 9, 30), berlin(2026, 3, 24, 9))

    assert [o.start for o in found] == [berlin(2026, 3, 17, 9)]


def test_an_all_day_series_with_a_date_until():
    series = factories.appointment(
        all_day=True,
        start_date=dt.date(2026, 3, 27),
        end_date=dt.date(2026, 3, 28),
        recurrence_rule="FREQ=DAILY;UNTIL=20260330",
    )

    found = series.occurrences(berlin(2026, 3, 1), berlin(2026, 4, 30))

    assert [(o.start, o.end.astimezone(UTC) - o.start.astimezone(UTC)) for o in found] == [
        (berlin(2026, 3, 27), dt.timedelta(days=1)),
        (berlin(2026, 3, 28), dt.timedelta(days=1)),
        # 29 March has 23 hours in Berlin: the day still runs midnight to midnight.
        (berlin(2026, 3, 29), dt.timedelta(hours=23)),
        (berlin(2026, 3, 30), dt.timedelta(days=1)),
    ]


def test_a_single_appointment_is_its_own_occurrence():
    single = factories.appointment(start=berlin(2026, 6, 1, 10), end=berlin(2026, 6, 1, 11))

    assert [o.appointment for o in single.occurrences(berlin(2026, 6, 1), berlin(2026, 6, 2))] == [single]
    assert single.occurrences(berlin(2026, 6, 2), berlin(2026, 6, 3)) == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=HOURLY", "FREQ=HOURLY"),
        ("FREQ=WEEKLY;BYHOUR=9", "Not supported in a recurrence rule: BYHOUR."),
        ("FREQ=WEEKLY;COUNT=3;UNTIL=20260501T000000Z", "either after COUNT"),
        ("FREQ=WEEKLY;UNTIL=20260501T000000", "UTC"),
        ("FREQ=MONTHLY;BYDAY=2XX", "BYDAY"),
        ("COUNT=3", "needs FREQ"),
        ("DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "one RRULE value"),
        ("FREQ=DAILY;FREQ=WEEKLY", "given twice"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL is a whole number, 1 or more."),
        ("FREQ=WEEKLY;COUNT=-2", "COUNT is a whole number, 1 or more."),
        ("FREQ=MONTHLY;BYMONTH=6;BYMONTHDAY=31", "has no occurrence"),
    ],
)
def test_a_rule_mail_servers_cannot_keep_is_refused(rule, message):
    series = Appointment(
        start=berlin(2026, 3, 10, 9),
        end=berlin(2026, 3, 10, 10),
        start_time_zone="Europe/Berlin",
        end_time_zone="Europe/Berlin",
        recurrence_rule=rule,
    )

    [error] = errors_of(series)["recurrence_rule"]
    assert message in error


@pytest.mark.parametrize(
    "start",
    [berlin(2026, 3, 24, 10), berlin(2026, 3, 3, 9), berlin(2026, 4, 21, 9), berlin(9000, 3, 24, 9)],
    ids=["not-at-its-time", "before-the-first", "after-the-count", "millennia-later"],
)
def test_a_deleted_occurrence_must_be_one_of_the_series(start):
    series = weekly_series()
    series.deleted_occurrences = [start]

    assert "deleted_occurrences" in errors_of(series)


def test_an_exception_replaces_an_occurrence_of_a_series_master():
    series = weekly_series()
    single = factories.appointment()
    exception = Appointment(
        series_master=series,
        original_start=berlin(2026, 3, 18, 9),
        start=berlin(2026, 3, 18, 9),
        end=berlin(2026, 3, 18, 10),
        start_time_zone="Europe/Berlin",
        end_time_zone="Europe/Berlin",
    )
    assert errors_of(exception)["original_start"] == ["The series has no occurrence starting then."]

    exception.series_master = single
    assert "series_master" in errors_of(exception)

    exception.series_master, exception.original_start = series, berlin(2026, 3, 17, 9)
    exception.recurrence_rule = "FREQ=DAILY"
    assert "recurrence_rule" in errors_of(exception)


def test_one_exception_per_occurrence():
    series = weekly_series()
    factories.appointment(
        series_master=series,
        original_start=berlin(2026, 3, 17, 9),
        start=berlin(2026, 3, 17, 11),
        end=berlin(2026, 3, 17, 12),
    )

    with pytest.raises(ValidationError) as raised:
        factories.appointment(
            series_master=series,
            original_start=berlin(2026, 3, 17, 9),
            start=berlin(2026, 3, 17, 13),
            end=berlin(2026, 3, 17, 14),
        )

    assert "__all__" in raised.value.message_dict


def test_deleting_a_master_deletes_its_exceptions():
    series = weekly_series()
    exception = factories.appointment(
        series_master=series,
        original_start=berlin(2026, 3, 17, 9),
        start=berlin(2026, 3, 17, 11),
        end=berlin(2026, 3, 17, 12),
    )

    series.delete()

    assert not Appointment.objects.filter(pk=exception.pk).exists()


def test_a_series_cannot_change_its_rule_away_from_its_exceptions():
    series = weekly_series()
    factories.appointment(
        series_master=series,
        original_start=berlin(2026, 3, 17, 9),
        start=berlin(2026, 3, 17, 11),
        end=berlin(2026, 3, 17, 12),
    )

    series.recurrence_rule = "FREQ=WEEKLY;BYDAY=WE;COUNT=6"
    assert "delete those first" in errors_of(series)["recurrence_rule"][0]

    series.recurrence_rule = "FREQ=WEEKLY;BYDAY=TU;COUNT=10"  # longer: the occurrence stays
    series.full_clean()
