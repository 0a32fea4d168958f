"""CalDAV / CardDAV connector: a mailbox's appointments, tasks and contacts on any DAV
server (for IMAP/SMTP profiles), implementing :class:`sync.connectors.interfaces.ActItems`.

``settings.url`` is the server (``https://dav.example.com/``); the user's calendars and
address book are found from there (``dav_discovery``). Changes come from WebDAV
sync-collection with the sync-token as the cursor, or from the ctag and an ETag listing
where the server has no sync tokens (``dav_sync``); bodies in batches through
calendar-multiget / addressbook-multiget. Writes are conditional: PUT with
``If-None-Match: *`` to create (the item's UID names the resource), PUT and DELETE with
``If-Match`` the version read. Everything goes through one httpx client per session
(``dav_http``): the same WebDAV requests serve both protocols, and the caldav library
would add a second HTTP stack whose errors hide the status (412 against 403 against
401) that the engine's decisions hang on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx

from sync.connectors.base import ServerSettings
from sync.connectors.dav_discovery import Collection, find_collection
from sync.connectors.dav_http import (
    CALDAV,
    CARDDAV,
    DAV,
    NAMESPACES,
    SERVICE,
    DavHttp,
    entries,
    item_changed,
    propfind_body,
)
from sync.connectors.dav_sync import Found, changes_since
from sync.connectors.interfaces import ENTITIES, Item, ItemChange, ItemRef
from sync.connectors.items import (
    Card,
    Event,
    Todo,
    card_to_vcard,
    event_to_ical,
    ical_to_event,
    ical_to_todo,
    todo_to_ical,
    vcard_to_card,
)
from sync.errors import MessageError

# Bodies fetched per multiget REPORT.
BATCH = 100
# A UID that is safe as a resource name as it is; any other is hashed (RFC 4791 lets the
# client pick the name; the UID inside stays what it is).
SAFE_NAME = re.compile(r"[A-Za-z0-9@._+-]{1,200}")
# PUT refusals that are about the item, not the user's rights (CalDAV / CardDAV preconditions).
PUT_REFUSALS = frozenset({400, 403, 409, 415, 422})


class DavItems:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._http = DavHttp(settings)
        self._collections: dict[str, Collection] = {}
        self._caught_up: dict[str, str] = {}

    def __enter__(self) -> Self:
        self._http.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._http.__exit__(kind, error, tb)

    # -- reading ----------------------------------------------------------------------

    def changes(self, entity: str, cursor: str) -> Iterator[ItemChange]:
        self._caught_up.pop(entity, None)
        collection = self._collection(entity)
        report = changes_since(self._http, collection, cursor)
        # Once the report was read to its end, the last change yielded stands past everything
        # after it too (the other kind's items of a calendar that holds both): its cursor is
        # the report's end, asked for then.
        tail: dict[str, int] = {}

        def cursor_of(index: int) -> str:
            return report.final if tail.get("end") == index else report.cursor_after(index)

        yielded = None
        for start in range(0, len(report.found), BATCH):
            batch = report.found[start : start + BATCH]
            bodies = self._bodies(collection, [f for f in batch if f.etag is not None])
            for index, found in enumerate(batch, start):
                if _kept(entity, found, bodies):
                    yielded = index
                    yield self._change(entity, found, bodies, index, cursor_of)
        if yielded is not None:
            tail["end"] = yielded
        self._caught_up[entity] = report.final

    def caught_up(self, entity: str) -> str | None:
        return self._caught_up.get(entity)

    def _change(
        self,
        entity: str,
        found: Found,
        bodies: dict[str, tuple[str, bytes]],
        index: int,
        cursor_of: Callable[[int], str],
    ) -> ItemChange:
        def after() -> str:
            return cursor_of(index)

        if found.etag is None or found.href not in bodies:
            return ItemChange(found.href, "", None, after)
        etag, data = bodies[found.href]
        try:
            item = _read(entity, data, self.settings.time_zone)
        except MessageError as error:
            return ItemChange(found.href, etag, None, after, unreadable=error)
        return ItemChange(found.href, etag, item, after)

    def _bodies(self, collection: Collection, wanted: list[Found]) -> dict[str, tuple[str, bytes]]:
        """href -> (etag, body) of what the server still holds of ``wanted``."""
        if not wanted:
            return {}
        if collection.is_address_book:
            root, data = f"{CARDDAV}address-data", "CR:addressbook-multiget"
        else:
            root, data = f"{CALDAV}calendar-data", "C:calendar-multiget"
        hrefs = "".join(f"<D:href>{escape(quote(f.href))}</D:href>" for f in wanted)
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><{data} {NAMESPACES}><D:prop><D:getetag/>'
            f"<{root.replace(CARDDAV, 'CR:').replace(CALDAV, 'C:')}/></D:prop>{hrefs}</{data}>"
        )
        bodies = {}
        for entry in self._http.multistatus("REPORT", collection.href, body, depth="1"):
            if entry.status != httpx.codes.NOT_FOUND:
                # Anything but "gone" is kept; an empty body reads as unreadable, not deleted.
                text = entry.text(root) or ""
                bodies[entry.href] = (entry.text(f"{DAV}getetag") or "", text.encode())
        return bodies

    # -- writing ----------------------------------------------------------------------

    def create(self, entity: str, item: Item) -> ItemRef:
        collection = self._collection(entity)
        href = f"{collection.href}{_resource_name(item.uid)}{_extension(entity)}"
        response = self._put(entity, href, item, {"If-None-Match": "*"})
        if response.status_code == httpx.codes.PRECONDITION_FAILED:
            raise _exists(item.uid, href)
        return ItemRef(href, self._etag_of(href, response))

    def update(self, entity: str, ref: ItemRef, item: Item) -> ItemRef:
        self._collection(entity)
        response = self._put(entity, ref.item_id, item, {"If-Match": ref.version})
        if response.status_code in (httpx.codes.PRECONDITION_FAILED, httpx.codes.NOT_FOUND):
            raise item_changed(ref.item_id)
        return ItemRef(ref.item_id, self._etag_of(ref.item_id, response))

    def delete(self, entity: str, ref: ItemRef) -> None:
        self._collection(entity)
        allow = frozenset({httpx.codes.NOT_FOUND, httpx.codes.PRECONDITION_FAILED})
        response = self._http.request("DELETE", ref.item_id, headers={"If-Match": ref.version}, allow=allow)
        if response.status_code == httpx.codes.PRECONDITION_FAILED and self._exists(ref.item_id):
            raise item_changed(ref.item_id)

    def _put(self, entity: str, href: str, item: Item, condition: dict[str, str]) -> httpx.Response:
        body, content_type = _write(entity, item)
        allow = PUT_REFUSALS | {httpx.codes.PRECONDITION_FAILED, httpx.codes.NOT_FOUND}
        response = self._http.request(
            "PUT", href, body=body, headers={"Content-Type": content_type, **condition}, allow=allow
        )
        if response.status_code in PUT_REFUSALS:
            raise self._refused(response, item, href)
        return response

    def _refused(self, response: httpx.Response, item: Item, href: str) -> Exception:
        text = response.text
        if "uid-conflict" in text:
            return _exists(item.uid, href)
        if response.status_code == httpx.codes.FORBIDDEN and "<" not in text:
            # A plain 403 is about the user's rights; a precondition comes as an XML error body.
            return self._http.failure(response, "PUT", self._http.url(href))
        return MessageError(
            f"The {SERVICE} server refused the item {item.uid!r} ({response.status_code}: "
            f"{text.strip()[:200]}). The item stays unsynced; correct it in the CRM or on the server.",
            code="item_refused",
        )

    def _etag_of(self, href: str, response: httpx.Response) -> str:
        # A server that changed what it stored may answer without an ETag (RFC 4791 5.3.4).
        etag = response.headers.get("ETag")
        if etag and not etag.startswith("W/"):
            return str(etag)
        for entry in self._http.multistatus("PROPFIND", href, propfind_body(f"{DAV}getetag"), depth="0"):
            return entry.text(f"{DAV}getetag") or ""
        return ""

    def _exists(self, href: str) -> bool:
        body = propfind_body(f"{DAV}getetag")
        response = self._http.request("PROPFIND", href, body=body, depth="0", allow=frozenset({404}))
        return response.status_code != httpx.codes.NOT_FOUND and bool(
            entries(response.content, self._http.root)
        )

    def _collection(self, entity: str) -> Collection:
        if entity not in ENTITIES:
            raise ValueError(f"unknown entity {entity!r}; one of {ENTITIES}")
        if entity not in self._collections:
            self._collections[entity] = find_collection(self._http, entity)
        return self._collections[entity]


def _exists(uid: str, href: str) -> MessageError:
    return MessageError(
        f"The server already holds an item with the UID {uid!r} ({href}). serversync links to it "
        "instead of creating another.",
        code="item_exists",
    )


def _resource_name(uid: str) -> str:
    if SAFE_NAME.fullmatch(uid) and uid not in (".", ".."):
        return uid
    return hashlib.sha256(uid.encode()).hexdigest()


def _extension(entity: str) -> str:
    return ".vcf" if entity == "contact" else ".ics"


def _kept(entity: str, found: Found, bodies: dict[str, tuple[str, bytes]]) -> bool:
    """False for the other kind of a calendar that holds events and tasks."""
    body = bodies.get(found.href)
    return body is None or not body[1].strip() or _holds(entity, body[1])


def _holds(entity: str, data: bytes) -> bool:
    if entity == "contact":
        return True
    marker = b"BEGIN:VEVENT" if entity == "appointment" else b"BEGIN:VTODO"
    return marker in data.upper()


def _read(entity: str, data: bytes, zone: str) -> Item:
    """``zone``: the user's, for all-day dates and floating times (they carry none of their own)."""
    if entity == "appointment":
        return ical_to_event(data, floating_zone=zone)
    if entity == "task":
        return ical_to_todo(data, floating_zone=zone)
    return vcard_to_card(data)


def _write(entity: str, item: Item) -> tuple[bytes, str]:
    if entity == "appointment" and isinstance(item, Event):
        return event_to_ical(item), "text/calendar; charset=utf-8"
    if entity == "task" and isinstance(item, Todo):
        return todo_to_ical(item), "text/calendar; charset=utf-8"
    if entity == "contact" and isinstance(item, Card):
        return card_to_vcard(item), "text/vcard; charset=utf-8"
    raise ValueError(f"a {type(item).__name__} is not a {entity}")


def check_act(settings: ServerSettings) -> None:
    """Sign in and find the calendar, task list and address book the mailbox would sync,
    raising what is missing (test & enable: the registry's check_act for IMAP/SMTP profiles)."""
    with DavItems(settings) as items:
        for entity in ENTITIES:
            items._collection(entity)
