"""What serversync asks of a connector: one small interface per capability.

A protocol (IMAP, POP3, SMTP; later Microsoft Graph, EWS) is one module that
implements these, and one entry in :mod:`sync.connectors.registry`. Nothing here
knows the CRM: bytes and opaque cursors in, bytes and cursors out.

- :class:`Incoming` reads a mailbox: its folders, and what arrived in a folder
  since a cursor, one :class:`Change` at a time, each with the cursor to save
  once that message is stored. A cursor's shape (UIDVALIDITY + last UID, a set
  of UIDLs, a delta link) is the connector's business: the engine stores the
  string and hands it back. ``""`` is "from the start"; a cursor the server no
  longer honours (a new UIDVALIDITY, an expired token) makes the connector start
  the folder again by itself, and the engine's message identities keep that
  from creating anything twice. A cursor travels on a message, so once a folder
  was read to its end the connector is asked for the cursor that stands past
  everything read (``caught_up``): a quiet folder's cursor moves on too, before
  the server forgets the old one.
- :class:`Outgoing` sends raw bytes to an envelope.
- :class:`SentItems` finds a sent message by its Message-ID and saves copies in
  the mailbox's Sent folder (IMAP reaches it with the incoming settings).
- :class:`Probe` is what test & enable needs of the incoming side: sign in and
  open the folders, and find (and remove) the marked message a round trip sent.
  (The outgoing side is checked by opening an :class:`Outgoing` session.)
- :class:`Undeliverable`, optional: an incoming connector that can move the
  messages serversync could not process out of the Inbox, to a folder named
  Undeliverable (Dynamics 365's "Move failed emails to Undeliverable folder").
- :class:`ActItems` reads and writes a mailbox's appointments, tasks and
  contacts (``ENTITIES``) as plain :mod:`sync.connectors.items` data: what
  changed since an opaque cursor, one :class:`ItemChange` at a time (the same
  cursor rules as ``Incoming``: ``""`` is from the start, a cursor the server no
  longer honours starts the entity again, and the engine links by UID so nothing
  is doubled), and create / update / delete guarded by the item's version (an
  ETag, a change key): a version the server has moved past is refused with
  ``MessageError`` code ``item_changed``, and the engine re-reads and resolves.

Every method raises only ``TransientError``, ``PermanentError`` or
``MessageError`` (sync.errors), with a message an administrator can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from sync.connectors.base import SendResult, ServerSettings
from sync.connectors.items import Card, Event, Todo
from sync.errors import MessageError


@dataclass(frozen=True)
class Change:
    """One new message of a folder. ``raw`` is None when it was over the size cap
    and not downloaded (``size`` says how big it is); ``cursor`` is the folder's
    cursor to save once this message is stored."""

    server_id: str
    size: int
    received_on: datetime | None
    raw: bytes | None
    # Built when asked: a cursor can grow with the folder (POP3's UIDLs), and the
    # engine saves one per batch, not one per message.
    after: Callable[[], str]

    @property
    def cursor(self) -> str:
        return self.after()


class Session(Protocol):
    """Opened on ``__enter__``, closed (politely when nothing failed) on ``__exit__``."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Incoming(Session, Protocol):
    def folders(self, *, include_subfolders: bool) -> list[str]:
        """The inbox first, then (when asked and the protocol has them) its sub-folders."""
        ...

    def changes(self, folder: str, cursor: str, *, max_size: int | None = None) -> Iterator[Change]:
        """What arrived in ``folder`` since ``cursor``, oldest first."""
        ...

    def caught_up(self, folder: str) -> str | None:
        """After ``changes(folder, ...)`` was read to its end, the cursor that reads
        nothing already seen: the server's newest (a delta link, a sync state), which
        a poll that found nothing new, or only updates and deletions, has no message
        to carry. None when the connector has nothing newer than the last change's
        cursor, or when ``changes`` was not read to its end."""
        ...

    def remove(self, folder: str, server_ids: Sequence[str]) -> None:
        """Delete these messages, processed, where the profile says to."""
        ...


# The folder, at the top of the mailbox beside the Inbox, that failed messages are moved to.
UNDELIVERABLE = "Undeliverable"


@runtime_checkable
class Undeliverable(Protocol):
    """An incoming connector's optional capability (the engine asks ``isinstance``)."""

    def move_to_undeliverable(self, folder: str, server_ids: Sequence[str]) -> None:
        """Move these messages of ``folder`` to the folder named :data:`UNDELIVERABLE` at
        the top of the mailbox, beside the Inbox, created when missing. A message already
        gone is no failure."""
        ...


