"""Events to and from iCalendar: a VCALENDAR with the master VEVENT, its changed
occurrences (VEVENTs with the master's UID and a RECURRENCE-ID) and a VTIMEZONE for
every zone used. What servers add of their own (X- properties, SEQUENCE, ...) is
ignored on read."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import icalendar

from sync.connectors.items.data import Attendee, Event, EventStatus, Party, ShowAs, check_zone
from sync.connectors.items.ical_times import (
    bad_ical,
    local,
    new_calendar,
    parse_calendar,
    read_categories,
    read_time,
    read_times,
)
from sync.errors import MessageError

# Outlook's free/busy property, which Exchange and most clients write and read beside TRANSP.
BUSY_STATUS = "X-MICROSOFT-CDO-BUSYSTATUS"
BUSY_NAMES = {
    ShowAs.FREE: "FREE",
    ShowAs.TENTATIVE: "TENTATIVE",
    ShowAs.BUSY: "BUSY",
    ShowAs.OUT_OF_OFFICE: "OOF",
    ShowAs.WORKING_ELSEWHERE: "WORKINGELSEWHERE",
}
SHOW_AS = {name: show_as for show_as, name in BUSY_NAMES.items()}


# -- writing --------------------------------------------------------------------------------


def event_to_ical(event: Event) -> bytes:
    """A VCALENDAR holding ``event`` and its changed occurrences."""
    if event.original_start is not None:
        raise bad_ical("Write a changed occurrence with its series (Event.changed_occurrences).")
    calendar = new_calendar()
    stamp = dt.datetime.now(dt.UTC).replace(microsecond=0)
    calendar.add_component(_vevent(event, stamp, event))
    for occurrence in event.changed_occurrences:
        calendar.add_component(_vevent(occurrence, stamp, event))
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


def _vevent(event: Event, stamp: dt.datetime, master: Event) -> icalendar.Event:
    vevent = icalendar.Event()
    vevent.add("uid", master.uid)
    vevent.add("dtstamp", stamp)
    vevent.add("dtstart", local(event.start, event.start_zone, event.all_day))
    vevent.add("dtend", local(event.end, event.end_zone, event.all_day))
    for name, text in (("summary", event.subject), ("description", event.body), ("location", event.location)):
        if text:
            vevent.add(name, text)
    _add_people(vevent, event)
    vevent.add("transp", "TRANSPARENT" if event.show_as == ShowAs.FREE else "OPAQUE")
    vevent.add(BUSY_STATUS, BUSY_NAMES[event.show_as])
    vevent.add("status", event.status.value.upper())
    if event.categories:
        vevent.add("categories", list(event.categories))
    if event.reminder_minutes is not None:
        vevent.add_component(_alarm(event.reminder_minutes))
    _add_series(vevent, event, master)
    return vevent


def _add_people(vevent: icalendar.Event, event: Event) -> None:
    if event.organizer is not None:
        vevent.add("organizer", _address(event.organizer.address, event.organizer.name))
    for attendee in event.attendees:
        address = _address(attendee.address, attendee.name)
        address.params["ROLE"] = "OPT-PARTICIPANT" if attendee.optional else "REQ-PARTICIPANT"
        vevent.add("attendee", address)


def _address(address: str, name: str) -> icalendar.vCalAddress:
    value = icalendar.vCalAddress(f"mailto:{address}")
    if name:
        value.params["CN"] = name
    return value


def _alarm(minutes: int) -> icalendar.Alarm:
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", "Reminder")
    alarm.add("trigger", -dt.timedelta(minutes=minutes))
    return alarm


def _add_series(vevent: icalendar.Event, event: Event, master: Event) -> None:
    zone, all_day = master.start_zone, master.all_day
    if event.original_start is not None:
        vevent.add("recurrence-id", local(event.original_start, zone, all_day))
    if event.recurrence:
        vevent.add("rrule", icalendar.vRecur.from_ical(event.recurrence))
    if event.deleted_occurrences:
        vevent.add("exdate", [local(start, zone, all_day) for start in event.deleted_occurrences])


# -- reading --------------------------------------------------------------------------------


def ical_to_event(data: bytes | str, *, floating_zone: str = "UTC") -> Event:
    """The event (a series with its changed occurrences) of one VCALENDAR.

    All-day dates and floating times carry no zone: they are read in ``floating_zone``
    (the mailbox user's). ``MessageError`` says what is wrong with bad input."""
    check_zone(floating_zone)
    calendar = parse_calendar(data)
    vevents = calendar.walk("VEVENT")
    masters = [v for v in vevents if v.get("RECURRENCE-ID") is None]
    if len(masters) != 1:
        raise bad_ical(f"The calendar holds {len(masters)} events without RECURRENCE-ID; expected one.")
    master = _event(masters[0], calendar, floating_zone, None)
    changed = [
        _event(v, calendar, floating_zone, master) for v in vevents if v.get("RECURRENCE-ID") is not None
    ]
    if any(occurrence.uid != master.uid for occurrence in changed):
        raise bad_ical(f"A changed occurrence in the calendar of {master.uid!r} has another UID.")
    return replace(master, changed_occurrences=tuple(sorted(changed, key=_original)))


def _original(event: Event) -> dt.datetime:
    # Only changed occurrences are sorted, and each has its original start.
    return event.original_start or event.start


def _event(vevent: Any, calendar: icalendar.Calendar, floating_zone: str, master: Event | None) -> Event:
    uid = str(vevent.get("UID", "")).strip()
    start = read_time(vevent, "DTSTART", calendar, floating_zone)
    if not uid or start is None:
        raise bad_ical("An event has no UID or no DTSTART.")
    end = read_time(vevent, "DTEND", calendar, floating_zone) or _end_of(vevent, start)
    original = read_time(vevent, "RECURRENCE-ID", calendar, floating_zone) if master else None
    try:
        return Event(
            uid=uid,
            start=start[0],
            end=end[0],
            start_zone=start[1],
            end_zone=end[1],
            all_day=start[2],
            subject=_text(vevent, "SUMMARY"),
            body=_text(vevent, "DESCRIPTION"),
            location=_text(vevent, "LOCATION"),
            organizer=_organizer(vevent),
            attendees=_attendees(vevent),
            show_as=_show_as(vevent),
            reminder_minutes=_reminder(vevent, start[0]),
            categories=read_categories(vevent),
            status=_status(vevent),
            recurrence=_rule(vevent) if master is None else "",
            deleted_occurrences=tuple(read_times(vevent, "EXDATE", calendar, floating_zone)),
            original_start=original[0] if original else None,
        )
    except MessageError as error:
        raise bad_ical(f"The event {uid!r}: {error.message}") from None


def _end_of(vevent: Any, start: tuple[dt.datetime, str, bool]) -> tuple[dt.datetime, str, bool]:
    # No DTEND: DURATION, else RFC 5545's defaults (a day for a date, nothing for a time).
    duration = vevent.get("DURATION")
    if duration is not None:
        return start[0] + duration.dt, start[1], start[2]
    return start[0] + (dt.timedelta(days=1) if start[2] else dt.timedelta(0)), start[1], start[2]


def _text(component: Any, name: str) -> str:
    value = component.get(name)
    if isinstance(value, list):
        value = value[0]
    return str(value) if value is not None else ""


def _mail(value: Any) -> str:
    text = str(value).strip()
    return text[len("mailto:") :] if text.lower().startswith("mailto:") else text


def _organizer(vevent: Any) -> Party | None:
    value = vevent.get("ORGANIZER")
    if value is None:
        return None
    return Party(_mail(value), str(value.params.get("CN", "")))


def _attendees(vevent: Any) -> tuple[Attendee, ...]:
    found = vevent.get("ATTENDEE")
    values = found if isinstance(found, list) else [found] if found is not None else []
    return tuple(
        Attendee(
            _mail(value),
            str(value.params.get("CN", "")),
            optional=str(value.params.get("ROLE", "")).upper() in {"OPT-PARTICIPANT", "NON-PARTICIPANT"},
        )
        for value in values
    )


def _show_as(vevent: Any) -> ShowAs:
    # TRANSP is what every client edits; Outlook's finer state counts while it agrees with it.
    transparent = str(vevent.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT"
    busy = SHOW_AS.get(str(vevent.get(BUSY_STATUS, "")).upper())
    if transparent:
        return ShowAs.FREE
    return ShowAs.BUSY if busy is None or busy == ShowAs.FREE else busy


def _status(vevent: Any) -> EventStatus:
    text = str(vevent.get("STATUS", "CONFIRMED")).lower()
    return EventStatus(text) if text in EventStatus._value2member_map_ else EventStatus.CONFIRMED


def _reminder(vevent: Any, start: dt.datetime) -> int | None:
    for alarm in vevent.walk("VALARM"):
        trigger = alarm.get("TRIGGER")
        if trigger is None:
            continue
        when = trigger.dt
        before = start - when if isinstance(when, dt.datetime) else -when
        if str(trigger.params.get("RELATED", "START")).upper() == "START" and before >= dt.timedelta(0):
            return int(before.total_seconds() // 60)
    return None


def _rule(vevent: Any) -> str:
    # The CRM keeps one RRULE and EXDATEs; extra dates or exclusion rules would be lost
    # silently, so such a series is a per-item problem.
    for name in ("RDATE", "EXRULE"):
        if vevent.get(name) is not None:
            raise bad_ical(f"The series has {name}, which the CRM cannot keep (one RRULE with EXDATEs).")
    found = vevent.get("RRULE")
    if found is None:
        return ""
    if isinstance(found, list):
        raise bad_ical("The event has more than one RRULE; the CRM keeps one rule per series.")
    return bytes(found.to_ical()).decode()
