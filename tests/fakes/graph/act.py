"""The default calendar, as test & enable opens it (its events: ``events.py``; contacts:
``contacts.py``; To Do: ``todo.py``)."""

from __future__ import annotations

from typing import Any

from tests.fakes.graph import metadata
from tests.fakes.graph.calls import Call
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
