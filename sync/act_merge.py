"""Two versions of one item and what they last agreed on: which side's change goes where.

For each synced field (``sync.act_fields``), a side changed it when its value differs
from the agreed one (``ActLink.synced``). A change travels in the field's direction: both
ways, to the server only, to the CRM only, or not at all; a change against the direction
stays where it was made. When both sides changed a field to different values, the
direction decides (both ways: the CRM, the record of truth an administrator can audit),
and the change that loses is returned as ``Dropped``, for the engine to record on the item.
Pure: no database, no server.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sync.act_fields import FIELDS
from sync.act_items_json import item_to_json, to_json
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
    agreed: dict[str, Any] = field(default_factory=dict)

    def server_item(self, crm: Item, server: Item) -> Item:
        """The server's item with the CRM's values where they go to the server."""
        return dataclasses.replace(server, **{m: getattr(crm, m) for m in self.to_server})


def merge(
    entity: str, crm: Item, server: Item, agreed: dict[str, Any], directions: dict[str, FieldDirection]
) -> Merged:
    """What to write where so that both sides hold what each may take from the other.
    ``agreed`` empty (a link made just now) counts neither side as changed: fields that
    differ follow their direction, the CRM first."""
    result = Merged(agreed=item_to_json(server))
    for synced in FIELDS[entity]:
        members = synced.members
        ours = [to_json(getattr(crm, m)) for m in members]
        theirs = [result.agreed[m] for m in members]
        before = [agreed.get(m) for m in members] if agreed else None
        winner = _winner(directions[synced.name], ours, theirs, before)
        if winner == "crm":
            result.to_server.update(members)
        elif winner == "server":
            result.to_crm.update(members)
        if before is not None and ours != before and theirs != before and ours != theirs:
            lost, kept = ("server", "crm") if winner == "crm" else ("crm", "server")
            if winner in ("crm", "server"):
                values = {"crm": ours, "server": theirs}
                result.dropped.append(Dropped(synced.name, lost, _one(values[lost]), _one(values[kept])))
        settled = ours if winner == "crm" else theirs if winner == "server" or ours == theirs else before
        for member, value in zip(members, settled or theirs, strict=True):
            result.agreed[member] = value
    return result


def _winner(direction: FieldDirection, ours: list[Any], theirs: list[Any], before: list[Any] | None) -> str:
    """ "crm", "server" or "" (nothing travels) for one field."""
    if ours == theirs or direction == FieldDirection.NONE:
        return ""
    crm_changed = before is None or ours != before
    server_changed = before is None or theirs != before
    if direction == FieldDirection.TO_SERVER:
        return "crm" if crm_changed else ""
    if direction == FieldDirection.TO_CRM:
        return "server" if server_changed else ""
    if crm_changed:
        return "crm"
    return "server" if server_changed else ""


def _one(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values
