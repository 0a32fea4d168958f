"""Event <-> exchangelib CalendarItem: the fields both hold, and what EWS keeps otherwise.

Mapped both ways: subject, body (as text), location, start / end with their zones
(StartTimeZone / EndTimeZone: Windows ids, read as IANA through sync.connectors.timezones;
"UTC" stays "UTC"), all-day (EWS dates: the end date is exclusive in Event, inclusive in
exchangelib), required and optional attendees, free/busy (LegacyFreeBusyStatus <-> ShowAs),
the reminder (ReminderIsSet + minutes), categories, the series (sync.connectors.ews_recurrence)
with its changed occurrences (exceptions, read by GetItem) and deleted ones, the UID
(calendar:UID, set on create, and the ``serversync-uid`` property, ews_uid).

What EWS cannot hold from an Event, and what is read back instead:

- ``organizer`` is read-only in EWS: an item saved in a mailbox is organized by that mailbox.
  The organizer read is the server's (the mailbox for items serversync creates).
- ``status``: EWS has IsCancelled (read-only, set when an organizer cancels) and nothing for
  TENTATIVE. Read: CANCELLED when cancelled, else CONFIRMED; writing does not change it
  (cancelling sends cancellations, the engine's call to make, not a field to set).
- a series' RRULE reads back as it was written (kept in ``serversync-rrule``) while the
  EWS pattern is still the one it was written as; a series made or changed in Outlook reads
  as its pattern says it (ews_recurrence: BYDAY, BYMONTHDAY and BYMONTH spelled out).
- attendees come back required ones first, then optional ones (EWS keeps two lists), each in
  the order written; an HTML body (Outlook's) is read as its text.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any
from zoneinfo import ZoneInfo

from exchangelib import Body, CalendarItem, EWSDate, EWSDateTime, EWSTimeZone, HTMLBody
from exchangelib.properties import Attendee as EwsAttendee
from exchangelib.properties import Mailbox

from sync.connectors import ews_recurrence, timezones
from sync.connectors.ews_uid import RULE_FIELD, UID_FIELD
from sync.connectors.items import Attendee, Event, EventStatus, Party, ShowAs
from sync.errors import MessageError

FREE_BUSY = {
    ShowAs.FREE: "Free",
    ShowAs.TENTATIVE: "Tentative",
    ShowAs.BUSY: "Busy",
    ShowAs.OUT_OF_OFFICE: "OOF",
    ShowAs.WORKING_ELSEWHERE: "WorkingElsewhere",
}
SHOW_AS = {ews: ours for ours, ews in FREE_BUSY.items()}
# What an update sets on a series master or a single appointment (an occurrence: all but the
# last two: EWS refuses a recurrence or a UID on an occurrence).
FIELDS = [
    "subject",
    "body",
    "categories",
    "reminder_is_set",
    "reminder_minutes_before_start",
    "start",
    "end",
    "is_all_day",
    "legacy_free_busy_status",
    "location",
    "required_attendees",
    "optional_attendees",
    RULE_FIELD,
    "recurrence",
    "uid",
]
OCCURRENCE_FIELDS = FIELDS[:-3]


def ews_zone(iana: str) -> EWSTimeZone:
    timezones.windows_of(iana)  # a MessageError naming the zone, before exchangelib's own error
    return EWSTimeZone(iana)


def zone_of(zone: EWSTimeZone | None) -> str:
    """The IANA name of an item's zone (Windows id through CLDR; Exchange's "UTC" stays UTC)."""
    if zone is None or zone.ms_id == "UTC":
        return "UTC"
    return timezones.iana_of(zone.ms_id)


def values(event: Event, *, series: bool) -> dict[str, Any]:
    """The CalendarItem fields of ``event`` (a series' recurrence and the UID when ``series``)."""
    start_zone, end_zone = ews_zone(event.start_zone), ews_zone(event.end_zone)
    found: dict[str, Any] = {
        "subject": event.subject or None,
        "body": Body(event.body) if event.body else None,
        "categories": list(event.categories) or None,
        "reminder_is_set": event.reminder_minutes is not None,
        "reminder_minutes_before_start": event.reminder_minutes or 0,
        "is_all_day": event.all_day,
        "legacy_free_busy_status": FREE_BUSY[event.show_as],
        "location": event.location or None,
        "required_attendees": _attendees(event, optional=False),
        "optional_attendees": _attendees(event, optional=True),
        "_start_timezone": start_zone,
        "_end_timezone": end_zone,
    }
    if event.all_day:
        # exchangelib writes an all-day end date as the midnight after it: the last day, inclusive.
        found["start"] = EWSDate.from_date(event.start_date)
        found["end"] = EWSDate.from_date(event.end_date - dt.timedelta(days=1))
    else:
        found["start"] = event.start.astimezone(start_zone)
        found["end"] = event.end.astimezone(end_zone)
    if series:
        found["uid"] = event.uid
        found["recurrence"] = (
            ews_recurrence.to_ews(event.recurrence, event.start, event.start_zone, all_day=event.all_day)
            if event.recurrence
            else None
        )
        found[RULE_FIELD] = event.recurrence or None
    return found


def _attendees(event: Event, *, optional: bool) -> list[EwsAttendee] | None:
    found = [
        EwsAttendee(mailbox=Mailbox(email_address=a.address, name=a.name or None), response_type="Unknown")
        for a in event.attendees
        if a.optional == optional
    ]
    return found or None


def new_item(event: Event, **context: Any) -> CalendarItem:
    item = CalendarItem(**context, **values(event, series=True))
    setattr(item, UID_FIELD, event.uid)
    return item


def _rule(item: CalendarItem, start: dt.datetime, zone: str) -> str:
    """The series' RRULE: as written by serversync while its EWS pattern is still that rule's."""
    all_day = bool(item.is_all_day)
    found = ews_recurrence.from_ews(item.recurrence, start, zone, all_day=all_day)
    written = getattr(item, RULE_FIELD, None)
    if not written:
        return found
    try:
        again = ews_recurrence.from_ews(
            ews_recurrence.to_ews(written, start, zone, all_day=all_day), start, zone, all_day=all_day
        )
    except MessageError:
        return found
    return str(written) if again == found else found


def read(item: CalendarItem, exceptions: list[CalendarItem], uid: str = "") -> Event:
    """The Event of a single appointment or series master, ``exceptions`` its changed occurrences."""
    own_uid = uid or item.uid or getattr(item, UID_FIELD, None) or item.id
    start_zone, end_zone = zone_of(item._start_timezone), zone_of(item._end_timezone)
    start, end = _times(item, start_zone, end_zone)
    rule = _rule(item, start, start_zone) if item.recurrence is not None else ""
    original = item.original_start if item.type == "Exception" else None
    return Event(
        uid=own_uid,
        start=start,
        end=end,
        start_zone=start_zone,
        end_zone=end_zone,
        all_day=bool(item.is_all_day),
        subject=item.subject or "",
        body=body_text(item.body),
        location=item.location or "",
        organizer=_party(item.organizer),
        attendees=_read_attendees(item),
        show_as=SHOW_AS.get(item.legacy_free_busy_status or "Busy", ShowAs.BUSY),
        reminder_minutes=(item.reminder_minutes_before_start or 0) if item.reminder_is_set else None,
        categories=tuple(item.categories or ()),
        status=EventStatus.CANCELLED if item.is_cancelled else EventStatus.CONFIRMED,
        recurrence=rule,
        deleted_occurrences=tuple(_utc(o.start) for o in item.deleted_occurrences or ()),
        changed_occurrences=tuple(read(e, [], own_uid) for e in exceptions),
        original_start=_utc(original) if original is not None else None,
    )


def _times(item: CalendarItem, start_zone: str, end_zone: str) -> tuple[dt.datetime, dt.datetime]:
    if item.is_all_day:
        # exchangelib gives an all-day appointment's days (the end inclusive) in its zones.
        first = dt.datetime.combine(item.start, dt.time(0), ZoneInfo(start_zone))
        after = dt.datetime.combine(item.end + dt.timedelta(days=1), dt.time(0), ZoneInfo(end_zone))
        return first, after
    return _in(item.start, start_zone), _in(item.end, end_zone)


def _in(value: EWSDateTime, zone: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(value.timestamp(), ZoneInfo(zone))


def _utc(value: EWSDateTime) -> dt.datetime:
    return dt.datetime.fromtimestamp(value.timestamp(), dt.UTC)


def _party(mailbox: Mailbox | None) -> Party | None:
    if mailbox is None or not mailbox.email_address:
        return None
    return Party(mailbox.email_address, mailbox.name or "")


def _read_attendees(item: CalendarItem) -> tuple[Attendee, ...]:
    found = []
    for optional, listed in ((False, item.required_attendees), (True, item.optional_attendees)):
        for attendee in listed or ():
            box = attendee.mailbox
            if box is not None and box.email_address:
                found.append(Attendee(box.email_address, box.name or "", optional=optional))
    return tuple(found)


TAG = re.compile(r"<[^>]+>")
BREAK = re.compile(r"<\s*(br|/p|/div|/li|/tr)\b[^>]*>", re.IGNORECASE)
HIDDEN = re.compile(r"<(head|style|script)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def body_text(body: Body | None) -> str:
    """An item's body as text: an HTML body (Outlook's) without its markup."""
    if body is None:
        return ""
    if isinstance(body, HTMLBody):
        text = TAG.sub("", BREAK.sub("\n", HIDDEN.sub("", str(body))))
        return html.unescape(text).replace("\r\n", "\n").strip()
    return str(body).replace("\r\n", "\n")
