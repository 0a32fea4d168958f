"""Items (``sync.connectors.items``) as JSON values and back, for ``ActLink.synced``.

The link keeps the item as both sides last agreed on it, field by field, so that each
side's changes since are what differs from it. Read generically from the dataclasses'
type hints: an item field added later is kept without a change here. Date-times keep
their offset (an instant and the offset it was given in compare as the item does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
from typing import Any

from sync.connectors.interfaces import Item
from sync.connectors.items import Card, Event, Todo

ITEM_TYPES: dict[str, type[Event] | type[Todo] | type[Card]] = {
    "appointment": Event,
    "task": Todo,
    "contact": Card,
}


def to_json(value: Any) -> Any:
    """A field's value as JSON (the item's own field values, nested items and addresses too)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        # As an instant: the zone it was given in is a field of its own (start_zone).
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    return value


def item_to_json(item: Item) -> dict[str, Any]:
    return typing.cast(dict[str, Any], to_json(item))


def item_from_json(entity: str, data: dict[str, Any]) -> Item:
    return typing.cast(Item, _read(ITEM_TYPES[entity], data))


def _read(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        # X | None: the one non-None member.
        (member,) = [k for k in typing.get_args(kind) if k is not type(None)]
        return _read(member, value)
    if origin is tuple:
        member = typing.get_args(kind)[0]
        return tuple(_read(member, v) for v in value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(
            **{
                f.name: _read(hints[f.name], value[f.name])
                for f in dataclasses.fields(kind)
                if f.name in value
            }
        )
    if kind is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if kind is dt.date:
        return dt.date.fromisoformat(value)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(value)
    return value
