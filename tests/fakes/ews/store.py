"""The mailboxes the EWS test server holds: folders, items, and the change journal sync states read."""

from __future__ import annotations

import base64
import email.utils
import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy

from lxml import etree

# Folders every mailbox has, by distinguished id, with their display names and parent.
DEFAULT_FOLDERS = (
    ("root", "", None),
    ("msgfolderroot", "Top of Information Store", "root"),
    ("inbox", "Inbox", "msgfolderroot"),
    ("sentitems", "Sent Items", "msgfolderroot"),
    ("deleteditems", "Deleted Items", "msgfolderroot"),
    ("drafts", "Drafts", "msgfolderroot"),
    ("outbox", "Outbox", "msgfolderroot"),
    ("junkemail", "Junk Email", "msgfolderroot"),
    ("calendar", "Calendar", "msgfolderroot"),
    ("contacts", "Contacts", "msgfolderroot"),
    ("tasks", "Tasks", "msgfolderroot"),
)


def new_id() -> str:
    # EWS ids are opaque base64 strings, much longer than this; clients must not parse them.
    return base64.b64encode(b"\x00\x00" + secrets.token_bytes(30)).decode()


def well_formed_id(ews_id: str) -> bool:
    try:
        raw = base64.b64decode(ews_id, validate=True)
    except ValueError:
        return False
    return len(raw) == 32 and raw.startswith(b"\x00\x00")


def change_key() -> str:
    return base64.b64encode(b"\x09\x00\x00\x00" + secrets.token_bytes(12)).decode()


@dataclass
class Item:
    id: str
    folder_id: str
    mime: bytes
    received: datetime
    change_key: str = field(default_factory=change_key)
    is_read: bool = False
    created_seq: int = 0
    modified_seq: int = 0
    read_seq: int = 0  # the last change of the read flag alone (SyncFolderItems' ReadFlagChange)
    # Calendar items, contacts and tasks are their properties, not MIME: the t:CalendarItem,
    # t:Contact or t:Task element a client created (computed properties are added when read).
    props: etree._Element | None = None
    # A series master's changed occurrences (exceptions, by instance index) and deleted ones
    # (instance index -> original start); an exception's master and instance index.
    exceptions: dict[int, Item] = field(default_factory=dict)
    deleted: dict[int, datetime] = field(default_factory=dict)
    master_id: str = ""
    index: int = 0
    original_start: datetime | None = None
    completed: datetime | None = None  # a task's CompleteDate, set when it was completed

    @property
    def kind(self) -> str:
        """The EWS item element: Message, CalendarItem, Contact or Task."""
        return "Message" if self.props is None else etree.QName(self.props).localname

    @property
    def size(self) -> int:
        return len(self.mime)

    def header(self, name: str) -> str:
        return header_of(self.mime, name)


