"""EWS connector (exchangelib) for Exchange Server: incoming, outgoing, Sent Items and test & enable.

- Incoming reads a folder with SyncFolderItems; its sync state is the cursor.
  A page's messages are yielded as their MIME (GetItem, in batches) arrives;
  each carries the cursor to save once it is stored: the state the page was
  read from plus the ids (hashed) of the page's messages already yielded, and
  the page's new state on its last message. A saved cursor thus resumes
  exactly where storing stopped; an invalid sync state reads the folder again.
  The state that came with IncludesLastItemInRange is ``caught_up``: where a
  folder read to its end stands, though no new message carried it.
- Outgoing sends the engine's MIME as it is with CreateItem SendAndSaveCopy,
  which also leaves the copy in Sent Items. Bcc recipients are not in the MIME
  (sync.outgoing keeps them in the envelope only), so the envelope recipients
  the MIME does not name go in as BccRecipients. EWS refuses a message with a
  bad recipient whole: that is a MessageError naming the recipients.
- Sent Items: FindItem by InternetMessageId; a copy is saved (CreateItem
  SaveOnly) only for a message Sent Items does not hold yet, so the engine's
  copy after a SendAndSaveCopy stores nothing twice.

Every exchangelib call runs inside :meth:`EwsConnection._call`: it trusts the
profile's CA file (sync.connectors.ews_account) and turns every failure into a
SyncError (sync.connectors.ews_errors).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any, TypeVar

from exchangelib import DEEP, SHALLOW, Folder, FolderCollection, Message, Q
from exchangelib.errors import ErrorFolderExists, ErrorItemNotFound
from exchangelib.folders import BaseFolder
from exchangelib.items import ID_ONLY, MOVE_TO_DELETED_ITEMS, SAVE_ONLY
from exchangelib.properties import Mailbox
from exchangelib.services import CreateFolder, SyncFolderItems
from exchangelib.services.common import EWSAccountService
from exchangelib.util import MNS

from sync.connectors import ews_account, ews_errors
from sync.connectors.base import INBOX, SendResult, ServerSettings, carries
from sync.connectors.ews_session import EwsSession
from sync.connectors.interfaces import UNDELIVERABLE, Change
from sync.errors import MessageError, PermanentError, SyncError, TransientError

T = TypeVar("T")

CURSOR_PREFIX = "ews1"
# Changes per SyncFolderItems call (EWS allows 1 to 512): reading mail, and only listing it.
PAGE_SIZE = 100
MAX_PAGE_SIZE = 512
# MIME is fetched in GetItem batches of at most this many messages and about this many bytes.
BATCH_ITEMS = 50
BATCH_BYTES = 16 * 1024 * 1024
# FindItem restrictions on Message-IDs, this many at once.
LOOKUP_BATCH = 50
RECIPIENT_ERRORS = {"ErrorInvalidRecipients", "ErrorInvalidSmtpAddress", "ErrorMailRecipientNotFound"}
MESSAGE_ERRORS = {
    "ErrorMessageSizeExceeded": "message_too_large",
    "ErrorMimeContentConversionFailed": "message_refused",
    "ErrorMimeContentInvalid": "message_refused",
    "ErrorCorruptData": "message_refused",
}
SENDER_ERRORS = {"ErrorSendAsDenied"}
# Failures after the request may have reached the server: whether it sent the message is unknown.
LOST_ANSWER = {"timeout", "connection_lost", "network_error"}


def discovered_url(settings: ServerSettings) -> str:
    """The EWS URL Autodiscover finds for ``settings.mailbox``, for the profile to keep
    (then ``settings.url`` is set and later sessions skip Autodiscover)."""
    with EwsConnection(settings) as ews:
        return ews.ews_url


class EwsConnection(EwsSession):
    """One EWS session for one mailbox (Incoming, Outgoing and SentItems); a context manager."""

    def __init__(self, settings: ServerSettings) -> None:
        super().__init__(settings)
        self._folders: dict[str, BaseFolder] = {}
        # engine path -> the cursor of the sync state that ended the folder's last read whole
        self._caught_up: dict[str, str] = {}

    def opened(self) -> None:
        # Opening the inbox signs in and checks the mailbox (and impersonation) at once.
        self._folders[INBOX] = self.call(lambda: self.account.inbox)

    @property
    def ews_url(self) -> str:
        return str(self.account.protocol.service_endpoint)

    # -- Incoming -----------------------------------------------------------------

    def folders(self, *, include_subfolders: bool) -> list[str]:
        """The inbox, then its sub-folders at every depth as "INBOX/<name>/<name>"."""
        if not include_subfolders:
            return [INBOX]
        inbox = self._folders[INBOX]
        below = self.call(
            lambda: list(FolderCollection(account=self.account, folders=[inbox]).find_folders(depth=DEEP))
        )
        self._folders = {INBOX: inbox}  # what an earlier listing found may be gone
        names = {f.id: f.name for f in below}
        parents = {f.id: f.parent_folder_id.id if f.parent_folder_id else None for f in below}
        for folder in below:
            path, parent = [folder.name], parents[folder.id]
            while parent in names:
                path.insert(0, names[parent])
                parent = parents[parent]
            self._folders["/".join([INBOX, *path])] = folder
        return [INBOX, *sorted(p for p in self._folders if p != INBOX)]

    def changes(self, folder: str, cursor: str, *, max_size: int | None = None) -> Iterator[Change]:
        """Messages created in ``folder`` since ``cursor``, in the order SyncFolderItems lists them."""
        self._caught_up.pop(folder, None)
        target = self._folder(folder)
        tag = _folder_tag(target.id)
        state, skip = _parse_cursor(cursor, tag)
        restarted = False
        while True:
            try:
                page = self._page(target, state, folder)
            except _InvalidSyncState as invalid:
                if restarted or not state:
                    raise invalid.error from invalid
                # Expired or unknown: read the folder from the start; message identities drop copies.
                state, skip, restarted = "", frozenset(), True
                continue
            yield from self._page_changes(page, tag, state, skip, max_size, folder)
            if page.complete:  # IncludesLastItemInRange: this state reads nothing already seen
                self._caught_up[folder] = _cursor(tag, page.state, frozenset())
            if page.complete or page.state == state:
                return
            state, skip = page.state, frozenset()

    def caught_up(self, folder: str) -> str | None:
        """The sync state SyncFolderItems gave with IncludesLastItemInRange when ``changes``
        was read to its end: a poll that found nothing new, or only updates and deletions,
        moves on with it too."""
        return self._caught_up.get(folder)

    def remove(self, folder: str, server_ids: Sequence[str]) -> None:
        """Move to Deleted Items, as Dynamics 365 does; a message already gone is no failure."""
        if not server_ids:
            return
        ids = [(server_id, None) for server_id in server_ids]
        results = self.call(
            lambda: self.account.bulk_delete(ids=ids, delete_type=MOVE_TO_DELETED_ITEMS), folder
        )
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, ErrorItemNotFound):
                raise ews_errors.translate(result, self.settings, folder=folder)

    def move_to_undeliverable(self, folder: str, server_ids: Sequence[str]) -> None:
        """MoveItem to the top-level Undeliverable folder (found by name, else CreateFolder
        under msgfolderroot); a message already gone is no failure."""
        if not server_ids:
            return
        target = self._undeliverable()
        ids = [(server_id, None) for server_id in server_ids]
        results = self.call(lambda: self.account.bulk_move(ids=ids, to_folder=target), folder)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, ErrorItemNotFound):
                raise ews_errors.translate(result, self.settings, folder=folder)

    def _undeliverable(self) -> BaseFolder:
        root = self.call(lambda: self.account.msg_folder_root)
        found = self._top_folder(root, UNDELIVERABLE)
        if found is not None:
            return found

        def create() -> BaseFolder | None:
            try:
                new = Folder(parent=root, name=UNDELIVERABLE, folder_class="IPF.Note")
                created: BaseFolder = CreateFolder(account=self.account).get(
                    parent_folder=root, folders=[new]
                )
                return created
            except ErrorFolderExists:
                return None  # created meanwhile by another session of the mailbox

        created = self.call(create, UNDELIVERABLE)
        found = created or self._top_folder(root, UNDELIVERABLE)
        if found is None:
            raise PermanentError(
                f"{ews_errors.server(self.settings)} did not create the folder {UNDELIVERABLE} in "
                f"{ews_account.mailbox_of(self.settings)}: one of that name exists at the top of the "
                "mailbox but is not listed (hidden). Unhide or rename it, so that failed email can be "
                "moved there.",
                code="folder_hidden",
            )
        return found

    def _top_folder(self, root: BaseFolder, name: str) -> BaseFolder | None:
        """The folder named ``name`` beside the Inbox (Exchange compares folder names without case)."""
        children = self.call(
            lambda: list(FolderCollection(account=self.account, folders=[root]).find_folders(depth=SHALLOW)),
            name,
        )
        return next((f for f in children if str(f.name or "").lower() == name.lower()), None)

    # -- Outgoing -------------------------------------------------------------------

    def send(self, raw: bytes, *, mail_from: str, rcpt_to: list[str]) -> SendResult:
        """CreateItem SendAndSaveCopy with the MIME as it is; Bcc recipients from the envelope."""
        recipients = _recipients(raw, rcpt_to)
        message = Message(
            account=self.account,
            folder=self.call(lambda: self.account.sent),
            mime_content=raw,
            **recipients.fields(),
        )
        try:
            with ews_account.trusting(self.settings):
                message.send_and_save()
        except Exception as error:
            raise self._refusal(error, rcpt_to) from error
        return SendResult()

    def submit(self, raw: bytes, *, mail_from: str, rcpt_to: list[str]) -> Answered:
        """EWS answers at once: the verdict is already read (a message refusal is kept for ``result``)."""
        try:
            return Answered(self.send(raw, mail_from=mail_from, rcpt_to=rcpt_to), None)
        except (MessageError, TransientError) as error:
            return Answered(None, error)

    def _refusal(self, error: Exception, rcpt_to: list[str]) -> SyncError:
        name = type(error).__name__
        if name in RECIPIENT_ERRORS:
            return MessageError(
                f"Exchange server {ews_errors.server(self.settings)} refused the message: a recipient is "
                f"not valid ({name}: {ews_errors.text(error)}); the recipients were {', '.join(rcpt_to)}. "
                "Correct the recipients' addresses and send it again.",
                code="recipients_refused",
            )
        if name in MESSAGE_ERRORS:
            return MessageError(
                f"Exchange server {ews_errors.server(self.settings)} refused the message ({name}: "
                f"{ews_errors.text(error)}). Make it smaller or correct it and send it again.",
                code=MESSAGE_ERRORS[name],
            )
        if name in SENDER_ERRORS:
            return PermanentError(
                f"{self.settings.username} may not send as {ews_account.mailbox_of(self.settings)} on "
                f"{ews_errors.server(self.settings)} ({name}). Grant it Send As (Add-ADPermission "
                "-ExtendedRights Send-As) or sign in as the mailbox itself.",
                code="sender_refused",
            )
        found = ews_errors.translate(error, self.settings)
        if found.code in LOST_ANSWER:
            lost = (
                f"gave no answer within {self.settings.timeout:g} seconds"
                if found.code == "timeout"
                else "closed the connection"
            )
            return TransientError(
                f"Exchange server {ews_errors.server(self.settings)} {lost} after a message was handed to "
                "it for sending. It may have sent it, so it is not sent again automatically: check Sent "
                "Items or the recipient's mailbox, then resend or cancel it.",
                code="outcome_unknown",
            )
        return found

    # -- SentItems ------------------------------------------------------------------

    def find_sent(self, message_id: str) -> bool:
        return bool(self._sent_holding([message_id]))

    def save_to_sent(self, raws: Iterable[bytes]) -> None:
        """Copies of the messages Sent Items does not hold yet (SendAndSaveCopy saved the others)."""
        pending = list(raws)
        for start in range(0, len(pending), LOOKUP_BATCH):
            batch = pending[start : start + LOOKUP_BATCH]
            held = self._sent_holding([_message_id(raw) for raw in batch])
            missing = [
                raw for raw in batch if not _message_id(raw) or _normal_id(_message_id(raw)) not in held
            ]
            if missing:
                self._save(missing)

    def _save(self, raws: list[bytes]) -> None:
        sent = self.call(lambda: self.account.sent)
        items = [Message(account=self.account, folder=sent, mime_content=raw, is_read=True) for raw in raws]
        results = self.call(
            lambda: self.account.bulk_create(folder=sent, items=items, message_disposition=SAVE_ONLY)
        )
        for result in results:
            if isinstance(result, Exception):
                raise ews_errors.translate(result, self.settings, folder="Sent Items")

    def _sent_holding(self, message_ids: list[str]) -> set[str]:
        """Which of these Message-IDs Sent Items holds (normalized: "<id>")."""
        # Asked as written (the server may compare case-sensitively), compared here without case.
        wanted = sorted({_bracketed(m) for m in message_ids if m})
        if not wanted:
            return set()
        query = Q()
        for message_id in wanted:
            query |= Q(message_id=message_id)
        found = self.call(
            lambda: list(self.account.sent.filter(query).values_list("message_id", flat=True)), "Sent Items"
        )
        return {_normal_id(str(m)) for m in found if m}

    # -- reading a folder -----------------------------------------------------------

    def _folder(self, path: str) -> BaseFolder:
        if path not in self._folders and path.startswith(INBOX + "/"):
            self.folders(include_subfolders=True)
        if path not in self._folders:
            raise PermanentError(
                f"The folder {path!r} does not exist in the mailbox {ews_account.mailbox_of(self.settings)} "
                f"on {ews_errors.server(self.settings)}. It was deleted or renamed; change the mailbox's "
                "folder settings or create it again.",
                code="folder_not_found",
            )
        return self._folders[path]

    def current_cursor(self, folder: str) -> str:
        """The cursor of ``folder`` as it stands now: paged through in EWS's largest pages,
        ids only, no message read."""
        target = self._folder(folder)
        state = ""
        while True:
            page = self._page(target, state, folder, size=MAX_PAGE_SIZE)
            if page.complete or page.state == state:
                return _cursor(_folder_tag(target.id), page.state, frozenset())
            state = page.state

    def _page(self, folder: BaseFolder, state: str, path: str, size: int = 0) -> _Page:
        service = CheckedSyncFolderItems(account=self.account)
        fields = {
            f
            for f in folder.normalize_fields(fields=["size", "datetime_received"])
            if not f.field.is_attribute
        }

        def read() -> list[Any]:
            return list(
                service.call(
                    folder=folder,
                    shape=ID_ONLY,
                    additional_fields=fields,
                    sync_state=state or None,
                    ignore=None,
                    max_changes_returned=size or PAGE_SIZE,
                    sync_scope=None,
                )
            )

        try:
            with ews_account.trusting(self.settings):
                listed = read()
                # An error answer kept in the response (not raised) comes as an element.
                failed = next((e for e in listed if isinstance(e, Exception)), None)
                if failed is not None:
                    raise failed
        except Exception as error:
            translated = ews_errors.translate(error, self.settings, folder=path)
            if ews_errors.is_invalid_sync_state(error):
                raise _InvalidSyncState(translated) from error
            raise translated from error
        created = [item for change, item in listed if change == SyncFolderItems.CREATE]
        return _Page(created, str(service.sync_state or ""), bool(service.includes_last_item_in_range))

    def _page_changes(
        self, page: _Page, tag: str, state: str, skip: frozenset[str], max_size: int | None, path: str
    ) -> Iterator[Change]:
        new = [item for item in page.created if _item_tag(item.id) not in skip]
        done = set(skip)
        for batch in _batches(new, max_size):
            bodies = self._mime([item.id for item in batch if _fits(item, max_size)], path)
            for item in batch:
                done.add(_item_tag(item.id))
                if _fits(item, max_size) and item.id not in bodies:
                    continue  # deleted since it was listed: nothing left to import
                raw = bodies.get(item.id)
                last = item is new[-1]
                after = (
                    _cursor(tag, page.state, frozenset()) if last else _cursor(tag, state, frozenset(done))
                )
                size = len(raw) if raw is not None else int(item.size or 0)
                yield Change(item.id, size, _received(item.datetime_received), raw, after.__str__)

    def _mime(self, ids: list[str], path: str) -> dict[str, bytes]:
        if not ids:
            return {}
        found = self.call(
            lambda: list(self.account.fetch(ids=[(i, None) for i in ids], only_fields=["mime_content"])), path
        )
        bodies: dict[str, bytes] = {}
        for item in found:
            if isinstance(item, ErrorItemNotFound):
                continue
            if isinstance(item, Exception):
                raise ews_errors.translate(item, self.settings, folder=path)
            bodies[item.id] = bytes(item.mime_content)
        return bodies

    # -- calls ------------------------------------------------------------------------


@dataclass(frozen=True)
class Answered:
    """A verdict already read (sync.connectors.interfaces.Verdict)."""

    sent: SendResult | None
    refused: SyncError | None

    def result(self) -> SendResult:
        if self.refused is not None:
            raise self.refused
        return self.sent or SendResult()


@dataclass(frozen=True)
class _Page:
    created: list[Any]
    state: str
    complete: bool


class _InvalidSyncState(Exception):
    def __init__(self, error: SyncError) -> None:
        super().__init__(error.message)
        self.error = error


class CheckedSyncFolderItems(SyncFolderItems):  # type: ignore[misc]  # exchangelib is untyped
    """exchangelib's SyncFolderItems reads SyncState before it looks at the answer's
    ResponseClass, and an error answer need not carry one (messages.xsd: minOccurs=0):
    an invalid sync state would end in an AttributeError instead of its EWS error."""

    def _get_element_container(self, message: Any, name: Any = None) -> Any:
        if message.find(f"{{{MNS}}}SyncState") is None:
            return EWSAccountService._get_element_container(self, message=message, name=name)
        return super()._get_element_container(message=message, name=name)


class EwsProbe:
    """Test & enable over EWS (sync.connectors.interfaces.Probe). The position is the
    inbox's sync state; the marked message is looked for among what arrived since."""

    def check_incoming(self, settings: ServerSettings, *, include_subfolders: bool) -> None:
        with EwsConnection(settings) as ews:
            ews.folders(include_subfolders=include_subfolders)

    def position(self, settings: ServerSettings) -> object:
        with EwsConnection(settings) as ews:
            return _Position(ews.current_cursor(INBOX))

    def take_marked(self, settings: ServerSettings, header: str, token: str, since: object) -> bool:
        if not isinstance(since, _Position):
            raise TypeError("an EWS position is the inbox's sync state")
        with EwsConnection(settings) as ews:
            for change in ews.changes(INBOX, since.cursor):
                if change.raw is not None and carries(change.raw, header, token):
                    ews.remove(INBOX, [change.server_id])
                    return True
        return False


