"""Appointments, tasks and contacts as plain data, to and from iCalendar and vCard:
round trips of every field, samples as Outlook, Google and Apple write them, bad
input, and the same items through the test harness's real Radicale."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import caldav
import httpx
import icalendar
import pytest
from dateutil.rrule import rrulestr

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
    card_to_vcard,
    event_to_ical,
    ical_to_event,
    ical_to_todo,
    todo_to_ical,
    vcard_to_card,
)
from sync.errors import MessageError

SAMPLES = Path(__file__).parent / "samples"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


def weekly_series(uid: str = "series-1@serversync.test") -> Event:
    """Mondays 09:00 Berlin from 2030-03-18 (DST begins 2030-03-31): the 25th moved to
    Tuesday 14:00 with its own subject, the 1st of April deleted."""
    moved = Event(
        uid=uid,
        start=at(BERLIN, 2030, 3, 26, 14),
        end=at(BERLIN, 2030, 3, 26, 15),
        start_zone="Europe/Berlin",
        end_zone="Europe/Berlin",
        subject="Pipeline review (moved)",
        location="Room 2",
        organizer=Party("grace@contoso.test", "Grace Hopper"),
        attendees=(Attendee("ada@contoso.test", "Ada Lovelace"),),
        original_start=at(BERLIN, 2030, 3, 25, 9),
    )
    return Event(
        uid=uid,
        start=at(BERLIN, 2030, 3, 18, 9),
        end=at(BERLIN, 2030, 3, 18, 10),
        start_zone="Europe/Berlin",
        end_zone="Europe/Berlin",
        subject="Pipeline review",
        body="Agenda:\n1. Pipeline, forecast; renewals\n2. Anything else",
        location="Room 1",
        organizer=Party("grace@contoso.test", "Grace Hopper"),
        attendees=(
            Attendee("ada@contoso.test", "Ada Lovelace"),
            Attendee("alan@fabrikam.test", "Alan Turing", optional=True),
            Attendee("bob@fabrikam.test"),
        ),
        show_as=ShowAs.OUT_OF_OFFICE,
        reminder_minutes=15,
        categories=("Tracked to CRM", "Blue, dark; bold"),
        status=EventStatus.TENTATIVE,
        recurrence="FREQ=WEEKLY;BYDAY=MO;COUNT=6",
        deleted_occurrences=(at(BERLIN, 2030, 4, 1, 9),),
        changed_occurrences=(moved,),
    )


def occurrences(event: Event) -> list[datetime]:
    """The series' starts as dateutil expands them in the series' own zone (as the CRM does)."""
    local_start = event.start.astimezone(ZoneInfo(event.start_zone))
    starts = rrulestr(event.recurrence, dtstart=local_start)
    return [s for s in starts if s not in event.deleted_occurrences]


def full_card() -> Card:
    return Card(
        uid="contact-1@serversync.test",
        first_name="Ada",
        middle_name="Augusta",
        last_name="Lovelace",
        nickname="Countess",
        company="Analytical Engines Ltd",
        department="Research; Development",
        job_title="Mathematician",
        emails=("ada@engines.test", "ada@home.test", "a.lovelace@post.test"),
        business_phone="+44 20 7946 0018",
        mobile_phone="+44 7700 900123",
        home_phone="+44 1483 000 111",
        business_fax="+44 20 7946 0099",
        business_address=Address("12 St James's Square\nFloor 2", "London", "", "SW1Y 4JH", "United Kingdom"),
        home_address=Address("Ockham Park", "Ockham", "Surrey", "GU23 6NP", "United Kingdom"),
        other_address=Address("1 Rue de la Paix", "Paris", "Île-de-France", "75002", "France"),
        birthday=date(1815, 12, 10),
        notes="Met at the soirée, 1833.\nFollow up: the Engine; notes, tables.",
    )


# -- events -----------------------------------------------------------------------------------


def test_weekly_series_with_a_moved_and_a_deleted_occurrence_round_trips():
    series = weekly_series()

    data = event_to_ical(series)
    back = ical_to_event(data)

    assert back == series
    calendar = icalendar.Calendar.from_ical(data)
    assert [str(z["TZID"]) for z in calendar.walk("VTIMEZONE")] == ["Europe/Berlin"]
    assert b"RRULE:FREQ=WEEKLY;COUNT=6;BYDAY=MO\r\n" in data
    assert [str(v["RECURRENCE-ID"].to_ical().decode()) for v in calendar.walk("VEVENT")[1:]] == [
        "20300325T090000"
    ]


def test_series_across_a_dst_change_keeps_nine_oclock_local():
    back = ical_to_event(event_to_ical(weekly_series()))

    starts = occurrences(back)

    assert [s.astimezone(BERLIN).hour for s in starts] == [9] * 5
    assert [s.astimezone(UTC).hour for s in starts] == [8, 8, 7, 7, 7]  # summer time from 31 March
    assert at(BERLIN, 2030, 4, 1, 9) not in starts
    assert back.changed_occurrences[0].original_start in starts


def all_day_event() -> Event:
    return Event(
        uid="holiday@serversync.test",
        start=at(NEW_YORK, 2030, 7, 4, 0),
        end=at(NEW_YORK, 2030, 7, 6, 0),
        start_zone="America/New_York",
        end_zone="America/New_York",
        all_day=True,
        subject="Office closed",
        show_as=ShowAs.FREE,
        recurrence="FREQ=YEARLY;UNTIL=20350704",
        deleted_occurrences=(at(NEW_YORK, 2031, 7, 4, 0),),
    )


def test_all_day_event_round_trips_as_dates():
    event = all_day_event()

    data = event_to_ical(event)
    back = ical_to_event(data, floating_zone="America/New_York")

    assert back == event
    assert (back.start_date, back.end_date) == (date(2030, 7, 4), date(2030, 7, 6))
    assert b"DTSTART;VALUE=DATE:20300704" in data
    assert b"EXDATE;VALUE=DATE:20310704" in data
    assert b"TRANSP:TRANSPARENT" in data
    assert b"VTIMEZONE" not in data  # dates carry no zone


def two_zone_meeting() -> Event:
    return Event(
        uid="flight@serversync.test",
        start=at(BERLIN, 2030, 10, 27, 1, 30),  # the night Berlin's clocks go back
        end=at(NEW_YORK, 2030, 10, 27, 0, 15),
        start_zone="Europe/Berlin",
        end_zone="America/New_York",
        subject="Flight to New York",
        organizer=Party("ada@contoso.test"),
        attendees=(Attendee("bob@fabrikam.test", 'Bob, the "Builder"'), Attendee("r@x.test", optional=True)),
        show_as=ShowAs.WORKING_ELSEWHERE,
        reminder_minutes=0,
        status=EventStatus.CANCELLED,
    )


def test_a_meeting_in_two_zones_with_attendees_round_trips():
    event = two_zone_meeting()

    data = event_to_ical(event)

    assert ical_to_event(data) == event
    assert sorted(str(z["TZID"]) for z in icalendar.Calendar.from_ical(data).walk("VTIMEZONE")) == [
        "America/New_York",
        "Europe/Berlin",
    ]


def test_the_same_rule_in_another_order_or_case_is_the_same_event():
    """Radicale stores a rule with its parts reordered; the CRM keeps them as typed."""
    series = weekly_series()

    assert dataclasses.replace(series, recurrence="count=6;byday=MO;FREQ=weekly") == series
    assert series.recurrence == "FREQ=WEEKLY;COUNT=6;BYDAY=MO"
    with pytest.raises(MessageError, match="has no FREQ"):
        dataclasses.replace(series, recurrence="BYDAY=MO")
    with pytest.raises(MessageError, match="not an RRULE value"):
        dataclasses.replace(series, recurrence="FREQ=SOMETIMES")


def test_every_show_as_survives_the_round_trip():
    base = weekly_series()
    for show_as in ShowAs:
        event = dataclasses.replace(base, show_as=show_as, changed_occurrences=())
        assert ical_to_event(event_to_ical(event)).show_as == show_as


def test_a_client_that_only_knows_transp_decides_free_or_busy():
    """Apple Calendar flips TRANSP and leaves Outlook's property as it was."""
    data = event_to_ical(dataclasses.replace(weekly_series(), show_as=ShowAs.OUT_OF_OFFICE))

    made_free = data.replace(b"TRANSP:OPAQUE", b"TRANSP:TRANSPARENT")
    made_busy = event_to_ical(dataclasses.replace(weekly_series(), show_as=ShowAs.FREE)).replace(
        b"TRANSP:TRANSPARENT", b"TRANSP:OPAQUE"
    )

    assert ical_to_event(made_free).show_as == ShowAs.FREE
    assert ical_to_event(made_busy).show_as == ShowAs.BUSY


