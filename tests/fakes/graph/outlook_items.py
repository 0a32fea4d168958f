"""A mailbox's calendar, contacts and To Do tasks as the Graph test server keeps them.

Each item is the JSON Graph would hold for it (what clients wrote, checked against the
metadata on the way in), a change key that moves with every write, and a change
number for delta queries. A series master also holds what became of its occurrences:
the ones changed (exceptions, each an item of its own) and the ones deleted; its plain
occurrences are computed from its ``patternedRecurrence`` when asked (``recurrence.py``).
A removal leaves a tombstone, so that delta reports it as ``@removed``.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.graph.mailboxes import new_id

EVENTS, CONTACTS = "events", "contacts"


def new_change_key() -> str:
    return base64.b64encode(secrets.token_bytes(16)).decode()


@dataclass
class OutlookItem:
    id: str
    collection: str  # EVENTS, CONTACTS, or the To Do list's id
    document: dict[str, Any]  # the properties as written (no id, changeKey, timestamps)
    seq: int
    change_key: str = field(default_factory=new_change_key)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    # A series master's changed occurrences (by original start, UTC) and deleted ones.
    exceptions: dict[datetime, OutlookItem] = field(default_factory=dict)
    cancelled: set[datetime] = field(default_factory=set)
    # The ids handed out for its plain occurrences, so that an id stays the occurrence's.
    occurrence_ids: dict[datetime, str] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    @property
    def is_series(self) -> bool:
        return bool(self.document.get("recurrence"))


@dataclass(frozen=True)
class Removal:
    seq: int
    collection: str
    item_id: str
    # For events: the instance ids delta reports removed (a series' occurrences, not its master).
    instance_ids: tuple[str, ...] = ()


class OutlookItems:
    """One mailbox's items. Callers hold the server's lock."""

    def __init__(self) -> None:
        self.items: dict[str, OutlookItem] = {}
        self.removals: list[Removal] = []
        self.seq = 0
        self.task_lists = {"defaultList": new_id(b"\x05")}

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def add(self, collection: str, document: dict[str, Any]) -> OutlookItem:
        item = OutlookItem(new_id(b"\x04"), collection, document, self._next())
        self.items[item.id] = item
        return item

    def touch(self, item: OutlookItem) -> None:
        """A write: a new change key and change number."""
        item.change_key = new_change_key()
        item.seq = self._next()
        item.modified = datetime.now(UTC)

    def remove(self, item: OutlookItem, instance_ids: tuple[str, ...] = ()) -> None:
        del self.items[item.id]
        self.removals.append(Removal(self._next(), item.collection, item.id, instance_ids))

    def remove_instance(self, instance_id: str, collection: str = EVENTS) -> None:
        """A deleted occurrence: delta reports its id removed."""
        self.removals.append(Removal(self._next(), collection, instance_id, (instance_id,)))

    def in_collection(self, collection: str) -> list[OutlookItem]:
        return sorted((i for i in self.items.values() if i.collection == collection), key=lambda i: i.seq)

    def changed(self, collection: str, after: int) -> list[OutlookItem | Removal]:
        found: list[OutlookItem | Removal] = [i for i in self.in_collection(collection) if i.seq > after]
        found += [r for r in self.removals if r.collection == collection and r.seq > after]
        return sorted(found, key=lambda c: c.seq)

    def master_of(self, instance_id: str) -> tuple[OutlookItem, datetime] | None:
        """The series and original start of an occurrence or exception id."""
        for item in self.items.values():
            for start, known in item.occurrence_ids.items():
                if known == instance_id:
                    return item, start
            for start, exception in item.exceptions.items():
                if exception.id == instance_id:
                    return item, start
        return None