@dataclass(frozen=True)
class _Position:
    cursor: str


# -- cursors ------------------------------------------------------------------------------


def _cursor(tag: str, state: str, done: frozenset[str]) -> str:
    return ":".join([CURSOR_PREFIX, tag, state, ",".join(sorted(done))])


def _parse_cursor(cursor: str, tag: str) -> tuple[str, frozenset[str]]:
    """The sync state and the page's messages already stored; a cursor of another
    folder, another connector or none at all starts the folder again."""
    parts = cursor.split(":")
    if len(parts) != 4 or parts[0] != CURSOR_PREFIX or parts[1] != tag:
        return "", frozenset()
    return parts[2], frozenset(filter(None, parts[3].split(",")))


def _folder_tag(folder_id: str) -> str:
    return hashlib.sha256(folder_id.encode()).hexdigest()[:12]


def _item_tag(item_id: str) -> str:
    return hashlib.sha256(item_id.encode()).hexdigest()[:12]


# -- messages -----------------------------------------------------------------------------


def _fits(item: Any, max_size: int | None) -> bool:
    return max_size is None or int(item.size or 0) <= max_size


def _batches(items: list[Any], max_size: int | None) -> Iterator[list[Any]]:
    batch: list[Any] = []
    size = 0
    for item in items:
        cost = int(item.size or 0) if _fits(item, max_size) else 0
        if batch and (len(batch) >= BATCH_ITEMS or size + cost > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += cost
    if batch:
        yield batch


def _received(value: datetime | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value.timestamp(), UTC)


def _headers(raw: bytes) -> Any:
    return BytesHeaderParser(policy=compat32).parsebytes(raw)


def _message_id(raw: bytes) -> str:
    return str(_headers(raw).get("Message-ID", "") or "").strip()


def _bracketed(message_id: str) -> str:
    """A Message-ID as InternetMessageId holds it: "<id>"."""
    return f"<{message_id.strip().strip('<>').strip()}>"


def _normal_id(message_id: str) -> str:
    return _bracketed(message_id).lower()


@dataclass(frozen=True)
class _Recipients:
    """Who a message goes to: the MIME's To and Cc (with their names), and the envelope's others (Bcc)."""

    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    bcc: list[str]

    def fields(self) -> dict[str, list[Mailbox]]:
        """Without Bcc the MIME says it all. With Bcc, To and Cc are given as properties too
        (the MIME's own, names kept): an Exchange that takes the recipient properties
        instead of the MIME's headers, rather than besides them, still sends to everyone."""
        if not self.bcc:
            return {}
        found = {
            "to_recipients": [Mailbox(name=n or None, email_address=a) for n, a in self.to],
            "cc_recipients": [Mailbox(name=n or None, email_address=a) for n, a in self.cc],
            "bcc_recipients": [Mailbox(email_address=a) for a in self.bcc],
        }
        return {name: boxes for name, boxes in found.items() if boxes}


def _recipients(raw: bytes, rcpt_to: list[str]) -> _Recipients:
    """The MIME's recipients and the envelope's others (Bcc). A bad address, or a MIME
    recipient missing from the envelope, refuses the message here: EWS cannot send
    to only some of them."""
    bad = [a for a in rcpt_to if not _plausible(a)]
    if bad:
        raise MessageError(
            f"The recipient address {', '.join(bad)} is not valid (EWS refuses the whole message for it). "
            "Correct the address and send it again.",
            code="recipients_refused",
        )
    if not rcpt_to:
        raise MessageError("The message has no recipients.", code="no_recipients")
    headers = _headers(raw)
    named = {
        key: [(n, a) for n, a in getaddresses(headers.get_all(key, [])) if a] for key in ("To", "Cc", "Bcc")
    }
    in_mime = {a.lower() for found in named.values() for _, a in found}
    unasked = sorted(in_mime - {a.lower() for a in rcpt_to})
    if unasked:
        # Exchange sends to every address of the MIME: it cannot be told to leave one out.
        raise MessageError(
            f"The message names {', '.join(unasked)} as a recipient but the envelope does not; "
            "Exchange would deliver to them anyway. Correct the message's recipients.",
            code="recipients_mismatch",
        )
    bcc: list[str] = []
    for address in rcpt_to:
        if address.lower() not in in_mime and address.lower() not in {b.lower() for b in bcc}:
            bcc.append(address)
    bcc += [a for _, a in named["Bcc"] if a.lower() not in {b.lower() for b in bcc}]
    return _Recipients(named["To"], named["Cc"], bcc)


def _plausible(address: str) -> bool:
    local, at, domain = address.strip().rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in address.strip())