# -- samples as servers write them -------------------------------------------------------------


def test_outlook_meeting_with_a_windows_tzid_and_microsoft_properties():
    event = ical_to_event((SAMPLES / "outlook_meeting.ics").read_bytes())

    assert event.uid.startswith("040000008200E00074C5B7101A82E008")
    assert (event.start_zone, event.end_zone) == ("Europe/Berlin", "Europe/Berlin")
    assert event.start == at(BERLIN, 2030, 3, 5, 9, 30)
    assert event.subject == "Sales pipeline review"
    assert event.body == "Agenda:\n1. Pipeline, forecast\n2. Renewals\n"
    assert event.organizer == Party("grace@contoso.test", "Grace Hopper")
    assert event.attendees == (
        Attendee("ada@contoso.test", "Ada Lovelace"),
        Attendee("alan@fabrikam.test", "alan@fabrikam.test", optional=True),
    )
    assert event.show_as == ShowAs.TENTATIVE
    assert event.reminder_minutes == 15
    assert event.recurrence == "FREQ=WEEKLY;COUNT=10;BYDAY=TU"
    assert event.deleted_occurrences == (at(BERLIN, 2030, 3, 19, 9, 30),)
    [moved] = event.changed_occurrences
    assert moved.original_start == at(BERLIN, 2030, 3, 12, 9, 30)
    assert moved.start == at(BERLIN, 2030, 3, 13, 14)
    assert moved.subject == "Sales pipeline review (moved)"
    # After DST (31 March) the series is still at 09:30 Berlin.
    assert {s.astimezone(BERLIN).time().isoformat() for s in occurrences(event)} == {"09:30:00"}


