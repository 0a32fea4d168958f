"""One authorized Graph call on one mailbox, and what every handler reads from it:
folders and messages by id, ``$select`` / ``$expand`` / ``$top`` / ``$skip``, MIME bodies.

A query option the test server does not implement is answered 501 and recorded as a
violation: the test fails, rather than the server pretending.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from tests.fakes.graph import metadata
from tests.fakes.graph.entra import App
from tests.fakes.graph.http import GraphError, Reply, Request
from tests.fakes.graph.mailboxes import Folder, Mailbox, Message

if TYPE_CHECKING:
    from tests.fakes.graph.server import GraphServer


DEFAULT_PAGE = 10
EXPAND = re.compile(r"singleValueExtendedProperties\(\$filter=(.*)\)")
EXPAND_ID = re.compile(r"\s*id\s+eq\s+'([^']*)'\s*")


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
    def origin(self) -> str:
        """The URL the client reached the server at (its Host header): the links Graph hands
        out lead back the way the client came, through a proxy in front of it too."""
        host = self.request.headers.get("host")
        return f"https://{host}" if host else self.server.url

    @property
    def base(self) -> str:
        return f"{self.origin}/v1.0/users/{quote(self.user_segment, safe='@')}"

    def context(self, fragment: str) -> str:
        return f"{self.origin}/v1.0/$metadata#users('{quote(self.user_segment, safe='@')}')/{fragment}"


Handler = Callable[[Call], Reply]


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
                f"Parsing OData Select and Expand failed: Could not find a property named '{name}' on type "
                f"'microsoft.graph.{type_name}'.",
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


# -- bodies


def is_mime(request: Request) -> bool:
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
