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

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jwt

from tests.fakes.graph import metadata, mime
from tests.fakes.graph.entra import App
from tests.fakes.graph.http import GraphError, Reply, Request
from tests.fakes.graph.mailboxes import Folder, Mailbox, Message, Tombstone

if TYPE_CHECKING:
    from tests.fakes.graph.server import GraphServer

READ = ("Mail.Read", "Mail.ReadWrite")
WRITE = ("Mail.ReadWrite",)
SEND = ("Mail.Send",)
DIRECTORY = ("User.Read.All", "User.ReadBasic.All", "Directory.Read.All", "User.ReadWrite.All")
DEFAULT_PAGE = 10
EXPAND = re.compile(r"singleValueExtendedProperties\(\$filter=(.*)\)")
EXPAND_ID = re.compile(r"\s*id\s+eq\s+'([^']*)'\s*")
FILTER = re.compile(r"\s*internetMessageId\s+eq\s+'((?:[^']|'')*)'\s*")
ORDERBY = re.compile(r"\s*receivedDateTime(\s+(asc|desc))?\s*")
ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


@dataclass
class DeltaState:
    """What a ``$skiptoken`` (a page to come) or ``$deltatoken`` (the round's end) stands for."""

    mailbox: str
    folder_id: str
    watermark: int  # the change number the round reads up to
    pending: list[str | Tombstone]  # message ids / removals still to page through
    select: list[str] | None
    expand: list[str]


@dataclass
class Call:
    """One authorized call on one mailbox."""

    server: GraphServer
    request: Request
    app: App
    mailbox: Mailbox
    user_segment: str
    rest: list[str]

    @property
    def base(self) -> str:
        return f"{self.server.url}/v1.0/users/{quote(self.user_segment, safe='@')}"

    def context(self, fragment: str) -> str:
        return f"{self.server.url}/v1.0/$metadata#users('{quote(self.user_segment, safe='@')}')/{fragment}"


Handler = Callable[[Call], Reply]


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


