"""Appointments, contacts and tasks of an Exchange Online mailbox over Microsoft Graph v1.0
(``ActItems``): the default calendar's events, the default contacts folder, and the
default Microsoft To Do list ("Tasks").

What changed comes from Graph's delta queries (cursors: :mod:`sync.connectors.graph_item_delta`);
each changed item is then read whole (the extended properties, a series' occurrences,
a task's linked resources are not in a delta page). Writes are guarded by the item's
``@odata.etag`` (``If-Match``); 412 means another version is there (``item_changed``).
The mappings: :mod:`graph_events` (+ :mod:`graph_series`, :mod:`graph_recurrence`),
:mod:`graph_contacts`, :mod:`graph_todo`; each says what Graph keeps and what it cannot.

The calendar's window: ``calendarView/delta`` reads instances between two times fixed
when a round starts from nothing (its later rounds keep them). serversync reads from
365 days back to 5 years ahead of that moment; an appointment wholly outside it is not
read (a series is, once one of its occurrences falls inside). The window moves forward:
a round complete and begun more than ``WINDOW_SLIDE`` ago is followed by a new one from
now (its items come again with their versions, which the engine knows; an item left
behind the window is not reported deleted).

Each entity uses its own application permission: ``Calendars.ReadWrite``,
``Contacts.ReadWrite``, ``Tasks.ReadWrite.All``; a refusal names the one missing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from sync.connectors import graph_contacts, graph_events, graph_series, graph_todo
from sync.connectors.base import ServerSettings
from sync.connectors.graph_errors import GRAPH
from sync.connectors.graph_http import GraphClient, GraphRefused
from sync.connectors.graph_item_delta import ItemCursor, Page, decode, pages
from sync.connectors.interfaces import ENTITIES, Item, ItemChange, ItemRef
from sync.connectors.items.data import Card, Event, Todo
from sync.errors import MessageError, PermanentError

PERMISSIONS = {
    "appointment": "Calendars.ReadWrite",
    "contact": "Contacts.ReadWrite",
    "task": "Tasks.ReadWrite.All",
}
WINDOW_BACK = dt.timedelta(days=365)
WINDOW_AHEAD = dt.timedelta(days=5 * 365)
WINDOW_SLIDE = dt.timedelta(days=30)
JSON = {"Content-Type": "application/json"}
WRITE_REFUSED = frozenset({400, 404, 409, 412})
NAMES = {"appointment": "an appointment", "contact": "a contact", "task": "a task"}


class GraphItems:
    """One mailbox's appointments, contacts and tasks (ActItems); one HTTP client per entity,
    each signed in on first use."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._clients: dict[str, GraphClient] = {}
        self._caught_up: dict[str, str] = {}
        self._task_list: str | None = None
        self._window_end = dt.datetime.now(dt.UTC) + WINDOW_AHEAD

    def __enter__(self) -> GraphItems:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, entity: str) -> GraphClient:
        if entity not in ENTITIES:
            raise ValueError(f"unknown entity {entity!r}")
        if entity not in self._clients:
            client = GraphClient(self.settings, permission=PERMISSIONS[entity])
            client.open()
            self._clients[entity] = client
        return self._clients[entity]

    # -- where each entity lives

    def _collection(self, entity: str) -> str:
        if entity == "appointment":
            return "events"
        if entity == "contact":
            return "contacts"
        return f"todo/lists/{quote(self._default_list(), safe='')}/tasks"

    def _default_list(self) -> str:
        if self._task_list is None:
            client = self._client("task")
            page = client.json("GET", client.url("todo/lists"), what="finding the default task list")
            found = [t for t in page.get("value") or [] if t.get("wellknownListName") == "defaultList"]
            if not found:
                raise PermanentError(
                    f"The mailbox {self.settings.mailbox} has no default Microsoft To Do list (Tasks). Open "
                    "Outlook or To Do as the user once, so that Exchange Online creates it, then test again.",
                    code="collection_missing",
                )
            self._task_list = str(found[0]["id"])
        return self._task_list

    def _delta_path(self, entity: str) -> str:
        return "calendarView/delta" if entity == "appointment" else f"{self._collection(entity)}/delta"

    def _first_link(self, entity: str) -> str:
        client = self._client(entity)
        params: dict[str, str] = {}
        if entity == "appointment":
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            params = {"startDateTime": _stamp(now - WINDOW_BACK), "endDateTime": _stamp(now + WINDOW_AHEAD)}
        return str(httpx.URL(client.url(self._delta_path(entity)), params=params))

    # -- changes

    def changes(self, entity: str, cursor: str) -> Iterator[ItemChange]:
        self._caught_up.pop(entity, None)
        client = self._client(entity)
        suffix = "/" + self._delta_path(entity)
        today = dt.datetime.now(dt.UTC).date().isoformat()
        start = ItemCursor(self.settings.mailbox, entity, self._first_link(entity), began=today)
        position = (
            decode(
                cursor, mailbox=self.settings.mailbox, entity=entity, service_url=client.root, suffix=suffix
            )
            or start
        )
        if entity == "appointment" and _window_moves_on(position):
            position = start
        began = position.began or today
        series = set(position.series)
        seen: set[str] = set()
        last = _Position(position)
        for page in pages(client, start.link, position.link, suffix=suffix, what=f"reading {entity} changes"):
            if page.link == start.link:  # read from the start (asked, or the old round is gone)
                series.clear()
                began = today
            found = self._page_changes(entity, page, series, seen)
            after = ItemCursor(
                self.settings.mailbox,
                entity,
                page.next_link or page.delta_link or page.link,
                frozenset(series),
                began,
            )
            if not found:  # nothing stored in between: the last change's cursor may move on
                last.cursor = after
                continue
            for index, (item_id, version, item, unreadable) in enumerate(found):
                at = (
                    after
                    if index == len(found) - 1
                    else ItemCursor(self.settings.mailbox, entity, page.link, frozenset(series), began)
                )
                last = _Position(at)
                yield ItemChange(item_id, version, item, last.encode, unreadable)
        self._caught_up[entity] = last.encode()

    def caught_up(self, entity: str) -> str | None:
        if entity not in ENTITIES:
            raise ValueError(f"unknown entity {entity!r}")
        return self._caught_up.get(entity)

    def _page_changes(
        self, entity: str, page: Page, series: set[str], seen: set[str]
    ) -> list[tuple[str, str, Item | None, MessageError | None]]:
        found: list[tuple[str, str, Item | None, MessageError | None]] = []
        for value in page.changed:
            item_id = str(value.get("seriesMasterId") or value["id"])
            if item_id in seen:
                continue
            seen.add(item_id)
            read = self._read(entity, item_id)
            if read is None:  # gone since the page was made: a later round says so
                continue
            if entity == "appointment" and value.get("seriesMasterId"):
                series.add(item_id)
            found.append(read)
        for item_id in page.removed:
            found.append((item_id, "", None, None))
        if entity == "appointment" and page.removed and series:
            for gone in self._series_gone(series):
                series.discard(gone)
                found.append((gone, "", None, None))
        return found

    def _series_gone(self, known: set[str]) -> list[str]:
        """Of the series read before, those whose master Graph no longer has."""
        client = self._client("appointment")
        page = client.json(
            "GET",
            client.url("events"),
            what="listing the calendar's series",
            params={"$filter": "type eq 'seriesMaster'", "$top": "1000"},
        )
        present = {str(v["id"]) for v in page.get("value") or []}
        return sorted(known - present)

    def _read(self, entity: str, item_id: str) -> tuple[str, str, Item | None, MessageError | None] | None:
        """(id, version, item, why unreadable) of one item; None when it is gone."""
        try:
            document = self._get(entity, item_id)
        except GraphRefused:
            return None
        version = str(document.get("@odata.etag", ""))
        try:
            return item_id, version, self._item(entity, document), None
        except (MessageError, KeyError, TypeError, ValueError) as error:
            return item_id, version, None, _unreadable(entity, item_id, error)

    def _item(self, entity: str, document: dict[str, Any]) -> Item:
        if entity == "appointment":
            return graph_series.read_event(self._client(entity), document, self._window_end)
        if entity == "contact":
            return graph_contacts.from_graph(document)
        return graph_todo.from_graph(document)

    def _get(self, entity: str, item_id: str) -> dict[str, Any]:
        client = self._client(entity)
        if entity == "appointment":
            return graph_series.get_event(client, item_id)
        expand = graph_contacts.EXPAND if entity == "contact" else "linkedResources"
        return client.json(
            "GET",
            client.url(f"{self._collection(entity)}/{quote(item_id, safe='')}"),
            what=f"reading {NAMES[entity]}",
            params={"$expand": expand},
            expect=frozenset({404}),
        )

    # -- writes

    def create(self, entity: str, item: Item) -> ItemRef:
        client = self._client(entity)
        existing = self._find_uid(entity, item.uid)
        if existing is not None:
            raise MessageError(
                f"The mailbox {self.settings.mailbox} already holds {NAMES[entity]} with the UID "
                f"{item.uid!r} (Graph id {existing}).",
                code="item_exists",
            )
        document = self._write(
            entity, "POST", client.url(self._collection(entity)), _body(entity, item, created=True)
        )
        item_id = str(document["id"])
        if isinstance(item, Event) and item.recurrence:
            graph_series.write_occurrences(client, item_id, item, self._window_end)
            return ItemRef(item_id, self._version(entity, item_id))
        return ItemRef(item_id, str(document.get("@odata.etag", "")))

    def update(self, entity: str, ref: ItemRef, item: Item) -> ItemRef:
        client = self._client(entity)
        url = client.url(f"{self._collection(entity)}/{quote(ref.item_id, safe='')}")
        try:
            document = self._write(
                entity, "PATCH", url, _body(entity, item, created=False), version=ref.version
            )
        except GraphRefused as refused:
            raise _changed(entity, ref, refused) from refused
        if isinstance(item, Event) and item.recurrence:
            graph_series.write_occurrences(client, ref.item_id, item, self._window_end)
            return ItemRef(ref.item_id, self._version(entity, ref.item_id))
        return ItemRef(ref.item_id, str(document.get("@odata.etag", "")))

    def delete(self, entity: str, ref: ItemRef) -> None:
        client = self._client(entity)
        url = client.url(f"{self._collection(entity)}/{quote(ref.item_id, safe='')}")
        try:
            client.call(
                "DELETE",
                url,
                what=f"deleting {NAMES[entity]}",
                headers={"If-Match": ref.version},
                expect=frozenset({404, 412}),
            )
        except GraphRefused as refused:
            if refused.found.status == 412:
                raise _changed(entity, ref, refused) from refused

    def _write(
        self, entity: str, method: str, url: str, body: dict[str, Any], *, version: str | None = None
    ) -> dict[str, Any]:
        client = self._client(entity)
        headers = {**JSON, **({"If-Match": version} if version is not None else {})}
        try:
            return _json(client, method, url, headers, body, NAMES[entity])
        except GraphRefused as refused:
            if refused.found.status in (404, 412):
                raise
            raise MessageError(
                f"Exchange Online refused {NAMES[entity]} (HTTP {refused.found.status}: {refused.found.code} "
                f"{refused.found.message}).",
                code="item_refused",
            ) from refused

    def _version(self, entity: str, item_id: str) -> str:
        client = self._client(entity)
        document = client.json(
            "GET",
            client.url(f"{self._collection(entity)}/{quote(item_id, safe='')}"),
            what=f"reading {NAMES[entity]}",
        )
        return str(document.get("@odata.etag", ""))

    def _find_uid(self, entity: str, uid: str) -> str | None:
        """The id of the item holding ``uid``: by $filter on the UID property (events, contacts);
        To Do's linked resources are read through (a task list is not filtered by them)."""
        client = self._client(entity)
        url: str | None = client.url(self._collection(entity))
        if entity == "task":
            params: dict[str, str] | None = {"$expand": "linkedResources", "$top": "100"}
        else:
            escaped = uid.replace("'", "''")
            params = {
                "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{graph_events.UID_PROPERTY}' "
                f"and ep/value eq '{escaped}')",
                "$top": "1",
            }
        while url:
            page = client.json("GET", url, what=f"looking for {NAMES[entity]} by its UID", params=params)
            for value in page.get("value") or []:
                if entity != "task" or graph_todo.uid_of(value) == uid:
                    return str(value["id"])
            following = page.get("@odata.nextLink")
            url, params = (
                (str(following) if following and str(following).startswith(client.root + "/") else None),
                None,
            )
        return None


