"""Events of the default calendar (``/events``): create, get, update (``If-Match``),
delete; a series' ``instances`` between two times; ``calendarView/delta``, which
reports instances (single events, occurrences, exceptions), never series masters.

Writing an occurrence makes it an exception; deleting one cancels it; either is a
change of its series (a new change key on the master), as in Exchange, where
exceptions live inside the master. Times come back in the zone
``Prefer: outlook.timezone`` names (UTC without it); an all-day event's midnights
are dates, not converted. ``originalStartTimeZone`` is the zone the start was written in.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

from tests.fakes.graph import recurrence
from tests.fakes.graph.calls import Call, bad_request, expanded, not_found, not_implemented, top
from tests.fakes.graph.http import GraphError, Reply
from tests.fakes.graph.item_calls import (
    check_if_match,
    expanded_properties,
    extended_filter,
    has_property,
    outlook_fields,
    patch,
    prefer_zone,
    strict,
    strict_collection,
)
from tests.fakes.graph.item_delta import DeltaKind, ItemDeltaState, item_delta
from tests.fakes.graph.mailboxes import new_id
from tests.fakes.graph.outlook_items import EVENTS, OutlookItem, Removal

TYPE_FILTER = re.compile(r"\s*type\s+eq\s+'seriesMaster'\s*")
DEFAULTS: dict[str, Any] = {
    "subject": "",
    "body": {"contentType": "text", "content": ""},
    "isAllDay": False,
    "isCancelled": False,
    "showAs": "busy",
    "location": {"displayName": ""},
    "attendees": [],
    "categories": [],
    "reminderMinutesBeforeStart": 15,
    "isReminderOn": True,
    "importance": "normal",
}
# What a write may not set (Graph's read-only properties).
READ_ONLY = ("id", "changeKey", "type", "seriesMasterId", "originalStart", "iCalUId", "createdDateTime")


# -- documents


def _when(value: dict[str, Any], zone_name: str, all_day: bool) -> dict[str, str]:
    if all_day:  # a date, the same in every zone
        return {"dateTime": str(value["dateTime"])[:19] + ".0000000", "timeZone": zone_name}
    moment = recurrence.local(value).astimezone(recurrence.zone(zone_name))
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone_name}


def event_document(
    call: Call,
    item: OutlookItem,
    *,
    kind: str,
    content: dict[str, Any] | None = None,
    master: OutlookItem | None = None,
    original: datetime | None = None,
) -> dict[str, Any]:
    """The event as Graph answers it: ``kind`` seriesMaster, singleInstance, occurrence or exception."""
    stored = {**DEFAULTS, **(content if content is not None else item.document)}
    zone_name = prefer_zone(call)
    all_day = bool(stored["isAllDay"])
    document: dict[str, Any] = {
        **outlook_fields(item),
        **{k: v for k, v in stored.items() if k not in ("singleValueExtendedProperties", "recurrence")},
        "start": _when(stored["start"], zone_name, all_day),
        "end": _when(stored["end"], zone_name, all_day),
        "originalStartTimeZone": stored["start"]["timeZone"],
        "originalEndTimeZone": stored["end"]["timeZone"],
        "organizer": stored.get("organizer")
        or {"emailAddress": {"name": call.mailbox.display_name, "address": call.mailbox.address}},
        "type": kind,
        "recurrence": stored["recurrence"] if kind == "seriesMaster" else None,
        "seriesMasterId": master.id if master is not None else None,
        "iCalUId": "040000008200E00074C5B7101A82E008" + (master or item).id.encode().hex()[:64].upper(),
    }
    if original is not None:
        document["originalStart"] = original.strftime("%Y-%m-%dT%H:%M:%SZ")
    wanted = expanded(call)
    if wanted:
        document["singleValueExtendedProperties"] = expanded_properties(stored, wanted)
    return document


def _occurrence(call: Call, master: OutlookItem, start: datetime) -> dict[str, Any]:
    """A series' instance at ``start`` (its original start): an exception or a plain occurrence."""
    if start in master.exceptions:
        exception = master.exceptions[start]
        return event_document(call, exception, kind="exception", master=master, original=start)
    length = recurrence.duration(master.document)
    zone_name = master.document["start"]["timeZone"]
    at = start.astimezone(recurrence.zone(zone_name))
    content = {
        **master.document,
        "start": {"dateTime": at.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": zone_name},
        "end": {
            "dateTime": (at + length)
            .astimezone(recurrence.zone(master.document["end"]["timeZone"]))
            .strftime("%Y-%m-%dT%H:%M:%S"),
            "timeZone": master.document["end"]["timeZone"],
        },
    }
    occurrence = copy.copy(master)
    occurrence.id = master.occurrence_ids.setdefault(start, new_id(b"\x06"))
    return event_document(call, occurrence, kind="occurrence", content=content, master=master, original=start)


def instances(call: Call, master: OutlookItem, window: tuple[datetime, datetime]) -> list[dict[str, Any]]:
    begin, end = window
    return [
        _occurrence(call, master, start)
        for start in recurrence.starts(master.document, end)
        if start >= begin and start not in master.cancelled
    ]


def _single(item: OutlookItem) -> bool:
    return not item.is_series


def _in_window(item: OutlookItem, window: tuple[datetime, datetime]) -> bool:
    begin, end = window
    return recurrence.local(item.document["start"]) < end and recurrence.local(item.document["end"]) > begin


# -- handlers


def _events(call: Call) -> dict[str, OutlookItem]:
    return {i.id: i for i in call.mailbox.outlook.in_collection(EVENTS)}


def _found(call: Call, key: str) -> tuple[OutlookItem, OutlookItem | None, datetime | None]:
    """(the item, its master, its original start): a master or single event is its own item."""
    events = _events(call)
    if key in events:
        return events[key], None, None
    located = call.mailbox.outlook.master_of(key)
    if located is None or located[1] in located[0].cancelled:
        if not key.startswith("AAMk"):
            raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        raise not_found()
    master, start = located
    return master.exceptions.get(start, master), master, start


def get_event(call: Call) -> Reply:
    item, master, start = _found(call, call.rest[1])
    if master is not None and start is not None:
        document = _occurrence(call, master, start)
    else:
        kind = "seriesMaster" if item.is_series else "singleInstance"
        document = event_document(call, item, kind=kind)
    body = {"@odata.context": call.context("events/$entity"), **document}
    return Reply.of_json(200, body, lambda d: strict("event", d))


def list_events(call: Call) -> Reply:
    events = call.mailbox.outlook.in_collection(EVENTS)
    value = call.request.query.get("$filter")
    if value is not None and TYPE_FILTER.fullmatch(value):
        events = [e for e in events if e.is_series]
    elif value is not None:
        wanted = extended_filter(call)
        assert wanted is not None
        events = [e for e in events if has_property(e.document, *wanted)]
    count = top(call)
    documents = [
        event_document(call, e, kind="seriesMaster" if e.is_series else "singleInstance") for e in events
    ]
    if len(documents) > count:
        raise not_implemented(call, "paging of events")
    body = {"@odata.context": call.context("events"), "value": documents}
    return Reply.of_json(200, body, lambda d: strict_collection("event", d))


def _checked(call: Call) -> dict[str, Any]:
    body = call.server.checked_body(call.request, lambda d: strict("event", d, request=True))
    refused = sorted(k for k in body if k in READ_ONLY)
    if refused:
        call.server.record(f"{call.request.method} {call.request.path}: read-only {refused} written")
        raise bad_request(f"The property '{refused[0]}' is read-only.")
    return body


def create_event(call: Call) -> Reply:
    body = _checked(call)
    if "start" not in body or "end" not in body:
        raise bad_request("An event needs a start and an end.")
    item = call.mailbox.outlook.add(EVENTS, body)
    kind = "seriesMaster" if item.is_series else "singleInstance"
    document = {"@odata.context": call.context("events/$entity"), **event_document(call, item, kind=kind)}
    return Reply.of_json(201, document, lambda d: strict("event", d))


def update_event(call: Call) -> Reply:
    body = _checked(call)
    item, master, start = _found(call, call.rest[1])
    check_if_match(call, item)
    store = call.mailbox.outlook
    if master is None:
        if "recurrence" in body and body["recurrence"] != item.document.get("recurrence"):
            # A new pattern drops the series' exceptions and cancellations, as Outlook does.
            item.exceptions.clear()
            item.cancelled.clear()
        item.document = patch(item.document, body)
        store.touch(item)
        return get_event(call)
    assert start is not None
    if item is master:  # an occurrence becomes an exception
        exception = OutlookItem(
            master.occurrence_ids.setdefault(start, new_id(b"\x06")), EVENTS, {}, master.seq
        )
        exception.document = patch({k: v for k, v in master.document.items() if k != "recurrence"}, body)
        master.exceptions[start] = exception
    else:
        item.document = patch(item.document, body)
        store.touch(item)
    store.touch(master)
    return get_event(call)


def delete_event(call: Call) -> Reply:
    item, master, start = _found(call, call.rest[1])
    check_if_match(call, item)
    store = call.mailbox.outlook
    if master is None:
        shown = (*item.occurrence_ids.values(), *(e.id for e in item.exceptions.values()))
        store.remove(item, tuple(shown) if item.is_series else (item.id,))
        return Reply(204)
    assert start is not None
    master.exceptions.pop(start, None)
    master.cancelled.add(start)
    store.remove_instance(master.occurrence_ids.get(start) or item.id)
    store.touch(master)
    return Reply(204)


def _window(call: Call) -> tuple[datetime, datetime]:
    try:
        begin = datetime.fromisoformat(call.request.query["startDateTime"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(call.request.query["endDateTime"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise bad_request(
            "This request requires a time window specified by the query string parameters StartDateTime "
            "and EndDateTime."
        ) from None
    if begin.tzinfo is None:
        begin, end = begin.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
    return begin, end


def list_instances(call: Call) -> Reply:
    item, master, _ = _found(call, call.rest[1])
    if master is not None:
        raise bad_request("Instances are read from the series master.")
    window = _window(call)
    documents = instances(call, item, window) if item.is_series else []
    body = {"@odata.context": call.context(f"events('{item.id}')/instances"), "value": documents}
    return Reply.of_json(200, body, lambda d: strict_collection("event", d))


# -- calendarView/delta


def _instance_ids(call: Call, item: OutlookItem, window: tuple[datetime, datetime]) -> list[str]:
    if item.is_series:
        return [str(d["id"]) for d in instances(call, item, window)]
    return [item.id] if _in_window(item, window) else []


def _everything(call: Call, state: ItemDeltaState) -> list[str | Removal]:
    assert state.window is not None
    found: list[str | Removal] = []
    for item in call.mailbox.outlook.in_collection(EVENTS):
        found += _instance_ids(call, item, state.window)
    return found


def _since(call: Call, state: ItemDeltaState) -> list[str | Removal]:
    assert state.window is not None
    found: list[str | Removal] = []
    for change in call.mailbox.outlook.changed(EVENTS, state.watermark):
        if isinstance(change, Removal):
            found.append(change)
        else:  # a changed series: each of its instances changed with it
            found += _instance_ids(call, change, state.window)
    return found


def _render(call: Call, key: str, state: ItemDeltaState) -> dict[str, Any] | None:
    try:
        item, master, start = _found(call, key)
    except GraphError:
        return None
    if master is not None and start is not None:
        return _occurrence(call, master, start)
    return event_document(call, item, kind="singleInstance")


CALENDAR_VIEW = DeltaKind(
    "event", "calendarView/delta", _everything, _since, _render, lambda removal: removal.instance_ids
)


def calendar_view_delta(call: Call) -> Reply:
    query = call.request.query
    window = None if ("$skiptoken" in query or "$deltatoken" in query) else _window(call)
    return item_delta(call, CALENDAR_VIEW, window)
