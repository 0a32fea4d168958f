"""The iCalendar UID on Exchange items, as exchangelib extended properties.

Appointments have a UID of their own (calendar:UID, settable on create, the one Outlook and
meeting invitations carry); contacts and tasks have none. serversync keeps the engine's UID
in a named string property of PS_PUBLIC_STRINGS, ``serversync-uid``, on all three: it
survives Outlook's edits (Outlook keeps named properties it does not know), and FindItem
can restrict on it, which calendar:UID cannot (it is not searchable in EWS), so a create finds
an item it made before (``item_exists``). Tasks also keep ``serversync-task``: their exact
start, due and completion times and a status EWS has no value for (see ews_tasks); series
``serversync-rrule``, the RRULE as the engine wrote it (see ews_events).

exchangelib registers extended properties on the item class, process-wide: :func:`register`
does so once and is idempotent.
"""

from __future__ import annotations

import threading

from exchangelib import CalendarItem, Contact, ExtendedProperty, Task

UID_FIELD = "serversync_uid"
TASK_FIELD = "serversync_task"
RULE_FIELD = "serversync_rrule"


class SyncUid(ExtendedProperty):  # type: ignore[misc]  # exchangelib is untyped
    distinguished_property_set_id = "PublicStrings"
    property_name = "serversync-uid"
    property_type = "String"


class SeriesRule(ExtendedProperty):  # type: ignore[misc]  # exchangelib is untyped
    distinguished_property_set_id = "PublicStrings"
    property_name = "serversync-rrule"
    property_type = "String"


class TaskExtras(ExtendedProperty):  # type: ignore[misc]  # exchangelib is untyped
    distinguished_property_set_id = "PublicStrings"
    property_name = "serversync-task"
    property_type = "String"


_lock = threading.Lock()
_done = False


def register() -> None:
    """Register the properties on CalendarItem, Contact and Task (once per process)."""
    global _done
    with _lock:
        if _done:
            return
        for model in (CalendarItem, Contact, Task):
            if UID_FIELD not in {f.name for f in model.FIELDS}:
                model.register(UID_FIELD, SyncUid)
        if TASK_FIELD not in {f.name for f in Task.FIELDS}:
            Task.register(TASK_FIELD, TaskExtras)
        if RULE_FIELD not in {f.name for f in CalendarItem.FIELDS}:
            CalendarItem.register(RULE_FIELD, SeriesRule)
        _done = True