def test_outlook_meeting_written_again_keeps_everything():
    event = ical_to_event((SAMPLES / "outlook_meeting.ics").read_bytes())

    assert ical_to_event(event_to_ical(event)) == event


def test_google_event_in_utc():
    event = ical_to_event((SAMPLES / "google_event.ics").read_bytes())

    assert event.uid == "7kukuqrfedlm2f9t0vl1sn4o8g@google.com"
    assert (event.start, event.end) == (at(UTC, 2030, 7, 4, 13), at(UTC, 2030, 7, 4, 14))
    assert (event.start_zone, event.end_zone) == ("UTC", "UTC")
    assert event.subject == "Check-in with Fabrikam"
    assert event.location == ""
    assert event.organizer == Party("ada@contoso.test", "Ada Lovelace")
    assert [a.address for a in event.attendees] == ["ada@contoso.test", "bob@fabrikam.test"]
    assert event.reminder_minutes == 30
    assert event.status == EventStatus.CONFIRMED
    assert event.recurrence == ""


def calendar_with(tzid: str, vtimezone: bool = True) -> bytes:
    zone = (
        f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\n"
        "BEGIN:STANDARD\r\nDTSTART:16011104T020000\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\n"
        "RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nDTSTART:16010311T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\n"
        "RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
    )
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n"
        + (zone if vtimezone else "")
        + "BEGIN:VEVENT\r\nUID:tz@x.test\r\nDTSTAMP:20300101T000000Z\r\n"
        f'DTSTART;TZID="{tzid}":20300704T090000\r\nDTEND;TZID="{tzid}":20300704T100000\r\n'
        "X-UNKNOWN-SERVER-THING;FOO=bar:whatever\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("tzid", "vtimezone"),
    [
        ("Eastern Standard Time", True),  # Windows, as Exchange writes it
        ("Eastern Standard Time", False),
        ("America/New_York", False),
        ("/mozilla.org/20050126_1/America/New_York", True),  # vendor-prefixed, Thunderbird
    ],
)
def test_time_zone_names_servers_use_become_iana_zones(tzid, vtimezone):
    event = ical_to_event(calendar_with(tzid, vtimezone))

    assert event.start_zone == "America/New_York"
    assert event.start == at(NEW_YORK, 2030, 7, 4, 9)


