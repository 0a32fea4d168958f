"""Finding a user's calendars and address book: RFC 6764's ``/.well-known/caldav`` and
``/carddav``, the principal (``current-user-principal``), its ``calendar-home-set`` /
``addressbook-home-set`` (RFC 4791, 6352), and the collections there.

Which collection serves which entity: appointments, the calendar that holds VEVENTs
named like "Calendar" (else the first, by href); tasks, that same calendar when it
takes VTODOs too, else one named like "Tasks", else the first that takes VTODOs;
contacts, the address book named like "Contacts" (else the first).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from sync.connectors.dav_http import (
    CALDAV,
    CALSERVER,
    CARDDAV,
    DAV,
    SERVICE,
    DavHttp,
    Entry,
    entries,
    path_of,
    propfind_body,
)
from sync.errors import PermanentError

CALENDAR_NAMES = ("calendar", "default", "personal", "home")
TASK_NAMES = ("tasks", "todo", "todos", "reminders")
ADDRESS_BOOK_NAMES = ("contacts", "addressbook", "address book", "default", "card")
# A well-known URL or principal a server does not serve: try the profile's URL itself.
NOT_THERE = frozenset({400, 404, 405, 501})


@dataclass(frozen=True)
class Collection:
    href: str
    name: str
    # VEVENT / VTODO for a calendar (all, when the server does not say); empty for an address book.
    components: frozenset[str]
    # Whether the server offers the sync-collection REPORT (RFC 6578) here.
    sync_reports: bool
    is_address_book: bool


def find_collection(http: DavHttp, entity: str) -> Collection:
    if entity == "contact":
        books = [
            c for c in _collections(http, "carddav", f"{CARDDAV}addressbook-home-set") if c.is_address_book
        ]
        return _named(books, ADDRESS_BOOK_NAMES) or _missing(http, "an address book", "contacts")
    calendars = [
        c for c in _collections(http, "caldav", f"{CALDAV}calendar-home-set") if not c.is_address_book
    ]
    events = [c for c in calendars if "VEVENT" in c.components]
    default = _named(events, CALENDAR_NAMES)
    if entity == "appointment":
        return default or _missing(http, "a calendar for events", "appointments")
    if entity == "task":
        if default is not None and "VTODO" in default.components:
            return default
        todos = [c for c in calendars if "VTODO" in c.components]
        return _named(todos, TASK_NAMES) or _missing(http, "a calendar for tasks", "tasks")
    raise ValueError(f"unknown entity {entity!r}")


def _named(collections: list[Collection], names: tuple[str, ...]) -> Collection | None:
    ordered = sorted(collections, key=lambda c: c.href)
    for collection in ordered:
        last = collection.href.rstrip("/").rsplit("/", 1)[-1].lower()
        if collection.name.lower() in names or last in names:
            return collection
    return ordered[0] if ordered else None


def _missing(http: DavHttp, what: str, entity: str) -> Collection:
    raise PermanentError(
        f"The {SERVICE} server at {http.root} has no {what} for {http.settings.username}, so {entity} "
        "cannot sync. Create one for the user on the server (any calendar or address book client "
        "can), or turn off the sync of this entity for the mailbox.",
        code="collection_missing",
    )


def _collections(http: DavHttp, service: str, home_set: str) -> list[Collection]:
    principal = _principal(http, service)
    home = _href_property(http, principal, home_set) or principal
    body = propfind_body(
        f"{DAV}resourcetype",
        f"{DAV}displayname",
        f"{CALDAV}supported-calendar-component-set",
        f"{DAV}supported-report-set",
        f"{CALSERVER}getctag",
    )
    found = http.multistatus("PROPFIND", home, body, depth="1")
    return [c for c in (_collection(e) for e in found if e.status == httpx.codes.OK) if c is not None]


def _principal(http: DavHttp, service: str) -> str:
    body = propfind_body(f"{DAV}current-user-principal")
    for start in (f"/.well-known/{service}", http.root):
        response = http.request("PROPFIND", start, body=body, depth="0", allow=NOT_THERE, follow=True)
        if response.status_code in NOT_THERE:
            continue
        href = _first_href(http, response, f"{DAV}current-user-principal")
        if href:
            return urljoin(str(response.url), href)
    raise PermanentError(
        f"The server at {http.root} does not name the signed-in user's principal "
        "(no CalDAV / CardDAV current-user-principal). Correct the DAV URL in the email server "
        "profile: the server's address (https://dav.example.com/) or the user's home on it.",
        code="dav_not_found",
    )


def _href_property(http: DavHttp, href: str, name: str) -> str | None:
    response = http.request("PROPFIND", href, body=propfind_body(name), depth="0", allow=NOT_THERE)
    if response.status_code in NOT_THERE:
        return None
    found = _first_href(http, response, name)
    return urljoin(str(response.url), found) if found else None


def _first_href(http: DavHttp, response: httpx.Response, name: str) -> str | None:
    for entry in entries(response.content, http.root):
        element = entry.element(name)
        if element is not None:
            href: str | None = element.findtext(f"{DAV}href")
            if href:
                return href.strip()
    return None


def _collection(entry: Entry) -> Collection | None:
    kind = entry.element(f"{DAV}resourcetype")
    if kind is None:
        return None
    is_calendar = kind.find(f"{CALDAV}calendar") is not None
    is_book = kind.find(f"{CARDDAV}addressbook") is not None
    if not (is_calendar or is_book):
        return None
    declared = entry.element(f"{CALDAV}supported-calendar-component-set")
    components = (
        frozenset(c.get("name", "").upper() for c in declared) if declared is not None else frozenset()
    )
    if is_calendar and not components:
        components = frozenset({"VEVENT", "VTODO"})  # RFC 4791: absent means any
    reports = entry.element(f"{DAV}supported-report-set")
    sync_reports = reports is not None and reports.find(f".//{DAV}sync-collection") is not None
    return Collection(
        href=path_of(entry.href if entry.href.endswith("/") else entry.href + "/"),
        name=entry.text(f"{DAV}displayname") or "",
        components=components,
        sync_reports=sync_reports,
        is_address_book=is_book,
    )
