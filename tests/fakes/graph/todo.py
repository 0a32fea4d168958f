"""Microsoft To Do: the user's task lists (the default one, "Tasks") and a list's tasks:
list (``$expand=linkedResources``, ``$top``), create (linked resources inline), get,
update (``If-Match``), delete, and ``tasks/delta``. A To Do task has no change key: its
``@odata.etag`` is its version.

A task's start and due are dates in To Do: Graph drops the time written and answers
midnight UTC of the date the value names (reported in microsoftgraph/microsoft-graph-docs
#16991 and msgraph-sdk-java#2278: "dateTime ... always coming 00:00:00"), unlike its
completion and reminder times, which keep theirs."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.fakes.graph import metadata
from tests.fakes.graph.calls import Call, bad_request, not_found, not_implemented, top
from tests.fakes.graph.http import GraphError, Reply
from tests.fakes.graph.item_calls import check_if_match, item_of, stamp
from tests.fakes.graph.item_delta import DeltaKind, ItemDeltaState, item_delta
from tests.fakes.graph.mailboxes import new_id
from tests.fakes.graph.outlook_items import OutlookItem, Removal

READ_ONLY = ("id", "createdDateTime", "lastModifiedDateTime", "bodyLastModifiedDateTime", "hasAttachments")


def list_task_lists(call: Call) -> Reply:
    top(call)
    document = {
        "@odata.context": call.context("todo/lists"),
        "value": [
            {
                "@odata.etag": 'W/"AAAAAA=="',
                "id": call.mailbox.outlook.task_lists["defaultList"],
                "displayName": "Tasks",
                "isOwner": True,
                "isShared": False,
                "wellknownListName": "defaultList",
            }
        ],
    }
    return Reply.of_json(200, document, lambda d: metadata.validate_collection("todoTaskList", d))


def _list_id(call: Call) -> str:
    key = call.rest[2]
    if key not in call.mailbox.outlook.task_lists.values():
        raise not_found()
    return key


def _tasks(call: Call) -> dict[str, OutlookItem]:
    return {i.id: i for i in call.mailbox.outlook.in_collection(_list_id(call))}


def _expand(call: Call) -> bool:
    value = call.request.query.get("$expand")
    if value is None:
        return False
    if value.strip() != "linkedResources":
        raise not_implemented(call, f"$expand={value}")
    return True


def task_document(item: OutlookItem, *, linked: bool) -> dict[str, Any]:
    stored = item.document
    document: dict[str, Any] = {
        "@odata.etag": item.etag,
        "id": item.id,
        "createdDateTime": stamp(item.created),
        "lastModifiedDateTime": stamp(item.modified),
        "bodyLastModifiedDateTime": stamp(item.modified),
        "importance": "normal",
        "isReminderOn": False,
        "status": "notStarted",
        "title": "",
        "body": {"content": "", "contentType": "text"},
        "categories": [],
        "hasAttachments": False,
        **{k: v for k, v in stored.items() if k != "linkedResources"},
    }
    if linked:
        document["linkedResources"] = stored.get("linkedResources", [])
    return document


def _reply(call: Call, status: int, item: OutlookItem) -> Reply:
    body = {
        "@odata.context": call.context(f"todo/lists('{call.rest[2]}')/tasks/$entity"),
        **task_document(item, linked=_expand(call)),
    }
    return Reply.of_json(status, body, lambda d: metadata.validate("todoTask", d))


def _checked(call: Call) -> dict[str, Any]:
    body = call.server.checked_body(call.request, lambda d: metadata.validate("todoTask", d, request=True))
    refused = sorted(k for k in body if k in READ_ONLY)
    if refused:
        call.server.record(f"{call.request.method} {call.request.path}: read-only {refused} written")
        raise bad_request(f"The property '{refused[0]}' is read-only.")
    return body


def list_tasks(call: Call) -> Reply:
    tasks = list(_tasks(call).values())
    count, linked = top(call, 100), _expand(call)
    if len(tasks) > count:
        raise not_implemented(call, "paging of tasks")
    body = {
        "@odata.context": call.context(f"todo/lists('{call.rest[2]}')/tasks"),
        "value": [task_document(t, linked=linked) for t in tasks],
    }
    return Reply.of_json(200, body, lambda d: metadata.validate_collection("todoTask", d))


DATES = ("startDateTime", "dueDateTime")


def _as_dates(body: dict[str, Any]) -> dict[str, Any]:
    for name in DATES:
        value = body.get(name)
        if isinstance(value, dict) and value.get("dateTime"):
            body[name] = {"dateTime": f"{str(value['dateTime'])[:10]}T00:00:00.0000000", "timeZone": "UTC"}
    return body


def create_task(call: Call) -> Reply:
    body = _as_dates(_checked(call))
    if "linkedResources" in body:  # created with the task, each given its id
        body["linkedResources"] = [{**r, "id": new_id(b"\x07")} for r in body["linkedResources"]]
    item = call.mailbox.outlook.add(_list_id(call), body)
    return _reply(call, 201, item)


def get_task(call: Call) -> Reply:
    return _reply(call, 200, item_of(call, call.rest[4], _tasks(call)))


def update_task(call: Call) -> Reply:
    body = _as_dates(_checked(call))
    item = item_of(call, call.rest[4], _tasks(call))
    check_if_match(call, item)
    if "linkedResources" in body:
        raise GraphError(400, "invalidRequest", "Linked resources are changed through their own endpoint.")
    item.document = {**item.document, **body}
    call.mailbox.outlook.touch(item)
    return _reply(call, 200, item)


def delete_task(call: Call) -> Reply:
    item = item_of(call, call.rest[4], _tasks(call))
    check_if_match(call, item)
    call.mailbox.outlook.remove(item)
    return Reply(204)


def _everything(call: Call, state: ItemDeltaState) -> list[str | Removal]:
    return list(_tasks(call))


def _since(call: Call, state: ItemDeltaState) -> list[str | Removal]:
    changed = call.mailbox.outlook.changed(_list_id(call), state.watermark)
    return [c if isinstance(c, Removal) else c.id for c in changed]


def _render(call: Call, key: str, state: ItemDeltaState) -> dict[str, Any] | None:
    item = _tasks(call).get(key)
    return None if item is None else task_document(item, linked=False)


def tasks_delta(call: Call) -> Reply:
    path = f"todo/lists/{quote(call.rest[2], safe='')}/tasks/delta"
    return item_delta(call, DeltaKind("todoTask", path, _everything, _since, _render, lambda r: (r.item_id,)))