def test_a_custom_vtimezone_becomes_the_iana_zone_that_keeps_its_offsets():
    """Outlook's "Customized Time Zone": no zone is named, the VTIMEZONE's rules are (here
    US Eastern's), and a series must still repeat on the wall clock."""
    event = ical_to_event(calendar_with("Customized Time Zone"))

    assert event.start_zone == "America/New_York"  # CLDR's for "Eastern Standard Time"
    assert event.start == at(NEW_YORK, 2030, 7, 4, 9)
    assert at(ZoneInfo(event.start_zone), 2030, 1, 4, 9).utcoffset() == timedelta(hours=-5)
    assert at(ZoneInfo(event.start_zone), 2030, 7, 4, 9).utcoffset() == timedelta(hours=-4)


def test_a_custom_vtimezone_no_iana_zone_matches_keeps_the_instant_in_utc():
    data = calendar_with("Odd Zone").replace(b"BYDAY=1SU;BYMONTH=11", b"BYDAY=1SU;BYMONTH=9")

    event = ical_to_event(data)

    assert (event.start_zone, event.start) == ("UTC", at(UTC, 2030, 7, 4, 13))


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"this is not a calendar", "not valid iCalendar"),
        (calendar_with("Mars/Olympus_Mons", vtimezone=False), "neither an IANA nor a Windows zone"),
        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "0 events without RECURRENCE-ID"),
        (calendar_with("America/New_York").replace(b"DTSTART", b"X-DTSTART"), "no UID or no DTSTART"),
        (calendar_with("America/New_York").replace(b"T100000", b"T080000"), "ends before it starts"),
        (event_to_ical(weekly_series()).replace(b"RRULE:", b"RDATE:20300402T090000Z\r\nRRULE:"), "RDATE"),
        (event_to_ical(weekly_series()).replace(b"RRULE:FREQ=WEEKLY", b"RRULE:FREQ=SOMETIMES"), "RRULE|FREQ"),
    ],
)
def test_bad_calendar_data_is_one_bad_item(data, complaint):
    with pytest.raises(MessageError, match=complaint):
        ical_to_event(data)


def test_writing_an_event_without_a_zone_is_refused():
    naive = at(UTC, 2030, 1, 1, 9).replace(tzinfo=None)
    with pytest.raises(MessageError, match="no time zone"):
        Event(uid="x", start=naive, end=naive)
    with pytest.raises(MessageError, match="not an IANA zone"):
        Event(uid="x", start=at(UTC, 2030, 1, 1, 9), end=at(UTC, 2030, 1, 1, 10), start_zone="W. Europe")


# -- tasks ------------------------------------------------------------------------------------


def completed_task() -> Todo:
    return Todo(
        uid="task-1@serversync.test",
        subject="Send the quote",
        body="Prices as agreed; valid 30 days.\nCc the account manager.",
        start=at(BERLIN, 2030, 3, 4, 9),
        due=at(BERLIN, 2030, 3, 8, 17),
        status=TodoStatus.COMPLETED,
        percent_complete=100,
        priority=Priority.HIGH,
        completed_on=at(UTC, 2030, 3, 7, 15, 42, 10),
        categories=("Tracked to CRM",),
    )


def test_completed_task_round_trips():
    task = completed_task()

    data = todo_to_ical(task)

    assert ical_to_todo(data) == task
    assert b"STATUS:COMPLETED" in data
    assert b"COMPLETED:20300307T154210Z" in data


@pytest.mark.parametrize("status", list(TodoStatus))
def test_every_task_status_and_priority_round_trips(status):
    for priority in Priority:
        task = Todo(uid="t@x.test", subject="s", status=status, priority=priority, percent_complete=40)
        assert ical_to_todo(todo_to_ical(task)) == task


