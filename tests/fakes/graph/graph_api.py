"""Microsoft Graph v1.0 mail resources under ``/v1.0/users/{id | userPrincipalName}``.

What is served: the user; mail folders by id or well-known name and their child
folders (``$top`` paging; created at the top of the mailbox or under a folder);
messages (list with ``$filter`` on internetMessageId, ``$select``,
``$top``/``$skip``, ``$orderby`` on receivedDateTime; get, delete, ``$value``,
move, create from MIME or JSON); ``messages/delta`` per folder with
``Prefer: odata.maxpagesize``; ``sendMail`` with MIME or JSON;
``$expand=singleValueExtendedProperties($filter=id eq '...')``; the default calendar
(``act.py``) and its events with their instances and ``calendarView/delta``
(``events.py``); contacts and ``contacts/delta`` (``contacts.py``); To Do task lists,
tasks and ``tasks/delta`` (``todo.py``). Writing an item needs the ReadWrite permission.

A query option the test server does not implement is answered 501 and recorded
as a violation: the test fails, rather than the server pretending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt

from tests.fakes.graph.act import get_calendar
from tests.fakes.graph.calls import Call, Handler, not_implemented
from tests.fakes.graph.contacts import (
    contacts_delta,
    create_contact,
    delete_contact,
    get_contact,
    list_contacts,
    update_contact,
)
from tests.fakes.graph.delta import delta
from tests.fakes.graph.entra import App
from tests.fakes.graph.events import (
    calendar_view_delta,
    create_event,
    delete_event,
    get_event,
    list_events,
    list_instances,
    update_event,
)
from tests.fakes.graph.folders import create_child_folder, get_folder, get_user, list_folders
from tests.fakes.graph.http import Reply, Request
from tests.fakes.graph.mailboxes import Mailbox
from tests.fakes.graph.messages import (
    create_message,
    delete_message,
    get_message,
    get_value,
    list_messages,
    move_message,
)
from tests.fakes.graph.sending import send_mail
from tests.fakes.graph.todo import (
    create_task,
    delete_task,
    get_task,
    list_task_lists,
    list_tasks,
    tasks_delta,
    update_task,
)

if TYPE_CHECKING:
    from tests.fakes.graph.server import GraphServer

READ = ("Mail.Read", "Mail.ReadWrite")
WRITE = ("Mail.ReadWrite",)
SEND = ("Mail.Send",)
DIRECTORY = ("User.Read.All", "User.ReadBasic.All", "Directory.Read.All", "User.ReadWrite.All")
CALENDARS = ("Calendars.Read", "Calendars.ReadBasic", "Calendars.ReadWrite")
CALENDARS_WRITE = ("Calendars.ReadWrite",)
CONTACTS = ("Contacts.Read", "Contacts.ReadWrite")
CONTACTS_WRITE = ("Contacts.ReadWrite",)
TASKS = ("Tasks.Read.All", "Tasks.ReadWrite.All")
TASKS_WRITE = ("Tasks.ReadWrite.All",)


@dataclass(frozen=True)
class Route:
    handler: Handler
    roles: tuple[str, ...]  # any one of them may call it
    options: frozenset[str] = frozenset()  # the system query options served ($select...)


def canonical(segments: list[str]) -> list[str]:
    """Graph reads its path keywords without regard to case ("mailfolders")."""
    return [_KEYWORDS.get(s.lower(), s) for s in segments]


def route(method: str, rest: list[str]) -> Route | None:
    """The route for a path below the user (keywords as ``canonical`` spells them)."""
    shape = [s if s in _KEYWORDS.values() else "*" for s in rest]
    if shape[:3] == ["mailFolders", "*", "messages"] and len(shape) > 3 and shape[3] != "delta":
        shape = shape[2:]  # mailFolders/{id}/messages/{id}/... is messages/{id}/...
    return _ROUTES.get((method, tuple(shape)))


def call(
    server: GraphServer, request: Request, app: App, mailbox: Mailbox, user: str, rest: list[str]
) -> Reply:
    found = route(request.method, rest)
    assert found is not None  # the server asked route() first
    call = Call(server, request, app, mailbox, user, rest)
    unserved = sorted(k for k in request.query if k.startswith("$") and k not in found.options)
    if unserved:
        where = "/".join(rest) or "the user"
        raise not_implemented(call, f"{', '.join(unserved)} on {request.method} {where}")
    with server.lock:
        return found.handler(call)


_KEYWORDS = {
    k.lower(): k
    for k in (
        "mailFolders",
        "childFolders",
        "messages",
        "delta",
        "$value",
        "move",
        "sendMail",
        "calendar",
        "contacts",
        "todo",
        "lists",
        "events",
        "calendarView",
        "instances",
        "tasks",
    )
}
_FOLDERS = frozenset({"$select", "$top", "$skip"})
_LIST = frozenset({"$select", "$filter", "$top", "$skip", "$expand", "$orderby"})
_DELTA = frozenset({"$select", "$expand", "$skiptoken", "$deltatoken"})
_ONE = frozenset({"$select", "$expand"})
_ITEM_DELTA = frozenset({"$skiptoken", "$deltatoken"})
_ROUTES: dict[tuple[str, tuple[str, ...]], Route] = {
    ("GET", ()): Route(get_user, DIRECTORY),
    ("GET", ("mailFolders",)): Route(list_folders, READ, _FOLDERS),
    ("POST", ("mailFolders",)): Route(create_child_folder, WRITE),
    ("GET", ("mailFolders", "*")): Route(get_folder, READ, frozenset({"$select"})),
    ("GET", ("mailFolders", "*", "childFolders")): Route(list_folders, READ, _FOLDERS),
    ("POST", ("mailFolders", "*", "childFolders")): Route(create_child_folder, WRITE),
    ("GET", ("mailFolders", "*", "messages")): Route(list_messages, READ, _LIST),
    ("POST", ("mailFolders", "*", "messages")): Route(create_message, WRITE),
    ("GET", ("mailFolders", "*", "messages", "delta")): Route(delta, READ, _DELTA),
    ("GET", ("messages",)): Route(list_messages, READ, _LIST),
    ("POST", ("messages",)): Route(create_message, WRITE),
    ("GET", ("messages", "*")): Route(get_message, READ, _ONE),
    ("DELETE", ("messages", "*")): Route(delete_message, WRITE),
    ("GET", ("messages", "*", "$value")): Route(get_value, READ),
    ("POST", ("messages", "*", "move")): Route(move_message, WRITE),
    ("POST", ("sendMail",)): Route(send_mail, SEND),
    ("GET", ("calendar",)): Route(get_calendar, CALENDARS),
    ("GET", ("events",)): Route(list_events, CALENDARS, frozenset({"$filter", "$top", "$expand"})),
    ("POST", ("events",)): Route(create_event, CALENDARS_WRITE),
    ("GET", ("events", "*")): Route(get_event, CALENDARS, frozenset({"$expand"})),
    ("PATCH", ("events", "*")): Route(update_event, CALENDARS_WRITE),
    ("DELETE", ("events", "*")): Route(delete_event, CALENDARS_WRITE),
    ("GET", ("events", "*", "instances")): Route(list_instances, CALENDARS),
    ("GET", ("calendarView", "delta")): Route(calendar_view_delta, CALENDARS, _ITEM_DELTA),
    ("GET", ("contacts",)): Route(list_contacts, CONTACTS, frozenset({"$top", "$filter", "$expand"})),
    ("POST", ("contacts",)): Route(create_contact, CONTACTS_WRITE),
    ("GET", ("contacts", "*")): Route(get_contact, CONTACTS, frozenset({"$expand"})),
    ("PATCH", ("contacts", "*")): Route(update_contact, CONTACTS_WRITE),
    ("DELETE", ("contacts", "*")): Route(delete_contact, CONTACTS_WRITE),
    ("GET", ("contacts", "delta")): Route(contacts_delta, CONTACTS, _ITEM_DELTA),
    ("GET", ("todo", "lists")): Route(list_task_lists, TASKS, frozenset({"$top"})),
    ("GET", ("todo", "lists", "*", "tasks")): Route(list_tasks, TASKS, frozenset({"$top", "$expand"})),
    ("POST", ("todo", "lists", "*", "tasks")): Route(create_task, TASKS_WRITE),
    ("GET", ("todo", "lists", "*", "tasks", "*")): Route(get_task, TASKS, frozenset({"$expand"})),
    ("PATCH", ("todo", "lists", "*", "tasks", "*")): Route(update_task, TASKS_WRITE),
    ("DELETE", ("todo", "lists", "*", "tasks", "*")): Route(delete_task, TASKS_WRITE),
    ("GET", ("todo", "lists", "*", "tasks", "delta")): Route(tasks_delta, TASKS, _ITEM_DELTA),
}


def token_error(error: jwt.InvalidTokenError) -> str:
    """Graph's message for a bearer token it does not accept."""
    if isinstance(error, jwt.ExpiredSignatureError):
        return "Lifetime validation failed, the token is expired."
    if isinstance(error, jwt.InvalidAudienceError):
        return "Access token validation failure. Invalid audience."
    if isinstance(error, jwt.DecodeError):
        return "IDX14100: JWT is not well formed, there are no dots (.)."
    return "Access token validation failure."
