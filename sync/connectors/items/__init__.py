"""Appointments, tasks and contacts as plain data (``data``), and their iCalendar
(``ical_events``, ``ical_todos``, through icalendar) and vCard (``vcards``, through
vobject) form, for the CalDAV / CardDAV backend and for tests of every backend."""

from sync.connectors.items.data import (
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
from sync.connectors.items.ical_events import event_to_ical, ical_to_event
from sync.connectors.items.ical_todos import ical_to_todo, todo_to_ical
from sync.connectors.items.vcards import card_to_vcard, vcard_to_card

__all__ = [
    "Address",
    "Attendee",
    "Card",
    "Event",
    "EventStatus",
    "Party",
    "Priority",
    "ShowAs",
    "Todo",
    "TodoStatus",
    "card_to_vcard",
    "event_to_ical",
    "ical_to_event",
    "ical_to_todo",
    "todo_to_ical",
    "vcard_to_card",
]