def test_a_client_changing_status_wins_over_the_crms_own_word():
    data = todo_to_ical(Todo(uid="t@x.test", status=TodoStatus.WAITING))

    assert ical_to_todo(data).status == TodoStatus.WAITING
    assert (
        ical_to_todo(data.replace(b"STATUS:IN-PROCESS", b"STATUS:COMPLETED")).status == TodoStatus.COMPLETED
    )


def test_apple_reminder_with_a_due_date_and_floating_start():
    data = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Apple Inc.//iOS 17.4//EN\r\n"
        "BEGIN:VTODO\r\nUID:3E4F@apple\r\nDTSTAMP:20300301T080000Z\r\nSUMMARY:Call Ada\r\n"
        "DTSTART:20300304T083000\r\nDUE;VALUE=DATE:20300305\r\nPRIORITY:9\r\n"
        "X-APPLE-SORT-ORDER:1\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )

    task = ical_to_todo(data, floating_zone="Europe/Berlin")

    assert task.start == at(BERLIN, 2030, 3, 4, 8, 30)
    assert task.due == at(BERLIN, 2030, 3, 5, 0)
    assert (task.priority, task.status, task.percent_complete) == (Priority.LOW, TodoStatus.NOT_STARTED, 0)


def test_bad_task_data_is_one_bad_item():
    data = todo_to_ical(Todo(uid="t@x.test")).replace(b"PERCENT-COMPLETE:0", b"PERCENT-COMPLETE:150")
    with pytest.raises(MessageError, match="0 to 100 %"):
        ical_to_todo(data)
    with pytest.raises(MessageError, match="0 VTODOs"):
        ical_to_todo(event_to_ical(weekly_series()))


# -- contacts ---------------------------------------------------------------------------------


def test_contact_with_everything_round_trips():
    card = full_card()

    data = card_to_vcard(card)

    assert vcard_to_card(data) == card
    assert data.startswith(b"BEGIN:VCARD\r\nVERSION:3.0\r\n")
    assert b"FN:Ada Augusta Lovelace\r\n" in data


def test_a_contact_with_only_a_company_still_has_a_display_name():
    card = Card(uid="c@x.test", company="Contoso")

    data = card_to_vcard(card)

    assert b"FN:Contoso\r\n" in data
    assert vcard_to_card(data) == card


def test_apple_vcard_3_with_grouped_labels():
    card = vcard_to_card((SAMPLES / "apple_contact.vcf").read_bytes())

    assert card == Card(
        uid="A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF",
        first_name="Ada",
        middle_name="Augusta",
        last_name="Lovelace",
        nickname="Ada",
        company="Analytical Engines Ltd",
        department="Research",
        job_title="Mathematician",
        emails=("ada@engines.test", "ada@home.test"),
        business_phone="+44 20 7946 0018",
        mobile_phone="+44 7700 900123",
        business_fax="+44 20 7946 0099",  # item2.X-ABLabel:_$!<WorkFAX>!$_
        business_address=Address("12 St James's Square", "London", "", "SW1Y 4JH", "United Kingdom"),
        other_address=Address("Ockham Park", "Ockham", "Surrey", "GU23 6NP", "United Kingdom"),
        birthday=date(1815, 12, 10),
        notes="Met at the Babbage soirée.\nFollow up on the Engine.",
    )


