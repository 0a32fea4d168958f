"""``messages/delta`` per folder: ``Prefer: odata.maxpagesize`` pages linked by
``$skiptoken``, a ``$deltatoken`` at the end of each round, removals as ``@removed``."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tests.fakes.graph import metadata
from tests.fakes.graph.calls import DEFAULT_PAGE, Call, expanded, folder_of, selected
from tests.fakes.graph.http import GraphError, Reply
from tests.fakes.graph.mailboxes import Message, Tombstone
from tests.fakes.graph.messages import message_document


@dataclass
class DeltaState:
    """What a ``$skiptoken`` (a page to come) or ``$deltatoken`` (the round's end) stands for."""

    mailbox: str
    folder_id: str
    watermark: int  # the change number the round reads up to
    pending: list[str | Tombstone]  # message ids / removals still to page through
    select: list[str] | None
    expand: list[str]


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
                "synchronized again.",
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
        "@odata.context": f"{call.origin}/v1.0/$metadata#Collection(message)",
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