def not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def bad_request(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def not_implemented(call: Call, what: str) -> GraphError:
    call.server.record(
        f"{call.request.method} {call.request.target}: the test server does not implement {what}"
    )
    return GraphError(501, "NotImplemented", f"The Graph test server does not implement {what}.")


# -- look-ups


def folder_of(call: Call, key: str) -> Folder:
    try:
        return call.mailbox.folder(key)
    except KeyError:
        if not key.startswith("AAMk"):
            raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.") from None
        raise not_found() from None


def message_of(call: Call) -> Message:
    index = call.rest.index("messages") + 1
    key = call.rest[index]
    found = call.mailbox.messages.get(key)
    if found is None:
        if not key.startswith("AAMk"):
            raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        raise not_found()
    if call.rest[0] == "mailFolders" and folder_of(call, call.rest[1]).id != found.folder_id:
        raise not_found()
    return found


def selected(call: Call, type_name: str) -> list[str] | None:
    value = call.request.query.get("$select")
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    for name in names:
        if not metadata.selectable(type_name, name):
            call.server.record(f"$select={value}: {type_name} has no property {name!r} in Graph v1.0")
            raise GraphError(
                400,
                "BadRequest",
                "Parsing OData Select and Expand failed: Could not find a property named "
                f"'{name}' on type 'microsoft.graph.{type_name}'.",
            )
    return names


def expanded(call: Call) -> list[str]:
    value = call.request.query.get("$expand")
    if value is None:
        return []
    match = EXPAND.fullmatch(value.strip())
    if match is None:
        raise not_implemented(call, f"$expand={value}")
    ids = [EXPAND_ID.fullmatch(part) for part in re.split(r"\s+or\s+", match.group(1))]
    if not all(ids):
        raise not_implemented(call, f"$expand={value}")
    return [m.group(1) for m in ids if m]


def top(call: Call, default: int = DEFAULT_PAGE) -> int:
    try:
        value = int(call.request.query.get("$top", default))
    except ValueError:
        raise bad_request("Invalid $top value.") from None
    return max(1, min(value, 1000))


def skip(call: Call) -> int:
    try:
        return max(0, int(call.request.query.get("$skip", 0)))
    except ValueError:
        raise bad_request("Invalid $skip value.") from None


def page_link(call: Call, path: str, **options: object) -> str:
    query = {k: v for k, v in call.request.query.items() if not k.startswith("$skip")}
    query.update({k: str(v) for k, v in options.items()})
    return f"{call.base}/{path}?{urlencode(query, quote_via=quote, safe='$')}"


# -- the user


def get_user(call: Call) -> Reply:
    box = call.mailbox
    document: dict[str, Any] = {
        "@odata.context": f"{call.server.url}/v1.0/$metadata#users/$entity",
        "businessPhones": [],
        "displayName": box.display_name,
        "givenName": box.display_name.split(" ")[0],
        "jobTitle": None,
        "mail": box.address,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": None,
        "userPrincipalName": box.address,
        "id": box.user_id,
    }
    return Reply.of_json(200, document, lambda d: metadata.validate("user", d))


# -- folders


def folder_json(box: Mailbox, folder: Folder) -> dict[str, Any]:
    messages = box.in_folder(folder.id)
    return {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "childFolderCount": len(box.children(folder.id)),
        "unreadItemCount": sum(1 for m in messages if not m.is_read),
        "totalItemCount": len(messages),
        "isHidden": False,
    }


def get_folder(call: Call) -> Reply:
    folder = folder_of(call, call.rest[1])
    document = {"@odata.context": call.context("mailFolders/$entity"), **folder_json(call.mailbox, folder)}
    return Reply.of_json(200, document, lambda d: metadata.validate("mailFolder", d))


def list_folders(call: Call) -> Reply:
    parent = folder_of(call, call.rest[1]) if len(call.rest) > 1 else call.mailbox.root
    return _folder_page(call, parent, "/".join(call.rest))


def _folder_page(call: Call, parent: Folder, path: str) -> Reply:
    folders = [folder_json(call.mailbox, f) for f in call.mailbox.children(parent.id)]
    count, start = top(call), skip(call)
    document: dict[str, Any] = {"@odata.context": call.context(path), "value": folders[start : start + count]}
    if start + count < len(folders):
        document["@odata.nextLink"] = page_link(call, path, **{"$top": count, "$skip": start + count})
    return Reply.of_json(200, document, lambda d: metadata.validate_collection("mailFolder", d))


def create_child_folder(call: Call) -> Reply:
    parent = folder_of(call, call.rest[1])
    body = call.server.checked_body(call.request, lambda d: metadata.validate("mailFolder", d, request=True))
    name = str(body.get("displayName") or "")
    if not name:
        raise GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'DisplayName' is empty.")
    if any(f.display_name.lower() == name.lower() for f in call.mailbox.children(parent.id)):
        raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
    folder = call.mailbox.create_folder(parent.id, name)
    document = {"@odata.context": call.context("mailFolders/$entity"), **folder_json(call.mailbox, folder)}
    return Reply.of_json(201, document, lambda d: metadata.validate("mailFolder", d))


# -- messages


def message_document(
    call: Call, message: Message, chosen: list[str] | None, expand: list[str]
) -> dict[str, Any]:
    document = mime.select(mime.message_json(call.mailbox, message, call.server.url), chosen)
    if expand:
        document["singleValueExtendedProperties"] = mime.extended_properties(message, expand)
    return document


def get_message(call: Call) -> Reply:
    message = message_of(call)
    document = {
        "@odata.context": call.context("messages/$entity"),
        **message_document(call, message, selected(call, "message"), expanded(call)),
    }
    return Reply.of_json(200, document, lambda d: metadata.validate("message", d))


def get_value(call: Call) -> Reply:
    """The MIME, as ``Content-Type: text/plain`` (Graph's answer, as its SDK maintainers
    note in microsoftgraph/msgraph-sdk-php#187)."""
    if call.rest[0] == "mailFolders":
        # Documented, but refused: microsoftgraph/microsoft-graph-docs#9364 (2020, open) and
        # msgraph-sdk-python#714 (2024); the message's own path serves it.
        raise GraphError(405, "ErrorInvalidRequest", "The OData request is not supported.")
    message = message_of(call)
    return Reply(200, message.raw, "text/plain")


def delete_message(call: Call) -> Reply:
    """DELETE moves the message to Deleted Items (and deletes it for good from there)."""
    message = message_of(call)
    deleted = call.mailbox.folder("deleteditems")
    if message.folder_id == deleted.id:
        call.mailbox.remove(message)
    else:
        call.mailbox.move(message, deleted.id)
    return Reply(204)


def move_message(call: Call) -> Reply:
    message = message_of(call)
    body = call.server.checked_body(call.request, lambda d: metadata.validate_action("move", "message", d))
    destination = next(v for k, v in body.items() if k.lower() == "destinationid")
    target = folder_of(call, str(destination))
    moved = call.mailbox.move(message, target.id)
    document = {"@odata.context": call.context("messages/$entity"), **message_document(call, moved, None, [])}
    return Reply.of_json(201, document, lambda d: metadata.validate("message", d))


def list_messages(call: Call) -> Reply:
    box = call.mailbox
    if call.rest[0] == "mailFolders":
        messages = box.in_folder(folder_of(call, call.rest[1]).id)
    else:  # every folder of the mailbox
        messages = sorted(box.messages.values(), key=lambda m: m.seq)
    wanted = _filter(call)
    if wanted is not None:
        messages = [m for m in messages if str(mime.headers(m.raw).get("Message-ID", "")).strip() == wanted]
    messages.sort(key=lambda m: (m.received, m.seq), reverse=_descending(call))
    chosen, expand = selected(call, "message"), expanded(call)
    count, start = top(call), skip(call)
    path = "/".join(call.rest)
    document: dict[str, Any] = {
        "@odata.context": call.context("messages"),
        "value": [message_document(call, m, chosen, expand) for m in messages[start : start + count]],
    }
    if start + count < len(messages):
        document["@odata.nextLink"] = page_link(call, path, **{"$top": count, "$skip": start + count})
    return Reply.of_json(200, document, lambda d: metadata.validate_collection("message", d))


def _filter(call: Call) -> str | None:
    value = call.request.query.get("$filter")
    if value is None:
        return None
    match = FILTER.fullmatch(value)
    if match is None:
        raise not_implemented(call, f"$filter={value}")
    return match.group(1).replace("''", "'")


def _descending(call: Call) -> bool:
    """Graph lists messages newest first unless $orderby says otherwise."""
    value = call.request.query.get("$orderby")
    if value is None:
        return True
    match = ORDERBY.fullmatch(value)
    if match is None:
        raise not_implemented(call, f"$orderby={value}")
    return match.group(2) != "asc"


def create_message(call: Call) -> Reply:
    """POST .../messages: a message (a draft, as Graph makes every created message) from MIME or JSON."""
    folder = folder_of(call, call.rest[1]) if call.rest[0] == "mailFolders" else call.mailbox.folder("drafts")
    if _is_mime(call.request):
        raw = decode_mime(call)
    else:
        body = call.server.checked_body(call.request, lambda d: metadata.validate("message", d, request=True))
        raw = mime.as_bytes(mime.from_json(body, call.mailbox.address))
    message = call.mailbox.add(folder.id, raw, is_draft=True, is_read=True)
    document = {
        "@odata.context": call.context("messages/$entity"),
        **message_document(call, message, None, []),
    }
    return Reply.of_json(201, document, lambda d: metadata.validate("message", d))


def _is_mime(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "text/plain"


def decode_mime(call: Call) -> bytes:
    """A MIME body as Graph takes it: base64 text, ``Content-Type: text/plain``."""
    try:
        raw = base64.b64decode(b"".join(call.request.body.split()), validate=True)
    except (binascii.Error, ValueError):
        call.server.record(f"{call.request.method} {call.request.path}: the MIME body is not base64")
        raise GraphError(
            400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
        ) from None
    if b":" not in raw.split(b"\n", 1)[0]:
        call.server.record(f"{call.request.method} {call.request.path}: the body is not a MIME message")
        raise GraphError(400, "ErrorMimeContentInvalid", "The MIME content is invalid.")
    return raw


# -- delta


def delta(call: Call) -> Reply:
    box = call.mailbox
    query = call.request.query
    token = query.get("$skiptoken") or query.get("$deltatoken")
    if token is not None:
        state = call.server.delta_tokens.get(token)
        if state is None or state.mailbox != box.address:
            # Outlook's answer to a sync state it no longer holds (Microsoft's "Use delta
            # query" page, "Synchronization reset"; the code as Exchange names it).
            raise GraphError(
                410,
                "SyncStateNotFound",
                "The sync state generation is not found. The delta token is expired and data must be "
                "synchronized "
                "again.",
                {"Location": f"{call.base}/mailFolders/{quote(call.rest[1])}/messages/delta"},
            )
        folder = folder_of(call, state.folder_id)
        if "$skiptoken" not in query:  # a new round from the last one's end
            state = DeltaState(
                box.address,
                folder.id,
                box.seq,
                _keys(box.changes(folder.id, state.watermark)),
                state.select,
                state.expand,
            )
    else:
        folder = folder_of(call, call.rest[1])
        state = DeltaState(
            box.address,
            folder.id,
            box.seq,
            [m.id for m in box.in_folder(folder.id)],
            selected(call, "message"),
            expanded(call),
        )
    return _delta_page(call, state)


def _keys(changes: list[Message | Tombstone]) -> list[str | Tombstone]:
    return [c.id if isinstance(c, Message) else c for c in changes]


def _delta_page(call: Call, state: DeltaState) -> Reply:
    size = _page_size(call)
    page, rest = state.pending[:size], state.pending[size:]
    items = []
    for entry in page:
        if isinstance(entry, Tombstone):
            items.append(
                {
                    "@odata.type": "#microsoft.graph.message",
                    "id": entry.message_id,
                    "@removed": {"reason": "deleted"},
                }
            )
        elif entry in call.mailbox.messages:  # gone since the round began: the next round says so
            found = message_document(call, call.mailbox.messages[entry], state.select, state.expand)
            items.append({"@odata.type": "#microsoft.graph.message", **found})
    token = secrets.token_urlsafe(48)
    call.server.delta_tokens[token] = DeltaState(
        state.mailbox, state.folder_id, state.watermark, rest, state.select, state.expand
    )
    link = f"{call.base}/mailFolders/{quote(state.folder_id)}/messages/delta?"
    document: dict[str, Any] = {
        "@odata.context": f"{call.server.url}/v1.0/$metadata#Collection(message)",
        "value": items,
    }
    if rest:
        document["@odata.nextLink"] = link + "$skiptoken=" + token
    else:
        document["@odata.deltaLink"] = link + "$deltatoken=" + token
    reply = Reply.of_json(200, document, lambda d: metadata.validate_collection("message", d))
    if "odata.maxpagesize" in call.request.headers.get("prefer", ""):
        reply.headers["Preference-Applied"] = f"odata.maxpagesize={size}"
    return reply


def _page_size(call: Call) -> int:
    match = re.search(r"odata\.maxpagesize=(\d+)", call.request.headers.get("prefer", ""))
    return max(1, int(match.group(1))) if match else DEFAULT_PAGE


# -- sending


def send_mail(call: Call) -> Reply:
    save = True
    if _is_mime(call.request):
        raw = decode_mime(call)
    else:
        body = call.server.checked_body(
            call.request, lambda d: metadata.validate_action("sendMail", "user", d)
        )
        parameters = {k.lower(): v for k, v in body.items()}
        save = parameters.get("savetosentitems") is not False
        raw = mime.as_bytes(mime.from_json(parameters["message"], call.mailbox.address))
    call.server.submit(call.mailbox, _with_message_id(raw), save_copy=save)
    return Reply(202)


def check_recipients(raw: bytes) -> list[str]:
    """Every recipient, or Graph's refusal of the whole message (Exchange resolves all before submitting)."""
    addresses = mime.all_recipients(raw)
    if not addresses:
        raise GraphError(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        )
    for address in addresses:
        if not ADDRESS.fullmatch(address):
            raise GraphError(
                400,
                "ErrorInvalidRecipients",
                f"At least one recipient isn't valid., Recipient '{address}' isn't resolved. All "
                "recipients must be "
                "resolved before a message can be submitted.",
            )
    return addresses


def _with_message_id(raw: bytes) -> bytes:
    """Exchange keeps the Message-ID a client set, and makes one up where there is none."""
    if mime.headers(raw).get("Message-ID"):
        return raw
    return f"Message-ID: <{secrets.token_hex(16)}@contoso.onmicrosoft.com>\r\n".encode() + raw


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