def test_vcard_4_with_quoted_types_tel_uris_and_a_birthday_without_year():
    data = (
        "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\r\n"
        "FN:Alan Turing\r\nN:Turing;Alan;Mathison;;\r\n"
        'TEL;VALUE=uri;TYPE="work,voice";PREF=1:tel:+44-161-555-0100\r\n'
        "TEL;VALUE=uri;TYPE=cell:tel:+44-7700-900456\r\nTEL;TYPE=home:+44 161 555 0199\r\n"
        "EMAIL;TYPE=work:alan@bletchley.test\r\nEMAIL;PREF=1:alan@home.test\r\n"
        "EMAIL:a1@x.test\r\nEMAIL:a2@x.test\r\n"
        "ADR;TYPE=home:;;43 Adlington Road;Wilmslow;Cheshire;SK9 2BJ;UK\r\n"
        "BDAY:--0623\r\nKIND:individual\r\nEND:VCARD\r\n"
    )

    card = vcard_to_card(data)

    assert (card.first_name, card.middle_name, card.last_name) == ("Alan", "Mathison", "Turing")
    assert (card.business_phone, card.mobile_phone, card.home_phone) == (
        "+44-161-555-0100",
        "+44-7700-900456",
        "+44 161 555 0199",
    )
    assert card.emails == ("alan@bletchley.test", "alan@home.test", "a1@x.test")  # the fourth has no room
    assert card.home_address == Address("43 Adlington Road", "Wilmslow", "Cheshire", "SK9 2BJ", "UK")
    assert card.birthday == date(1604, 6, 23)  # Apple's year for "no year"


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ("not a vcard at all", "not a valid vCard"),
        ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "not a VCARD"),
        ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nEND:VCARD\r\n", "needs a UID"),
        ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u\r\nFN:x\r\nBDAY:someday\r\nEND:VCARD\r\n", "BDAY line"),
    ],
)
def test_bad_vcard_data_is_one_bad_item(data, complaint):
    with pytest.raises(MessageError, match=complaint):
        vcard_to_card(data)


# -- through the real Radicale -----------------------------------------------------------------


def dav_calendar(radicale, dav_user) -> caldav.DAVClient:
    # enable_rfc6764=False: the full calendar URL is given; no DNS look-up for 127.0.0.1.
    return caldav.DAVClient(
        url=dav_user.calendar_url,
        username=dav_user.name,
        password=dav_user.password,
        ssl_verify_cert=str(radicale.ca_pem_path),
        enable_rfc6764=False,
    )


@pytest.mark.slow
def test_series_event_and_task_come_back_from_radicale_as_they_went_in(radicale, dav_user):
    series = weekly_series(f"{uuid.uuid4()}@serversync.test")
    task = completed_task()

    with dav_calendar(radicale, dav_user) as client:
        calendar = client.calendar(url=dav_user.calendar_url)
        calendar.add_event(event_to_ical(series))
        calendar.add_todo(todo_to_ical(task))
        stored_event = calendar.event_by_uid(series.uid).data
        stored_task = calendar.todo_by_uid(task.uid).data
        # Radicale expands the series itself, from the VTIMEZONE written with it.
        expanded = calendar.search(
            event=True, start=at(UTC, 2030, 3, 1), end=at(UTC, 2030, 5, 1), expand=True
        )

    assert ical_to_event(stored_event) == series
    assert ical_to_todo(stored_task) == task
    server_starts = sorted(o.icalendar_component.decoded("dtstart") for o in expanded)
    assert server_starts == sorted(
        [s for s in occurrences(series) if s != at(BERLIN, 2030, 3, 25, 9)] + [at(BERLIN, 2030, 3, 26, 14)]
    )
    assert {s.astimezone(BERLIN).hour for s in server_starts} == {9, 14}


@pytest.mark.slow
def test_all_day_and_two_zone_events_come_back_from_radicale_as_they_went_in(radicale, dav_user):
    events = [all_day_event(), two_zone_meeting()]

    with dav_calendar(radicale, dav_user) as client:
        calendar = client.calendar(url=dav_user.calendar_url)
        for event in events:
            calendar.add_event(event_to_ical(event))
        stored = [calendar.event_by_uid(event.uid).data for event in events]

    assert [ical_to_event(data, floating_zone="America/New_York") for data in stored] == events


@pytest.mark.slow
def test_contact_comes_back_from_radicale_as_it_went_in(radicale, dav_user):
    card = full_card()
    url = f"{dav_user.address_book_url}{uuid.uuid4()}.vcf"

    with httpx.Client(verify=radicale.ssl_context(), auth=(dav_user.name, dav_user.password)) as client:
        created = client.put(
            url,
            content=card_to_vcard(card),
            headers={"Content-Type": "text/vcard; charset=utf-8", "If-None-Match": "*"},
        )
        got = client.get(url)

    assert created.status_code == httpx.codes.CREATED, created.text
    assert vcard_to_card(got.content) == card
