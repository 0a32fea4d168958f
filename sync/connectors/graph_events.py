"""An appointment (``Event``) as a Microsoft Graph ``event`` and back.

Times are written in the event's zones by their Windows names (as Outlook writes them,
through :mod:`sync.connectors.timezones`) and read in UTC (``Prefer: outlook.timezone``),
the zones coming back from ``originalStartTimeZone`` / ``originalEndTimeZone``. IANA zones
that share a Windows zone come back as CLDR's choice for it ("Europe/Vienna" is written
as "W. Europe Standard Time" and reads as "Europe/Berlin": the same clock). An all-day
event's start and end are dates, midnight in its zones.

The UID (iCalendar's, the engine's link after a rejected cursor) is in a named
single-value extended property of our own GUID namespace: Graph's ``iCalUId`` is
made by Exchange and read-only, and ``transactionId`` is only a create-once guard.
An event Outlook made has none: its ``iCalUId`` is its UID until serversync writes it.

Kept: subject, body (as text), location's display name, all-day, start / end and zones,
organizer (when the event has attendees: an appointment without any is the mailbox's own),
attendees required / optional, show as, reminder (minutes, or none), categories,
cancelled; the recurrence (:mod:`sync.connectors.graph_recurrence`). Not kept: the
status "tentative" (Graph has only cancelled or not: it reads back as confirmed).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from sync.connectors import graph_recurrence
from sync.connectors.items.data import Attendee, Event, EventStatus, Party, ShowAs
from sync.connectors.timezones import iana_of, windows_of
from sync.errors import MessageError

# Our namespace for the UID (a GUID of serversync's; MS-OXPROPS named properties).
UID_PROPERTY = "String {9C7B9A3E-5C1D-4E8F-A2B6-3D1F0E6C7A54} Name serversync.uid"
LOCAL = "%Y-%m-%dT%H:%M:%S"
SHOW_AS = {
    ShowAs.FREE: "free",
    ShowAs.TENTATIVE: "tentative",
    ShowAs.BUSY: "busy",
    ShowAs.OUT_OF_OFFICE: "oof",
    ShowAs.WORKING_ELSEWHERE: "workingElsewhere",
}
SHOWN_AS = {graph: ours for ours, graph in SHOW_AS.items()}


def iana_zone(name: str) -> str:
    """A zone as Graph names it (Windows, or IANA when a client wrote one) as IANA."""
    if not name:
        return "UTC"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return iana_of(name)
    return name


def _when(value: dt.datetime, zone: str) -> dict[str, str]:
    return {
        "dateTime": value.astimezone(zoneinfo.ZoneInfo(zone)).strftime(LOCAL),
        "timeZone": windows_of(zone),
    }


def to_graph(event: Event, *, with_recurrence: bool = True) -> dict[str, Any]:
    """The event's properties to POST or PATCH (an occurrence's without recurrence and UID)."""
    body: dict[str, Any] = {
        "subject": event.subject,
        "body": {"contentType": "text", "content": event.body},
        "start": _when(event.start, event.start_zone),
        "end": _when(event.end, event.end_zone),
        "isAllDay": event.all_day,
        "location": {"displayName": event.location},
        "attendees": [
            {
                "emailAddress": {"address": a.address, "name": a.name or a.address},
                "type": "optional" if a.optional else "required",
            }
            for a in event.attendees
        ],
        "showAs": SHOW_AS[event.show_as],
        "isReminderOn": event.reminder_minutes is not None,
        "reminderMinutesBeforeStart": event.reminder_minutes or 0,
        "categories": list(event.categories),
        "isCancelled": event.status == EventStatus.CANCELLED,
    }
    if event.organizer is not None:
        body["organizer"] = {
            "emailAddress": {"address": event.organizer.address, "name": event.organizer.name or ""}
        }
    if with_recurrence:
        body["recurrence"] = (
            graph_recurrence.to_pattern(
                event.recurrence,
                event.start,
                event.start_zone,
                windows_of(event.start_zone),
                all_day=event.all_day,
            )
            if event.recurrence
            else None
        )
        body["singleValueExtendedProperties"] = [{"id": UID_PROPERTY, "value": event.uid}]
    return body


def uid_of(document: dict[str, Any]) -> str:
    for found in document.get("singleValueExtendedProperties") or []:
        if str(found.get("id", "")).lower() == UID_PROPERTY.lower() and found.get("value"):
            return str(found["value"])
    return str(document.get("iCalUId") or document["id"])


def _moment(value: dict[str, Any], zone: str, *, all_day: bool) -> dt.datetime:
    """A dateTimeTimeZone read in UTC (as asked), or an all-day event's date at midnight in ``zone``."""
    text = str(value["dateTime"])[:26]
    local = dt.datetime.fromisoformat(text)
    if all_day:
        return dt.datetime.combine(local.date(), dt.time(0), zoneinfo.ZoneInfo(zone))
    return local.replace(tzinfo=zoneinfo.ZoneInfo(iana_zone(str(value.get("timeZone") or "UTC"))))


