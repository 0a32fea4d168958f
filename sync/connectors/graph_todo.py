"""A task (``Todo``) as a Microsoft To Do ``todoTask`` (the user's default list) and back.

Kept: title, body (text), status, importance, categories, completion time; the start and
due as dates only: To Do drops their time (the time written is ignored, Graph answers
midnight UTC: microsoftgraph/microsoft-graph-docs#16991, msgraph-sdk-java#2278), so
they are written as the date they fall on in their own zone and read back as midnight
UTC of that date. To Do has no "canceled": a canceled task is written as ``deferred`` (set
aside, not done) and reads back as deferred. It has no percent complete either: a task
reads as 0 % complete, or 100 % when completed. Times are written in UTC.

The UID: a todoTask has no extended properties in Graph v1.0; it has linked resources,
made for "the item in another application this task came from": serversync's UID is the
``externalId`` of a linked resource whose ``applicationName`` is serversync, created
with the task. A task To Do made has none: its Graph id stands in for it.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from sync.connectors.graph_events import iana_zone
from sync.connectors.items.data import Priority, Todo, TodoStatus

APPLICATION = "serversync"
STATUS = {
    TodoStatus.NOT_STARTED: "notStarted",
    TodoStatus.IN_PROGRESS: "inProgress",
    TodoStatus.WAITING: "waitingOnOthers",
    TodoStatus.COMPLETED: "completed",
    TodoStatus.DEFERRED: "deferred",
    TodoStatus.CANCELED: "deferred",
}
READ_STATUS = {graph: ours for ours, graph in STATUS.items() if ours != TodoStatus.CANCELED}


def _when(value: dt.datetime | None) -> dict[str, str] | None:
    if value is None:
        return None
    return {"dateTime": value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def _date(value: dt.datetime | None) -> dict[str, str] | None:
    """The date ``value`` falls on where it was given (a due date of 22:00 in New York is that
    day, not the next one UTC), as To Do keeps it: midnight, in UTC."""
    if value is None:
        return None
    return {"dateTime": f"{value.date().isoformat()}T00:00:00.0000000", "timeZone": "UTC"}


def to_graph(todo: Todo, *, created: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": todo.subject,
        "body": {"contentType": "text", "content": todo.body},
        "startDateTime": _date(todo.start),
        "dueDateTime": _date(todo.due),
        "status": STATUS[todo.status],
        "importance": todo.priority.value,
        "completedDateTime": _when(todo.completed_on),
        "categories": list(todo.categories),
    }
    if created:
        body["linkedResources"] = [
            {"applicationName": APPLICATION, "externalId": todo.uid, "displayName": todo.subject or todo.uid}
        ]
    return body


def uid_of(document: dict[str, Any]) -> str:
    for linked in document.get("linkedResources") or []:
        if linked.get("applicationName") == APPLICATION and linked.get("externalId"):
            return str(linked["externalId"])
    return str(document["id"])


def _read_when(value: object) -> dt.datetime | None:
    if not isinstance(value, dict) or not value.get("dateTime"):
        return None
    local = dt.datetime.fromisoformat(str(value["dateTime"])[:26])
    return local.replace(tzinfo=zoneinfo.ZoneInfo(iana_zone(str(value.get("timeZone") or "UTC"))))


def from_graph(document: dict[str, Any]) -> Todo:
    status = READ_STATUS.get(str(document.get("status")), TodoStatus.NOT_STARTED)
    body = document.get("body") or {}
    return Todo(
        uid=uid_of(document),
        subject=str(document.get("title") or ""),
        body=str(body.get("content") or "") if isinstance(body, dict) else "",
        start=_read_when(document.get("startDateTime")),
        due=_read_when(document.get("dueDateTime")),
        status=status,
        percent_complete=100 if status == TodoStatus.COMPLETED else 0,
        priority=Priority(str(document.get("importance") or "normal")),
        completed_on=_read_when(document.get("completedDateTime")),
        categories=tuple(str(c) for c in document.get("categories") or []),
    )
