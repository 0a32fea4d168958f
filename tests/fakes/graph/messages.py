"""Messages: list (``$filter`` on internetMessageId, ``$orderby`` receivedDateTime), get,
``$value``, delete, move, and create from MIME or JSON."""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.graph import metadata, mime
from tests.fakes.graph.calls import (
    Call,
    decode_mime,
    expanded,
    folder_of,
    is_mime,
    message_of,
    not_implemented,
    page_link,
    selected,
    skip,
    top,
)
from tests.fakes.graph.http import GraphError, Reply
from tests.fakes.graph.mailboxes import Message

FILTER = re.compile(r"\s*internetMessageId\s+eq\s+'((?:[^']|'')*)'\s*")
ORDERBY = re.compile(r"\s*receivedDateTime(\s+(asc|desc))?\s*")


def message_document(
    call: Call, message: Message, chosen: list[str] | None, expand: list[str]
) -> dict[str, Any]:
    document = mime.select(mime.message_json(call.mailbox, message, call.origin), chosen)
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
    if is_mime(call.request):
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