def _json(
    client: GraphClient, method: str, url: str, headers: dict[str, str], body: dict[str, Any], name: str
) -> dict[str, Any]:
    response = client.call(
        method,
        url,
        what=f"writing {name}",
        headers=headers,
        content=json.dumps(body).encode(),
        expect=WRITE_REFUSED,
    )
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _body(entity: str, item: Item, *, created: bool) -> dict[str, Any]:
    if entity == "appointment" and isinstance(item, Event):
        return graph_events.to_graph(item)
    if entity == "contact" and isinstance(item, Card):
        return graph_contacts.to_graph(item)
    if entity == "task" and isinstance(item, Todo):
        return graph_todo.to_graph(item, created=created)
    raise ValueError(f"a {type(item).__name__} is not a {entity}")


def _changed(entity: str, ref: ItemRef, refused: GraphRefused) -> MessageError:
    return MessageError(
        f"Exchange Online holds another version of {NAMES[entity]} {ref.item_id} than {ref.version} "
        f"({refused.found.status} {refused.found.code}): it changed or was deleted since it was read.",
        code="item_changed",
    )


def _unreadable(entity: str, item_id: str, error: Exception) -> MessageError:
    said = error.message if isinstance(error, MessageError) else f"{type(error).__name__}: {error}"
    return MessageError(
        f"{GRAPH} holds {NAMES[entity]} ({item_id}) serversync cannot read: {said}", code="item_invalid"
    )


@dataclass
class _Position:
    """The cursor after one change: moved on while only empty pages (or pages of items
    already read this round) follow it, so that it ends at the round's delta link."""

    cursor: ItemCursor

    def encode(self) -> str:
        return self.cursor.encode()


def _window_moves_on(position: ItemCursor) -> bool:
    """A complete round whose calendar window was fixed more than WINDOW_SLIDE ago."""
    if not (position.complete and position.began):
        return False
    try:
        began = dt.date.fromisoformat(position.began)
    except ValueError:
        return True
    return dt.datetime.now(dt.UTC).date() - began > WINDOW_SLIDE


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
