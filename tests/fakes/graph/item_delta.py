"""Delta queries on Outlook items (``calendarView/delta``, ``contacts/delta``, a To Do
list's ``tasks/delta``): pages linked by ``$skiptoken``, a ``$deltatoken`` at the end of
each round, removals as ``@removed``, ``Prefer: odata.maxpagesize``; a token the server
does not hold answers 410 SyncStateNotFound, as for messages."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.fakes.graph.calls import Call
from tests.fakes.graph.delta import _page_size
from tests.fakes.graph.http import GraphError, Reply
from tests.fakes.graph.item_calls import strict_collection
from tests.fakes.graph.outlook_items import Removal


@dataclass
class ItemDeltaState:
    mailbox: str
    collection: str
    watermark: int  # the change number the round reads up to
    pending: list[str | Removal]  # ids still to page through, and removals
    window: tuple[datetime, datetime] | None  # calendarView's


@dataclass(frozen=True)
class DeltaKind:
    """What one delta endpoint reads: its entity type, the path its links name, and how it
    lists the ids of a first round, the changes since a change number, and renders one id."""

    type_name: str
    path: str
    everything: Callable[[Call, ItemDeltaState], list[str | Removal]]
    since: Callable[[Call, ItemDeltaState], list[str | Removal]]
    render: Callable[[Call, str, ItemDeltaState], dict[str, Any] | None]
    removed_ids: Callable[[Removal], tuple[str, ...]]


def item_delta(call: Call, kind: DeltaKind, window: tuple[datetime, datetime] | None = None) -> Reply:
    box = call.mailbox
    query = call.request.query
    token = query.get("$skiptoken") or query.get("$deltatoken")
    watermark = box.outlook.seq
    if token is None:
        state = ItemDeltaState(box.address, kind.path, watermark, [], window)
        state.pending = kind.everything(call, state)
    else:
        found = call.server.item_delta_tokens.get(token)
        if found is None or found.mailbox != box.address or found.collection != kind.path:
            raise GraphError(
                410,
                "SyncStateNotFound",
                "The sync state generation is not found. The delta token is expired and data must be "
                "synchronized again.",
                {"Location": f"{call.base}/{kind.path}"},
            )
        state = found
        if "$skiptoken" not in query:  # a new round from the last one's end
            state = ItemDeltaState(box.address, kind.path, watermark, [], found.window)
            state.watermark = found.watermark
            state.pending = kind.since(call, state)
            state.watermark = watermark
    return _page(call, kind, state)


def _page(call: Call, kind: DeltaKind, state: ItemDeltaState) -> Reply:
    size = _page_size(call)
    page, rest = state.pending[:size], state.pending[size:]
    values: list[dict[str, Any]] = []
    for entry in page:
        if isinstance(entry, Removal):
            values += [{"id": i, "@removed": {"reason": "deleted"}} for i in kind.removed_ids(entry)]
            continue
        rendered = kind.render(call, entry, state)
        if rendered is not None:  # gone since the round began: the next round says so
            values.append(rendered)
    token = secrets.token_urlsafe(48)
    call.server.item_delta_tokens[token] = ItemDeltaState(
        state.mailbox, state.collection, state.watermark, rest, state.window
    )
    link = f"{call.base}/{kind.path}?"
    document: dict[str, Any] = {
        "@odata.context": f"{call.origin}/v1.0/$metadata#Collection({kind.type_name})",
        "value": values,
    }
    if rest:
        document["@odata.nextLink"] = link + "$skiptoken=" + token
    else:
        document["@odata.deltaLink"] = link + "$deltatoken=" + token
    reply = Reply.of_json(200, document, lambda d: strict_collection(kind.type_name, d))
    if "odata.maxpagesize" in call.request.headers.get("prefer", ""):
        reply.headers["Preference-Applied"] = f"odata.maxpagesize={size}"
    return reply