def from_graph(
    document: dict[str, Any],
    uid: str,
    *,
    deleted: tuple[dt.datetime, ...] = (),
    changed: tuple[Event, ...] = (),
    original_start: dt.datetime | None = None,
) -> Event:
    """The Event of a series master or single event (``deleted`` / ``changed``: its occurrences'),
    or of an exception (``original_start``)."""
    start_zone = iana_zone(str(document.get("originalStartTimeZone") or ""))
    end_name = str(document.get("originalEndTimeZone") or "")
    end_zone = iana_zone(end_name) if end_name else start_zone
    all_day = bool(document.get("isAllDay"))
    start = _moment(document["start"], start_zone, all_day=all_day)
    attendees = tuple(_attendee(a) for a in document.get("attendees") or [])
    recurrence = document.get("recurrence") if original_start is None else None
    return Event(
        uid=uid,
        start=start,
        end=_moment(document["end"], end_zone, all_day=all_day),
        start_zone=start_zone,
        end_zone=end_zone,
        all_day=all_day,
        subject=str(document.get("subject") or ""),
        body=_text(document.get("body")),
        location=str((document.get("location") or {}).get("displayName") or ""),
        organizer=_organizer(document) if attendees else None,
        attendees=attendees,
        show_as=SHOWN_AS.get(str(document.get("showAs")), ShowAs.BUSY),
        reminder_minutes=int(document.get("reminderMinutesBeforeStart") or 0)
        if document.get("isReminderOn")
        else None,
        categories=tuple(str(c) for c in document.get("categories") or []),
        status=EventStatus.CANCELLED if document.get("isCancelled") else EventStatus.CONFIRMED,
        recurrence=graph_recurrence.from_pattern(recurrence, start, start_zone, all_day=all_day)
        if recurrence
        else "",
        deleted_occurrences=deleted,
        changed_occurrences=changed,
        original_start=original_start,
    )


def _attendee(found: dict[str, Any]) -> Attendee:
    address = found.get("emailAddress") or {}
    name = str(address.get("name") or "")
    mail = str(address.get("address") or "")
    return Attendee(mail, "" if name == mail else name, optional=found.get("type") == "optional")


def _organizer(document: dict[str, Any]) -> Party | None:
    address = (document.get("organizer") or {}).get("emailAddress") or {}
    if not address.get("address"):
        return None
    name = str(address.get("name") or "")
    return Party(str(address["address"]), "" if name == address["address"] else name)


def _text(body: object) -> str:
    if not isinstance(body, dict):
        return ""
    content = str(body.get("content") or "")
    if str(body.get("contentType", "text")).lower() == "html":
        raise MessageError(
            "Graph answered an event body as HTML where text was asked for.", code="item_invalid"
        )
    return content


def original_start(document: dict[str, Any]) -> dt.datetime:
    """An instance's ``originalStart`` (a DateTimeOffset) as an aware date-time."""
    return dt.datetime.fromisoformat(str(document["originalStart"]).replace("Z", "+00:00"))
