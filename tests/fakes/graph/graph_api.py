"""Microsoft Graph v1.0 mail resources under ``/v1.0/users/{id | userPrincipalName}``.

What is served: the user; mail folders by id or well-known name and their child
folders (``$top`` paging); messages (list with ``$filter`` on internetMessageId,
``$select``, ``$top``/``$skip``, ``$orderby`` on receivedDateTime; get, delete,
``$value``, move, create from MIME or JSON); ``messages/delta`` per folder with
``Prefer: odata.maxpagesize``; ``sendMail`` with MIME or JSON;
``$expand=singleValueExtendedProperties($filter=id eq '...')``.

A query option the test server does not implement is answered 501 and recorded
as a violation: the test fails, rather than the server pretending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jwt

from tests.fakes.graph.calls import Call, Handler
from tests.fakes.graph.delta import delta
from tests.fakes.graph.entra import App
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

if TYPE_CHECKING:
    from tests.fakes.graph.server import GraphServer

READ = ("Mail.Read", "Mail.ReadWrite")
WRITE = ("Mail.ReadWrite",)
SEND = ("Mail.Send",)
DIRECTORY = ("User.Read.All", "User.ReadBasic.All", "Directory.Read.All", "User.ReadWrite.All")


def route(method: str, rest: list[str]) -> tuple[Handler, tuple[str, ...]] | None:
    """The handler for a path below the user, and the roles that may call it (any one of them)."""
    shape = [s if s in _KEYWORDS else "*" for s in rest]
    if shape[:3] == ["mailFolders", "*", "messages"] and len(shape) > 3 and shape[3] != "delta":
        shape = shape[2:]  # mailFolders/{id}/messages/{id}/... is messages/{id}/...
    return _ROUTES.get((method, tuple(shape)))


def call(
    server: GraphServer, request: Request, app: App, mailbox: Mailbox, user: str, rest: list[str]
) -> Reply:
    found = route(request.method, rest)
    assert found is not None  # the server asked route() first
    handler, _ = found
    with server.lock:
        return handler(Call(server, request, app, mailbox, user, rest))


# -- errors

_KEYWORDS = {"mailFolders", "childFolders", "messages", "delta", "$value", "move", "sendMail"}
_ROUTES: dict[tuple[str, tuple[str, ...]], tuple[Handler, tuple[str, ...]]] = {
    ("GET", ()): (get_user, DIRECTORY),
    ("GET", ("mailFolders",)): (list_folders, READ),
    ("GET", ("mailFolders", "*")): (get_folder, READ),
    ("GET", ("mailFolders", "*", "childFolders")): (list_folders, READ),
    ("POST", ("mailFolders", "*", "childFolders")): (create_child_folder, WRITE),
    ("GET", ("mailFolders", "*", "messages")): (list_messages, READ),
    ("POST", ("mailFolders", "*", "messages")): (create_message, WRITE),
    ("GET", ("mailFolders", "*", "messages", "delta")): (delta, READ),
    ("GET", ("messages",)): (list_messages, READ),
    ("POST", ("messages",)): (create_message, WRITE),
    ("GET", ("messages", "*")): (get_message, READ),
    ("DELETE", ("messages", "*")): (delete_message, WRITE),
    ("GET", ("messages", "*", "$value")): (get_value, READ),
    ("POST", ("messages", "*", "move")): (move_message, WRITE),
    ("POST", ("sendMail",)): (send_mail, SEND),
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
