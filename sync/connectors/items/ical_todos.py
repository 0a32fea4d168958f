"""Tasks to and from iCalendar VTODO.

VTODO has four states where the CRM has six: "waiting" and "deferred" are written
as IN-PROCESS and NEEDS-ACTION with the CRM's own word beside them
(``X-SERVERSYNC-TASK-STATUS``), which counts on read only while STATUS is still what
was written with it (a client that changed STATUS was changing the state).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import icalendar

from sync.connectors.items.data import Priority, Todo, TodoStatus, check_zone
from sync.connectors.items.ical_times import (
    bad_ical,
    new_calendar,
    parse_calendar,
    read_categories,
    read_time,
)
from sync.errors import MessageError

OWN_STATUS = "X-SERVERSYNC-TASK-STATUS"
VTODO_STATUS = {
    TodoStatus.NOT_STARTED: "NEEDS-ACTION",
    TodoStatus.IN_PROGRESS: "IN-PROCESS",
    TodoStatus.WAITING: "IN-PROCESS",
    TodoStatus.COMPLETED: "COMPLETED",
    TodoStatus.DEFERRED: "NEEDS-ACTION",
    TodoStatus.CANCELED: "CANCELLED",
}
FROM_VTODO = {
    "NEEDS-ACTION": TodoStatus.NOT_STARTED,
    "IN-PROCESS": TodoStatus.IN_PROGRESS,
    "COMPLETED": TodoStatus.COMPLETED,
    "CANCELLED": TodoStatus.CANCELED,
}
# RFC 5545 3.8.1.9: 1-4 high, 5 medium, 6-9 low (0: undefined).
PRIORITY_NUMBER = {Priority.HIGH: 1, Priority.NORMAL: 5, Priority.LOW: 9}


def todo_to_ical(todo: Todo) -> bytes:
    calendar = new_calendar()
    vtodo = icalendar.Todo()
    vtodo.add("uid", todo.uid)
    vtodo.add("dtstamp", dt.datetime.now(dt.UTC).replace(microsecond=0))
    for name, text in (("summary", todo.subject), ("description", todo.body)):
        if text:
            vtodo.add(name, text)
    for name, when in (("dtstart", todo.start), ("due", todo.due), ("completed", todo.completed_on)):
        if when is not None:
            vtodo.add(name, when.astimezone(dt.UTC))
    vtodo.add("status", VTODO_STATUS[todo.status])
    if todo.status in (TodoStatus.WAITING, TodoStatus.DEFERRED):
        vtodo.add(OWN_STATUS, todo.status.value)
    vtodo.add("percent-complete", todo.percent_complete)
    vtodo.add("priority", PRIORITY_NUMBER[todo.priority])
    if todo.categories:
        vtodo.add("categories", list(todo.categories))
    calendar.add_component(vtodo)
    return bytes(calendar.to_ical())


def ical_to_todo(data: bytes | str, *, floating_zone: str = "UTC") -> Todo:
    """The task of one VCALENDAR; dates and floating times are read in ``floating_zone``."""
    check_zone(floating_zone)
    calendar = parse_calendar(data)
    vtodos = calendar.walk("VTODO")
    if len(vtodos) != 1:
        raise bad_ical(f"The calendar holds {len(vtodos)} VTODOs; expected one.")
    vtodo = vtodos[0]
    uid = str(vtodo.get("UID", "")).strip()

    def when(name: str) -> dt.datetime | None:
        found = read_time(vtodo, name, calendar, floating_zone)
        return found[0] if found else None

    try:
        return Todo(
            uid=uid,
            subject=str(vtodo.get("SUMMARY", "")),
            body=str(vtodo.get("DESCRIPTION", "")),
            start=when("DTSTART"),
            due=when("DUE"),
            status=_status(vtodo),
            percent_complete=_number(vtodo, "PERCENT-COMPLETE"),
            priority=_priority(_number(vtodo, "PRIORITY")),
            completed_on=when("COMPLETED"),
            categories=read_categories(vtodo),
        )
    except MessageError as error:
        raise bad_ical(f"The task {uid!r}: {error.message}") from None


def _status(vtodo: Any) -> TodoStatus:
    written = str(vtodo.get("STATUS", "NEEDS-ACTION")).upper()
    own = str(vtodo.get(OWN_STATUS, "")).lower()
    if own in TodoStatus._value2member_map_ and VTODO_STATUS[TodoStatus(own)] == written:
        return TodoStatus(own)
    return FROM_VTODO.get(written, TodoStatus.NOT_STARTED)


def _number(vtodo: Any, name: str) -> int:
    value = vtodo.get(name, 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_ical(f"{name} is {value!r}, not a whole number.") from None


def _priority(number: int) -> Priority:
    if 1 <= number <= 4:
        return Priority.HIGH
    if 6 <= number <= 9:
        return Priority.LOW
    return Priority.NORMAL