class Verdict(Protocol):
    def result(self) -> SendResult:
        """What the server said of a message submitted: a SendResult when it took
        it; MessageError or TransientError when it refused it; TransientError
        with code ``outcome_unknown`` when it may or may not have taken it."""
        ...


class Outgoing(Session, Protocol):
    def send(self, raw: bytes, *, mail_from: str, rcpt_to: list[str]) -> SendResult:
        """Send ``raw`` as it is; the result names the recipients the server refused."""
        ...

    def submit(self, raw: bytes, *, mail_from: str, rcpt_to: list[str]) -> Verdict:
        """Send ``raw`` and read the server's verdict later, so that the engine
        records the message before while the server delivers it (SMTP pipelines
        the next message's commands; a protocol that answers at once returns its
        verdict already read)."""
        ...


class SentItems(Session, Protocol):
    def find_sent(self, message_id: str) -> bool:
        """Whether the Sent folder holds a message with this Message-ID."""
        ...

    def save_to_sent(self, raws: Iterable[bytes]) -> None:
        """Store copies of messages sent (read, as a mail client stores its own)."""
        ...


class Probe(Protocol):
    def check_incoming(self, settings: ServerSettings, *, include_subfolders: bool) -> None:
        """Sign in and open each folder the mailbox syncs."""
        ...

    def position(self, settings: ServerSettings) -> object:
        """Where the inbox stands now, before a marked message is sent."""
        ...

    def take_marked(self, settings: ServerSettings, header: str, token: str, since: object) -> bool:
        """Whether a message carrying ``header: token`` arrived since ``position``; deleted if so."""
        ...


# -- appointments, tasks and contacts ---------------------------------------------

# What ActItems is asked about, by the CRM's names: "appointment" (Event), "task"
# (Todo), "contact" (Card).
ENTITIES = ("appointment", "task", "contact")
Item = Event | Todo | Card


@dataclass(frozen=True)
class ItemRef:
    """Where an item lives on the server and the version a write must match.

    ``item_id`` is the server's id (a DAV href, a Graph id, an EWS ItemId);
    ``version`` its ETag or change key as the server last gave it."""

    item_id: str
    version: str


@dataclass(frozen=True)
class ItemChange:
    """One item created, changed or deleted on the server since a cursor.

    ``item`` is None (and ``version`` empty) when the item is gone (``deleted``), or
    when the server holds something that cannot be read as the entity (``unreadable``
    then says why: the engine records it on the item and goes on). ``after`` builds
    the cursor to save once this change is stored: a run that stops there never skips
    a change, though it may read some stored ones again (a DAV sync-token covers a
    whole report), which the engine recognizes by their unchanged version."""

    item_id: str
    version: str
    item: Item | None
    after: Callable[[], str]
    unreadable: MessageError | None = None

    @property
    def deleted(self) -> bool:
        return self.item is None and self.unreadable is None

    @property
    def ref(self) -> ItemRef:
        return ItemRef(self.item_id, self.version)

    @property
    def cursor(self) -> str:
        return self.after()


class ActItems(Session, Protocol):
    """A mailbox's appointments, tasks and contacts on its server. ``entity`` is one of
    :data:`ENTITIES`; anything else is a programming error (ValueError)."""

    def changes(self, entity: str, cursor: str) -> Iterator[ItemChange]:
        """What was created, changed or deleted since ``cursor`` (``""``: every item the
        entity's calendar or address book holds). A cursor the server no longer honours
        (an expired sync token, another calendar since) reads the entity from the start.
        A deletion may name an item the engine never linked (a calendar that holds both
        events and tasks reports deletions without their kind): unknown ids are ignored."""
        ...

    def caught_up(self, entity: str) -> str | None:
        """After ``changes(entity, ...)`` was read to its end, the cursor that reads nothing
        already seen (as :meth:`Incoming.caught_up`); None when it was not read to its end."""
        ...

    def create(self, entity: str, item: Item) -> ItemRef:
        """Store a new item; ``MessageError`` code ``item_exists`` when the server already
        holds one with the item's UID (the engine links to it instead)."""
        ...

    def update(self, entity: str, ref: ItemRef, item: Item) -> ItemRef:
        """Replace the item at ``ref``; ``MessageError`` code ``item_changed`` when the server
        holds another version than ``ref.version`` (or none any more)."""
        ...

    def delete(self, entity: str, ref: ItemRef) -> None:
        """Remove the item at ``ref``; ``MessageError`` code ``item_changed`` when the server
        holds another version than ``ref.version``. An item already gone is no failure."""
        ...
