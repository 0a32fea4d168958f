"""The Exchange Online mailboxes behind the Graph test server: users, folders,
messages held as raw MIME, and the change numbers delta queries read.

Ids look like Exchange's (long base64 strings starting "AAMk", ending "="),
so a client that forgets to escape them in a URL fails here as it would there.
A move gives the message a new id in its new folder, as Exchange does, and
leaves a tombstone in the old one for delta queries to report as removed.
"""

from __future__ import annotations

import base64
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

WELL_KNOWN = {
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "drafts": "Drafts",
}
ROOT = "msgfolderroot"


def new_id(kind: bytes = b"\x00") -> str:
    """An Exchange-looking id: "AAMk" + base64 of random bytes, with '-' and a trailing '='."""
    raw = b"\x00\x03\x24" + kind + secrets.token_bytes(64)
    return base64.b64encode(raw).decode().replace("/", "-").replace("+", "_")


@dataclass
class Folder:
    id: str
    display_name: str
    parent_id: str
    well_known: str = ""


@dataclass
class Message:
    id: str
    folder_id: str
    raw: bytes
    received: datetime
    seq: int  # the mailbox's change number when it arrived in its folder
    is_draft: bool = False
    is_read: bool = False
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    change_key: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(20)).decode())


@dataclass(frozen=True)
class Tombstone:
    seq: int
    folder_id: str
    message_id: str


class Mailbox:
    """One user's mailbox. Callers hold ``lock`` (the server's) around reads and changes."""

    def __init__(self, address: str, *, licensed: bool, lock: threading.RLock) -> None:
        self.address = address.lower()
        self.user_id = str(uuid.uuid4())
        self.display_name = address.split("@", 1)[0].replace(".", " ").title()
        self.licensed = licensed
        self.lock = lock
        self.folders: dict[str, Folder] = {}
        self.messages: dict[str, Message] = {}
        self.tombstones: list[Tombstone] = []
        self.seq = 0
        # The calendar, contacts and To Do tasks (imported here: that module builds on new_id).
        from tests.fakes.graph.outlook_items import OutlookItems

        self.outlook = OutlookItems()
        root = Folder(new_id(b"\x01"), "Top of Information Store", "", ROOT)
        self.folders[root.id] = root
        for well_known, name in WELL_KNOWN.items():
            folder = Folder(new_id(b"\x01"), name, root.id, well_known)
            self.folders[folder.id] = folder

    # -- folders

    @property
    def root(self) -> Folder:
        return self.folder(ROOT)

    def folder(self, key: str) -> Folder:
        """A folder by id or well-known name; KeyError if none."""
        if key in self.folders:
            return self.folders[key]
        for folder in self.folders.values():
            if folder.well_known and folder.well_known == key.lower():
                return folder
        raise KeyError(key)

    def children(self, folder_id: str) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == folder_id]

    def by_path(self, path: str) -> Folder:
        """ "Inbox", "Inbox/Projects", "Sent Items": display names from the top of the store."""
        current = self.root
        for name in path.strip("/").split("/"):
            current = next(f for f in self.children(current.id) if f.display_name.lower() == name.lower())
        return current

    def create_folder(self, parent_id: str, name: str) -> Folder:
        folder = Folder(new_id(b"\x01"), name, parent_id)
        self.folders[folder.id] = folder
        return folder

    def delete_folder(self, folder_id: str) -> None:
        for child in self.children(folder_id):
            self.delete_folder(child.id)
        for message in self.in_folder(folder_id):
            del self.messages[message.id]
        del self.folders[folder_id]

    # -- messages

    def in_folder(self, folder_id: str) -> list[Message]:
        return sorted((m for m in self.messages.values() if m.folder_id == folder_id), key=lambda m: m.seq)

    def add(self, folder_id: str, raw: bytes, *, is_draft: bool = False, is_read: bool = False) -> Message:
        self.seq += 1
        message = Message(new_id(), folder_id, raw, datetime.now(UTC), self.seq, is_draft, is_read)
        self.messages[message.id] = message
        return message

    def move(self, message: Message, folder_id: str) -> Message:
        """The message in its new folder, under a new id (Exchange's ids name the folder too)."""
        self.remove(message)
        self.seq += 1
        moved = Message(
            new_id(), folder_id, message.raw, message.received, self.seq, message.is_draft, message.is_read
        )
        self.messages[moved.id] = moved
        return moved

    def remove(self, message: Message) -> None:
        del self.messages[message.id]
        self.seq += 1
        self.tombstones.append(Tombstone(self.seq, message.folder_id, message.id))

    def changes(self, folder_id: str, after: int) -> list[Message | Tombstone]:
        """What changed in the folder since change number ``after``, oldest first."""
        changed: list[Message | Tombstone] = [m for m in self.in_folder(folder_id) if m.seq > after]
        changed += [t for t in self.tombstones if t.folder_id == folder_id and t.seq > after]
        return sorted(changed, key=lambda c: c.seq)


def received_header(address: str, now: datetime | None = None) -> bytes:
    """The trace field Exchange Online puts on top of a message it delivers."""
    stamp = format_datetime(now or datetime.now(UTC))
    return (
        "Received: from AM0PR01MB0001.eurprd01.prod.outlook.com (2603:10a6:208:1::1)\r\n"
        f" by AM0PR01MB0002.eurprd01.prod.outlook.com with HTTPS for <{address}>; {stamp}\r\n"
    ).encode()
