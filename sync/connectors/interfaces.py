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
