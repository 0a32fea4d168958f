"""Todo <-> exchangelib Task.

Mapped both ways: subject, body (text), status, percent complete, importance (priority),
categories, the UID (``serversync-uid``, ews_uid; an Outlook task without one reads with its
EWS item id), and start / due dates.

What EWS holds otherwise:

- StartDate and DueDate are dates (Outlook shows no time of day): written as the date of
  the Todo's time in its own zone. The exact times are kept beside them in the
  ``serversync-task`` property and read back while the EWS date still agrees; once a user
  moved the date in Outlook, the task reads as midnight UTC of the new date.
- CompleteDate is read-only (Exchange sets it when the task is completed): the time written
  is kept in ``serversync-task`` and read back while the task is completed; otherwise the
  server's CompleteDate is read.
- Exchange ties the percentage to the status: a task not started is 0 % complete, a completed
  one 100 % (exchangelib applies the rule before it sends), whatever the Todo said.
- EWS has no "canceled" status: a canceled Todo is written as Deferred (what Outlook users see)
  and reads back canceled while Deferred with ``serversync-task`` saying canceled.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from exchangelib import Body, Task

from sync.connectors.ews_events import body_text
from sync.connectors.ews_uid import TASK_FIELD, UID_FIELD
from sync.connectors.items import Priority, Todo, TodoStatus

STATUSES = {
    TodoStatus.NOT_STARTED: "NotStarted",
    TodoStatus.IN_PROGRESS: "InProgress",
    TodoStatus.COMPLETED: "Completed",
    TodoStatus.WAITING: "WaitingOnOthers",
    TodoStatus.DEFERRED: "Deferred",
    TodoStatus.CANCELED: "Deferred",
}
READ_STATUSES = {ews: ours for ours, ews in STATUSES.items() if ours != TodoStatus.CANCELED}
IMPORTANCE = {Priority.LOW: "Low", Priority.NORMAL: "Normal", Priority.HIGH: "High"}
PRIORITY = {ews: ours for ours, ews in IMPORTANCE.items()}
FIELDS = [
    "subject",
    "body",
    "importance",
    "categories",
    "due_date",
    "percent_complete",
    "start_date",
    "status",
    UID_FIELD,
    TASK_FIELD,
]


def values(todo: Todo) -> dict[str, Any]:
    extras = {
        "start": _iso(todo.start),
        "due": _iso(todo.due),
        "completed": _iso(todo.completed_on),
        "status": todo.status.value,
    }
    return {
        "subject": todo.subject or None,
        "body": Body(todo.body) if todo.body else None,
        "importance": IMPORTANCE[todo.priority],
        "categories": list(todo.categories) or None,
        "start_date": todo.start.date() if todo.start else None,
        "due_date": todo.due.date() if todo.due else None,
        "status": STATUSES[todo.status],
        "percent_complete": Decimal(todo.percent_complete),
        UID_FIELD: todo.uid,
        TASK_FIELD: json.dumps({k: v for k, v in extras.items() if v}, sort_keys=True),
    }


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def read(item: Task) -> Todo:
    extras = _extras(getattr(item, TASK_FIELD, None))
    status: TodoStatus = READ_STATUSES.get(item.status or "NotStarted", TodoStatus.NOT_STARTED)
    if status == TodoStatus.DEFERRED and extras.get("status") == TodoStatus.CANCELED.value:
        status = TodoStatus.CANCELED
    completed = None
    if status == TodoStatus.COMPLETED:
        completed = _exact(extras.get("completed"), None) or _utc(item.complete_date)
    return Todo(
        uid=getattr(item, UID_FIELD, None) or item.id,
        subject=item.subject or "",
        body=body_text(item.body),
        start=_day(item.start_date, extras.get("start")),
        due=_day(item.due_date, extras.get("due")),
        status=status,
        percent_complete=int(item.percent_complete or 0),
        priority=PRIORITY.get(item.importance or "Normal", Priority.NORMAL),
        completed_on=completed,
        categories=tuple(item.categories or ()),
    )


def _extras(text: str | None) -> dict[str, str]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _exact(text: str | None, date: dt.date | None) -> dt.datetime | None:
    """The exact time kept beside a date, if it is still that date's (or no date is given)."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.utcoffset() is None or (date is not None and value.date() != date):
        return None
    return value


def _day(value: dt.date | None, exact: str | None) -> dt.datetime | None:
    if value is None:
        return None
    day = dt.date(value.year, value.month, value.day)
    return _exact(exact, day) or dt.datetime.combine(day, dt.time(0), dt.UTC)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value.timestamp(), dt.UTC) if value is not None else None
