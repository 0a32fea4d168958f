"""What test & enable opens of a mailbox's appointments, contacts and tasks: the default
calendar, the contacts, and the To Do task lists (empty: nothing syncs them yet), so that
a missing application permission answers 403 as Graph does."""

from __future__ import annotations

from typing import Any

from tests.fakes.graph import metadata
from tests.fakes.graph.calls import Call, top
from tests.fakes.graph.http import Reply


def get_calendar(call: Call) -> Reply:
    box = call.mailbox
    document: dict[str, Any] = {
        "@odata.context": call.context("calendars/$entity"),
        "id": f"{box.user_id}-calendar",
        "name": "Calendar",
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": True,
        "changeKey": "AAAAAA==",
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": True,
        "isRemovable": False,
        "owner": {"name": box.display_name, "address": box.address},
    }
    return Reply.of_json(200, document, lambda d: metadata.validate("calendar", d))


def list_contacts(call: Call) -> Reply:
    top(call)  # read as Graph reads it; there are none to page through
    document = {"@odata.context": call.context("contacts"), "value": []}
    return Reply.of_json(200, document, lambda d: metadata.validate_collection("contact", d))


def list_task_lists(call: Call) -> Reply:
    top(call)
    document = {
        "@odata.context": call.context("todo/lists"),
        "value": [
            {
                "id": f"{call.mailbox.user_id}-tasks",
                "displayName": "Tasks",
                "isOwner": True,
                "isShared": False,
                "wellknownListName": "defaultList",
            }
        ],
    }
    return Reply.of_json(200, document, lambda d: metadata.validate_collection("todoTaskList", d))
