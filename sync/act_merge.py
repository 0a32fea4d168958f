"""Two versions of one item and what each side held last time: which side's change goes where.

For each synced field (``sync.act_fields``), a side changed it when its value differs
from that side's own copy as last reconciled (``ActLink.crm_synced`` / ``server_synced``).
A change travels in the field's direction: both ways, to the server only, to the CRM only,
or not at all; a change against the direction stays where it was made. When both sides
changed a field to different values, the direction decides (both ways: the CRM, the
record of truth an administrator can audit), and the change that loses is returned as
``Dropped``, for the engine to record on the item.
Pure: no database, no server.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sync.act_fields import FIELDS
from sync.act_items_json import to_json
from sync.connectors.interfaces import Item
from sync.models import FieldDirection


@dataclass(frozen=True)
class Dropped:
    field: str
    side: str  # whose change was dropped: "crm" or "server"
    value: Any
    kept: Any


@dataclass
class Merged:
    to_crm: set[str] = field(default_factory=set)  # item members to write into the record
    to_server: set[str] = field(default_factory=set)  # item members the server must take
    dropped: list[Dropped] = field(default_factory=list)

    def server_item(self, crm: Item, server: Item) -> Item:
        """The server's item with the CRM's values where they go to the server."""
        return dataclasses.replace(server, **{m: getattr(crm, m) for m in self.to_server})


def merge(
    entity: str,
    crm: Item,
    server: Item,
    crm_before: dict[str, Any],
    server_before: dict[str, Any],
    directions: dict[str, FieldDirection],
) -> Merged:
    """What to write where so that each side holds what it may take from the other. Each
    side's change is what differs from its own copy as last reconciled; empty copies (a link
    made just now) count both sides as changed: fields that differ follow their direction,
    the CRM first."""
    result = Merged()
    for synced in FIELDS[entity]:
        ours = [to_json(getattr(crm, m)) for m in synced.members]
        theirs = [to_json(getattr(server, m)) for m in synced.members]
        if ours == theirs:
            continue
        crm_changed = not crm_before or ours != [crm_before.get(m) for m in synced.members]
        server_changed = not server_before or theirs != [server_before.get(m) for m in synced.members]
        winner = _winner(directions[synced.name], crm_changed, server_changed)
        if winner == "crm":
            result.to_server.update(synced.members)
        elif winner == "server":
            result.to_crm.update(synced.members)
        if winner and crm_before and server_before and crm_changed and server_changed:
            lost, kept = (theirs, ours) if winner == "crm" else (ours, theirs)
            result.dropped.append(
                Dropped(synced.name, "server" if winner == "crm" else "crm", _one(lost), _one(kept))
            )
    return result


def _winner(direction: FieldDirection, crm_changed: bool, server_changed: bool) -> str:
    """ "crm", "server" or "" (nothing travels) for a field whose values differ."""
    if direction == FieldDirection.NONE:
        return ""
    if direction == FieldDirection.TO_SERVER:
        return "crm" if crm_changed else ""
    if direction == FieldDirection.TO_CRM:
        return "server" if server_changed else ""
    if crm_changed:
        return "crm"
    return "server" if server_changed else ""


def _one(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values
