"""SyncFolderItems' changes and sync states.

A sync state is opaque to clients; here it is base64 of the folder's id, a position in the
store's sequence of changes, and the store's epoch, which invalidate_sync_states() moves on;
forget_old_sync_states() leaves each folder honouring only the state it handed out last.
"""

from __future__ import annotations

import base64
import binascii
import json

from tests.fakes.ews.store import Folder, Item, Store

# (sequence, kind, item id, the item; None for Delete): kind is SyncFolderItemsChangesType's element.
Change = tuple[int, str, str, Item | None]


def changes(folder: Folder, since: int) -> list[Change]:
    """What changed after ``since``, by sequence: new items (Create), items changed (Update), items
    whose read flag alone changed (ReadFlagChange), items gone that the client had seen (Delete)."""
    found: list[Change] = []
    for item in folder.items.values():
        last = max(item.modified_seq, item.read_seq)
        if item.created_seq > since:
            found.append((last, "Create", item.id, item))
        elif item.modified_seq > since:
            found.append((last, "Update", item.id, item))
        elif item.read_seq > since:
            found.append((last, "ReadFlagChange", item.id, item))
    for item_id, (created, deleted) in folder.tombstones.items():
        if created <= since < deleted:
            found.append((deleted, "Delete", item_id, None))
    return sorted(found, key=lambda change: change[0])


def write(store: Store, folder: Folder, seq: int) -> str:
    folder.newest_state = seq
    return base64.b64encode(json.dumps({"f": folder.id, "s": seq, "e": store.epoch}).encode()).decode()


def read(store: Store, folder: Folder, text: str) -> int | None:
    """The position a sync state stands at; None if it is not one of this folder's, of before
    the last invalidation, or older than the folder still honours."""
    try:
        state = json.loads(base64.b64decode(text, validate=True))
        valid = state["f"] == folder.id and state["e"] == store.epoch
        return int(state["s"]) if valid and int(state["s"]) >= folder.oldest_state else None
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