def header_of(raw: bytes, name: str) -> str:
    """A header's value, decoded and unfolded ("" when absent)."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    parsed = message_from_bytes(head + b"\n\n", policy=policy.default)
    return str(parsed.get(name, "") or "")


@dataclass
class Folder:
    id: str
    name: str
    parent_id: str | None
    distinguished: str | None = None
    change_key: str = field(default_factory=change_key)
    items: dict[str, Item] = field(default_factory=dict)
    # item id -> (created_seq, deleted_seq) of items gone from this folder: SyncFolderItems' Delete changes.
    tombstones: dict[str, tuple[int, int]] = field(default_factory=dict)
    # The position of the sync state handed out last, and the oldest position still honoured
    # (forget_old_sync_states() moves it up to the last).
    newest_state: int = 0
    oldest_state: int = 0


@dataclass
class Mailbox:
    address: str
    folders: dict[str, Folder] = field(default_factory=dict)
    # Mailboxes this account may impersonate (ApplicationImpersonation); None: every mailbox.
    impersonates: set[str] | None = field(default_factory=set)
    # The signed-in account may read the mailbox but not change it (a folder permission of
    # Reviewer): moving, deleting and creating folders are refused with ErrorAccessDenied.
    read_only: bool = False

    def by_distinguished(self, name: str) -> Folder | None:
        return next((f for f in self.folders.values() if f.distinguished == name), None)

    def children(self, folder_id: str) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == folder_id]

    def folder_at(self, path: str) -> Folder:
        """``Inbox`` or ``Inbox/Projects`` (``INBOX/...`` too): a folder by display names under the inbox."""
        first, *rest = path.split("/")
        if first.lower() != "inbox":
            raise KeyError(f"{path!r}: paths start at the Inbox")
        folder = self.by_distinguished("inbox")
        assert folder is not None
        for name in rest:
            folder = next((f for f in self.children(folder.id) if f.name == name), None)
            if folder is None:
                raise KeyError(f"no folder {path!r} in {self.address}")
        return folder

    def top_folder(self, name: str) -> Folder | None:
        """The folder named ``name`` at the top of the mailbox (beside the Inbox), compared
        without case as Exchange compares folder names."""
        top = self.by_distinguished("msgfolderroot")
        assert top is not None
        return next((f for f in self.children(top.id) if f.name.lower() == name.lower()), None)

    def find_item(self, item_id: str) -> tuple[Folder, Item] | None:
        """An item by id, a series' exception included (found in its master's folder)."""
        for folder in self.folders.values():
            if item_id in folder.items:
                return folder, folder.items[item_id]
            for item in folder.items.values():
                found = next((e for e in item.exceptions.values() if e.id == item_id), None)
                if found is not None:
                    return folder, found
        return None


class Store:
    """Every mailbox, behind one lock (the server is threaded); ``seq`` orders every change."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.mailboxes: dict[str, Mailbox] = {}
        self._seq = itertools.count(1)
        # Sync states carry this; invalidate_sync_states() moves it on, so older states are refused.
        self.epoch = secrets.token_hex(4)

    def next_seq(self) -> int:
        return next(self._seq)

    def add_mailbox(self, address: str) -> Mailbox:
        with self.lock:
            mailbox = Mailbox(address=address.lower())
            ids: dict[str, str] = {}
            for distinguished, name, parent in DEFAULT_FOLDERS:
                folder = Folder(new_id(), name, ids.get(parent or ""), distinguished)
                ids[distinguished] = folder.id
                mailbox.folders[folder.id] = folder
            self.mailboxes[mailbox.address] = mailbox
            return mailbox

    def mailbox(self, address: str) -> Mailbox | None:
        return self.mailboxes.get(address.lower())

    def create_folder(self, mailbox: Mailbox, parent: Folder, name: str) -> Folder:
        with self.lock:
            folder = Folder(new_id(), name, parent.id)
            mailbox.folders[folder.id] = folder
            parent.change_key = change_key()
            return folder

    def delete_folder(self, mailbox: Mailbox, folder: Folder) -> None:
        with self.lock:
            for child in mailbox.children(folder.id):
                self.delete_folder(mailbox, child)
            del mailbox.folders[folder.id]

    def add_item(
        self, folder: Folder, mime: bytes, *, is_read: bool = False, props: etree._Element | None = None
    ) -> Item:
        with self.lock:
            seq = self.next_seq()
            item = Item(new_id(), folder.id, mime, datetime.now(UTC).replace(microsecond=0), is_read=is_read)
            item.props = props
            item.created_seq = item.modified_seq = seq
            folder.items[item.id] = item
            return item

    def remove_item(self, folder: Folder, item: Item) -> None:
        with self.lock:
            del folder.items[item.id]
            folder.tombstones[item.id] = (item.created_seq, self.next_seq())

    def move_item(self, mailbox: Mailbox, item: Item, target: Folder) -> Item:
        """A move is a delete in the source folder and a new item (new id) in the target, as in Exchange."""
        with self.lock:
            source = mailbox.folders[item.folder_id]
            self.remove_item(source, item)
            moved = self.add_item(target, item.mime, is_read=item.is_read, props=item.props)
            moved.received = item.received
            moved.exceptions, moved.deleted, moved.completed = item.exceptions, item.deleted, item.completed
            return moved

    def touch(self, item: Item) -> None:
        """A change to the item (flag, categories, ...): a new ChangeKey, and an Update change."""
        with self.lock:
            item.change_key = change_key()
            item.modified_seq = self.next_seq()

    def mark_read(self, item: Item, is_read: bool) -> None:
        with self.lock:
            item.change_key = change_key()
            item.is_read = is_read
            item.read_seq = self.next_seq()

    def invalidate_sync_states(self) -> None:
        with self.lock:
            self.epoch = secrets.token_hex(4)

    def forget_old_sync_states(self) -> None:
        """Every folder honours only the sync state it handed out last (and none before it)."""
        with self.lock:
            for mailbox in self.mailboxes.values():
                for folder in mailbox.folders.values():
                    folder.oldest_state = folder.newest_state


def deliver(store: Store, mailbox: Mailbox, raw: bytes, folder: Folder | None = None) -> Item:
    """Delivery into a mailbox (its Inbox unless told): Exchange's transport puts a Received trace
    header on top and drops Bcc."""
    target = folder or mailbox.by_distinguished("inbox")
    assert target is not None
    return store.add_item(target, received_header(mailbox.address) + without_bcc(raw))


def without_bcc(raw: bytes) -> bytes:
    head, separator, body = raw.partition(b"\r\n\r\n")
    kept: list[bytes] = []
    skipping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):  # a folded continuation belongs to the header above
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            kept.append(line)
    return b"\r\n".join(kept) + separator + body


def received_header(recipient: str, when: datetime | None = None) -> bytes:
    """The trace header Exchange's transport adds on delivery (RFC 5321 §4.4)."""
    stamp = email.utils.format_datetime(when or datetime.now(UTC))
    return (
        f"Received: from ews.test (127.0.0.1) by ews.test (Exchange test server)\r\n"
        f" for <{recipient}>; {stamp}\r\n"
    ).encode()
