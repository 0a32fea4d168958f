"""Incoming mail: fetch -> parse -> dedupe -> track/correlate -> store.

Messages are stored a batch at a time (sync/batch_store.py), each batch in one
transaction together with its receipts and the folder cursor's step past it:
a crash anywhere loses nothing (the cursor did not move) and doubles nothing
(the message identity is unique). ``store_message`` stores one message alone,
with its own cursor step; the batch hands it the rare cases.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from django.conf import settings
from django.db import connection as database
from django.db import transaction
from django.db.models.expressions import RawSQL

from mailboxes.models import FolderScope, Mailbox
from sync import (
    alerts,
    batch_store,
    clock,
    forwarding,
    mailbox_state,
    one_message,
    overlap,
    parsing,
    read_ahead,
    time_limits,
    tracking,
)
from sync.connectors.base import INBOX, FetchedMessage, FolderState, Pop3Message
from sync.connectors.imap import ImapConnection, UnfetchableMessage
from sync.connectors.interfaces import Incoming
from sync.connectors.pop3 import Pop3Connection
from sync.errors import MessageError, PermanentError, SyncError, TransientError
from sync.models import (
    FolderCursor,
    QuarantinedMessage,
    QuarantineState,
    Receipt,
    ReceiptOutcome,
    SyncKind,
    SyncOutcome,
    SyncRun,
)
from sync.one_message import RunScope, current_scope, quarantine, receipt_for
from sync.receipts import Source
from sync.server_settings import connectors_of, incoming_settings, profile_of
from sync.sql import quoted
from sync.undeliverable import FailedMessageMover

# A message's key in its folder: its UID (IMAP) or UIDL (POP3).
Key = TypeVar("Key", int, str)
# Bodies are downloaded this many at a time (and read ahead by as many).
FETCH_MESSAGES = 50
# A batch of messages is committed after this long even when not full, so a
# message stored in it is not held invisible (and its identity locked) for long.
BATCH_SECONDS = 1.0


@dataclass
class Budget:
    """Bounds one run in messages and seconds; what is left continues next time."""

    messages: int = field(default_factory=lambda: settings.SYNC_RUN_MAX_MESSAGES)
    deadline: float = field(default_factory=lambda: time.monotonic() + settings.SYNC_RUN_MAX_SECONDS)
    used: int = 0

    @property
    def exhausted(self) -> bool:
        return self.used >= self.messages or time.monotonic() >= self.deadline

    def spend(self) -> None:
        self.used += 1


# Set for one run by sync_incoming (sync.one_message reads it for each message).
_scope = one_message.run_scope


# --- storing one message -----------------------------------------------------------------------


def store_message(*, source: Source, raw: bytes, advance: Callable[[], None]) -> Receipt:
    """Turn one raw message into a receipt (and an activity when tracked), and
    call ``advance`` to move the cursor, all in one transaction. A message that
    takes longer than ``SYNC_MESSAGE_MAX_SECONDS`` is quarantined instead."""
    limit = time_limits.MessageTimeLimit(settings.SYNC_MESSAGE_MAX_SECONDS)
    try:
        with limit.running():
            return _store(source, raw, advance, limit)
    except time_limits.MessageTooSlow as error:
        return quarantine(source=source, raw=raw, error=error, advance=advance)


def _store(
    source: Source, raw: bytes, advance: Callable[[], None], limit: time_limits.MessageTimeLimit
) -> Receipt:
    if source.mailbox.is_forward_mailbox:
        return forwarding.store_forwarded(source=source, raw=raw, advance=advance)
    try:
        with limit.interruptible():
            parsed = parsing.parse(raw)
    except MessageError as error:
        return quarantine(source=source, raw=raw, error=error, advance=advance)
    return _store_parsed(source, parsed, raw, advance, limit)


def _store_parsed(
    source: Source,
    parsed: parsing.ParsedMessage,
    raw: bytes,
    advance: Callable[[], None],
    limit: time_limits.MessageTimeLimit,
) -> Receipt:
    with transaction.atomic():
        limit.bound_statements()
        receipt = receipt_for(source, parsed, raw)
        limit.check()
        advance()
        return receipt


def _one_by_one(item: batch_store.Pending) -> Receipt:
    """A message of a batch through the one-message pipeline (in its own savepoint,
    with its own time limit); the batch moves the cursor."""
    limit = time_limits.MessageTimeLimit(settings.SYNC_MESSAGE_MAX_SECONDS)
    try:
        with limit.running():
            return _store_parsed(item.source, item.parsed, item.raw, _stays, limit)
    except time_limits.MessageTooSlow as error:
        return quarantine(source=item.source, raw=item.raw, error=error, advance=_stays)


def reprocess_quarantined(*, quarantined_id: int) -> Receipt:
    """Run a quarantined message through the pipeline again (after a fix)."""
    held = QuarantinedMessage.objects.select_related("mailbox").get(pk=quarantined_id)
    if not held.raw:
        raise MessageError(
            "The message was not downloaded (over the size limit); nothing to reprocess.", code="no_raw"
        )
    with held.raw.open("rb") as stored:
        raw = stored.read()
    source = Source(held.mailbox, held.folder, held.server_id, held.server_received_on)
    try:
        parsed = parsing.parse(raw)
    except MessageError as error:
        QuarantinedMessage.objects.filter(pk=held.pk).update(
            attempts=held.attempts + 1, error_code=error.code, error_text=error.message
        )
        raise
    with transaction.atomic():
        Receipt.objects.filter(mailbox=held.mailbox, quarantined=held).delete()
        if held.mailbox.is_forward_mailbox:
            receipt = forwarding.forwarded_receipt(source=source, raw=raw)
        else:
            receipt = receipt_for(source, parsed, raw)
        QuarantinedMessage.objects.filter(pk=held.pk).update(
            state=QuarantineState.REPROCESSED, reprocessed_on=clock.now(), attempts=held.attempts + 1
        )
        return receipt


# --- one run of one mailbox --------------------------------------------------------------------


def sync_incoming(*, mailbox: Mailbox, on_progress: Callable[[SyncRun], None] | None = None) -> SyncRun:
    """Fetch and store what is new in a mailbox, within one run's budget;
    ``on_progress`` is called with the run after each message."""
    # Saved with its first message (so a long run shows while it runs) or when it
    # finishes: an idle poll writes its run once.
    run = SyncRun(mailbox=mailbox, kind=SyncKind.INCOMING, started_on=clock.now())
    budget = Budget()
    scope = _scope.set(RunScope(on_progress))
    try:
        source = connectors_of(profile_of(mailbox)).incoming(incoming_settings(mailbox))
        cursors = overlap.open_while(source, lambda: _Cursors(mailbox))
        try:
            _read(source, mailbox, run, budget, cursors)
        except BaseException as error:
            source.__exit__(type(error), error, error.__traceback__)
            raise
        closing = overlap.close_in_background(source)  # while the result is written
    except (PermanentError, TransientError) as error:
        alerts.run_finish(run, SyncOutcome.FAILED, error)
        mailbox_state.record_failure(mailbox=mailbox, kind=SyncKind.INCOMING, error=error)
        return run
    except BaseException:
        alerts.run_finish(
            run, SyncOutcome.FAILED, SyncError("Internal error; see the worker log.", code="internal_error")
        )
        raise
    finally:
        _scope.reset(scope)
    alerts.run_close(run, SyncOutcome.PARTIAL if budget.exhausted else SyncOutcome.SUCCESS)
    mailbox_state.record_success(
        mailbox=mailbox, kind=SyncKind.INCOMING, processed=run.received, failed=run.quarantined, run=run
    )
    closing.join()
    return run


_COUNTERS = {
    ReceiptOutcome.TRACKED: "tracked",
    ReceiptOutcome.LINKED: "linked",
    ReceiptOutcome.QUARANTINED: "quarantined",
    # A forward mailbox's message that became (or joined) its forwarding user's activity.
    ReceiptOutcome.FORWARDED: "tracked",
}


def _count(run: SyncRun, receipt: Receipt) -> None:
    """Count what this run did with the message: one already known (its receipt
    found, not made) is linked, whatever it became the first time."""
    run.received += 1
    if receipt.seen_before and receipt.outcome != ReceiptOutcome.QUARANTINED:
        counter = "linked"
    else:
        counter = _COUNTERS.get(ReceiptOutcome(receipt.outcome), "not_tracked")
    setattr(run, counter, getattr(run, counter) + 1)
    if run.pk is None:
        run.save()
    scope = _scope.get()
    if scope is not None and scope.on_progress is not None:
        scope.on_progress(run)


_CURSOR_FIELDS = (
    "id",
    "folder",
    "generation",
    "uidvalidity",
    "last_uid",
    "highestmodseq",
    "seen_uidls",
    "token",
)


class _Cursors:
    """The mailbox's folder cursors, read in one statement for the whole run
    (while the server is still being connected to: ``overlap.open_while``)."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.known = {cursor.folder: cursor for cursor in _read_cursors(mailbox)}

    def of(self, folder: str) -> FolderCursor:
        return _cursor(self.mailbox, folder, self.known.get(folder))


def _cursor(mailbox: Mailbox, folder: str, cursor: FolderCursor | None) -> FolderCursor:
    if cursor is None:
        cursor, _ = FolderCursor.objects.get_or_create(
            mailbox=mailbox, folder=folder, defaults={"generation": mailbox.configuration_generation}
        )
    if cursor.generation != mailbox.configuration_generation:
        # The address or profile changed: what the old cursor says is about another mailbox.
        cursor.generation = mailbox.configuration_generation
        cursor.uidvalidity, cursor.last_uid, cursor.highestmodseq, cursor.seen_uidls, cursor.token = (
            None,
            0,
            None,
            [],
            "",
        )
        cursor.save()
    return cursor


def _read_cursors(mailbox: Mailbox) -> list[FolderCursor]:
    """The mailbox's cursors, read by hand: on every poll of every mailbox, where
    building the queryset costs three times the statement."""
    table, *columns, mailbox_id = quoted(FolderCursor, *_CURSOR_FIELDS, "mailbox")
    with database.cursor() as db:
        db.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {mailbox_id} = %s", [mailbox.pk])  # noqa: S608
        rows = db.fetchall()
    uidls = FolderCursor._meta.get_field("seen_uidls")
    cursors = []
    for row in rows:
        values = dict(zip(_CURSOR_FIELDS, row, strict=True))
        # As the ORM decodes it (no query expression here: Django passes None too).
        values["seen_uidls"] = uidls.from_db_value(values["seen_uidls"], None, database)  # type: ignore[arg-type]
        cursors.append(FolderCursor.from_db(database.alias, list(values), list(values.values())))
    return cursors


def _read(source: Incoming, mailbox: Mailbox, run: SyncRun, budget: Budget, cursors: _Cursors) -> None:
    """Each folder the mailbox syncs, until the run's budget is spent. Any
    connector is read through its interface (``_sync_changes_folder``), except
    IMAP and POP3, the first two, which keep loops tuned to them (bodies read
    ahead in a thread, POP3's UIDLs appended by the database) over the cursor
    columns they had before the interface existed."""
    for folder in source.folders(include_subfolders=mailbox.folders == FolderScope.INBOX_AND_SUBFOLDERS):
        if budget.exhausted:
            return
        cursor = cursors.of(folder)
        if isinstance(source, ImapConnection):
            _sync_imap_folder(source, mailbox, folder, run, budget, cursor)
        elif isinstance(source, Pop3Connection):
            _sync_pop3(source, mailbox, run, budget, cursor)
        else:
            _sync_changes_folder(source, mailbox, folder, run, budget, cursor)


def _sync_changes_folder(
    source: Incoming, mailbox: Mailbox, folder: str, run: SyncRun, budget: Budget, cursor: FolderCursor
) -> None:
    cutoff = tracking.fetch_cutoff(mailbox)
    # Each message's cursor, asked for only at the end of its batch.
    after: dict[str, Callable[[], str]] = {}

    def step(server_ids: list[str]) -> None:
        cursor.token = after[server_ids[-1]]()
        FolderCursor.objects.filter(pk=cursor.pk).update(token=cursor.token)
        after.clear()

    mover = FailedMessageMover.of(source, mailbox, folder)
    batches = _Batches[str](mailbox, run, budget, step, mover.move if mover else None)
    read_whole = False
    try:
        for change in source.changes(folder, cursor.token, max_size=settings.SYNC_MAX_MESSAGE_BYTES):
            if budget.exhausted:
                break
            after[change.server_id] = change.after
            if cutoff and change.received_on and change.received_on < cutoff:
                batches.skip(change.server_id)
                continue
            place = Source(mailbox, folder, change.server_id, change.received_on)
            batches.take(change.server_id, place, change.raw, change.size)
        else:
            read_whole = True
    except BaseException as error:
        batches.abort(error)
        raise
    batches.commit()
    # A cursor travels on a message: a quiet folder (or one whose last pages held only
    # updates and deletions) would keep an old delta link / sync state until the server
    # forgets it and the folder is downloaded again. Saved only once everything read is
    # committed, and only when the folder was read to its end (not cut off by the budget).
    newest = source.caught_up(folder) if read_whole else None
    if newest is not None and newest != cursor.token:
        cursor.token = newest
        FolderCursor.objects.filter(pk=cursor.pk).update(token=newest)
    if mailbox.delete_email_after_processing and batches.processed:
        moved = mover.moved if mover else set()
        source.remove(folder, [key for key in batches.processed if key not in moved])


def _sync_imap_folder(
    connection: ImapConnection,
    mailbox: Mailbox,
    folder: str,
    run: SyncRun,
    budget: Budget,
    cursor: FolderCursor,
) -> None:
    state = connection.select(folder, readonly=not mailbox.delete_email_after_processing)
    if cursor.uidvalidity != state.uidvalidity:
        # New UIDVALIDITY: every UID changed, so read the folder again; identities relink it.
        FolderCursor.objects.filter(pk=cursor.pk).update(uidvalidity=state.uidvalidity, last_uid=0)
        cursor.uidvalidity, cursor.last_uid = state.uidvalidity, 0
    if state.uidnext is not None and state.uidnext <= cursor.last_uid + 1:
        return  # UIDNEXT says nothing arrived since the last UID stored: no need to ask

    def step(uids: list[int]) -> None:
        FolderCursor.objects.filter(pk=cursor.pk).update(last_uid=uids[-1], highestmodseq=state.highestmodseq)

    batches = _Batches[int](mailbox, run, budget, step)
    try:
        _take_new(connection, _ImapFolder(mailbox, folder, state, batches), cursor.last_uid, budget)
    except BaseException as error:
        batches.abort(error)
        raise
    batches.commit()
    if mailbox.delete_email_after_processing and batches.processed:
        connection.delete(batches.processed)


def _take_new(connection: ImapConnection, folder: _ImapFolder, after: int, budget: Budget) -> None:
    while not budget.exhausted:
        # The next bodies download while the batch before is stored (sync/read_ahead.py).
        fetching = connection.fetch_new(
            after, batch_size=FETCH_MESSAGES, max_size=settings.SYNC_MAX_MESSAGE_BYTES
        )
        try:
            with read_ahead.ReadAhead(fetching, depth=FETCH_MESSAGES) as reader:
                for fetched in reader:
                    if budget.exhausted:
                        break
                    folder.take(fetched)
                    after = fetched.uid
            return
        except UnfetchableMessage as error:
            # One message the server will not hand out must not block the mailbox.
            folder.quarantine_unfetchable(error)
            after = error.uid


class _ImapFolder:
    """What an IMAP folder's messages are to the batches: their sources (the UID
    under the folder's UIDVALIDITY) and "process email from"."""

    def __init__(self, mailbox: Mailbox, folder: str, state: FolderState, batches: _Batches[int]) -> None:
        self.mailbox, self.folder, self.state, self.batches = mailbox, folder, state, batches
        self.cutoff = tracking.fetch_cutoff(mailbox)

    def _source(self, uid: int, received: datetime | None) -> Source:
        return Source(self.mailbox, self.folder, f"{self.state.uidvalidity}:{uid}", received)

    def take(self, fetched: FetchedMessage) -> None:
        if self.cutoff and fetched.internaldate and fetched.internaldate < self.cutoff:
            self.batches.skip(fetched.uid)
            return
        source = self._source(fetched.uid, fetched.internaldate)
        self.batches.take(fetched.uid, source, fetched.raw, fetched.size)

    def quarantine_unfetchable(self, error: UnfetchableMessage) -> None:
        self.batches.quarantine(error.uid, self._source(error.uid, None), error)


class _Batches(Generic[Key]):
    """Storing what one folder yields. Messages are stored in batches, each in
    one transaction with the cursor ``step`` past them (a commit costs a disk
    flush, so one per message would be most of a message's cost): a crash
    loses a batch's work and its cursor step together, and the next run reads
    those messages again. Parsed messages are stored together
    (sync/batch_store.py); one that cannot be is quarantined without the others."""

    def __init__(
        self,
        mailbox: Mailbox,
        run: SyncRun,
        budget: Budget,
        step: Callable[[list[Key]], None],
        on_quarantined: Callable[[list[tuple[Key, Receipt]]], None] | None = None,
    ) -> None:
        self.mailbox, self.run, self.budget = mailbox, run, budget
        self.step: Callable[[list[Key]], None] = step
        # Told, after each commit, the messages the batch quarantined (and their receipts).
        self.on_quarantined: Callable[[list[tuple[Key, Receipt]]], None] | None = on_quarantined
        # The keys (UIDs, UIDLs) of the messages stored, in order.
        self.processed: list[Key] = []
        self._transaction: transaction.Atomic | None = None
        self._pending: list[tuple[Key, Receipt | batch_store.Pending | None]] = []
        self._opened = 0.0

    def take(self, key: Key, source: Source, raw: bytes | None, size: int) -> None:
        """One message: stored, or quarantined when it was too large to download."""
        if raw is None:
            limit = settings.SYNC_MAX_MESSAGE_BYTES
            too_big = MessageError(
                f"The message is {size:,} bytes, over the limit of {limit:,}.", code="too_large"
            )
            self.quarantine(key, source, too_big)
        elif self.mailbox.is_forward_mailbox:
            self._done(key, lambda: store_message(source=source, raw=raw, advance=_stays))
        else:
            self._done(key, lambda: _parsed_or_quarantined(source, raw))

    def skip(self, key: Key) -> None:
        """A message left alone ("process email from"): the cursor passes it."""
        self._done(key, lambda: None)

    def quarantine(self, key: Key, source: Source, error: MessageError) -> None:
        self._done(key, lambda: quarantine(source=source, raw=None, error=error, advance=_stays))

    def _done(self, key: Key, outcome: Callable[[], Receipt | batch_store.Pending | None]) -> None:
        self.budget.spend()
        self._begin()
        self._pending.append((key, outcome()))
        full = len(self._pending) >= settings.SYNC_BATCH_MESSAGES
        if full or time.monotonic() - self._opened >= BATCH_SECONDS:
            self.commit()

    def _begin(self) -> None:
        if self._transaction is None:
            self._transaction = transaction.atomic()
            self._transaction.__enter__()
            self._opened = time.monotonic()
            # No statement outlives one message's time limit (a message's savepoint
            # rolls back, and it is quarantined as too slow).
            time_limits.bound_transaction(settings.SYNC_MESSAGE_MAX_SECONDS)

    def commit(self) -> None:
        """Store the batch's parsed messages, step the cursor past the batch and
        commit; then count what it stored."""
        if self._transaction is None:
            return
        try:
            receipts = self._store_parsed()
            self.step([key for key, _ in self._pending])
        except BaseException as error:
            self.abort(error)  # the transaction is never left open
            raise
        current, self._transaction = self._transaction, None
        current.__exit__(None, None, None)
        pending, self._pending = self._pending, []
        quarantined: list[tuple[Key, Receipt]] = []
        for (key, _), receipt in zip(pending, receipts, strict=True):
            if receipt is not None:
                _count(self.run, receipt)
                self.processed.append(key)
                if self.on_quarantined is not None and receipt.outcome == ReceiptOutcome.QUARANTINED:
                    quarantined.append((key, receipt))
        if quarantined and self.on_quarantined is not None:
            self.on_quarantined(quarantined)

    def _store_parsed(self) -> list[Receipt | None]:
        """Each pending message's receipt: the parsed ones stored together."""
        parsed = [outcome for _, outcome in self._pending if isinstance(outcome, batch_store.Pending)]
        stored = iter(
            batch_store.store_batch(parsed, parties=current_scope().parties, one_by_one=_one_by_one)
        )
        return [
            next(stored) if isinstance(outcome, batch_store.Pending) else outcome
            for _, outcome in self._pending
        ]

    def abort(self, error: BaseException) -> None:
        """Roll the open batch back: none of it happened, the cursor did not move."""
        current, self._transaction, self._pending = self._transaction, None, []
        if current is not None:
            current.__exit__(type(error), error, error.__traceback__)


def _parsed_or_quarantined(source: Source, raw: bytes) -> Receipt | batch_store.Pending:
    """A fetched message parsed for its batch, or quarantined when it cannot be
    parsed in time."""
    limit = time_limits.MessageTimeLimit(settings.SYNC_MESSAGE_MAX_SECONDS)
    try:
        with limit.interruptible():
            return batch_store.Pending(source, raw, parsing.parse(raw))
    except MessageError as error:
        return quarantine(source=source, raw=raw, error=error, advance=_stays)


def _stays() -> None:
    """The cursor step of a message in a batch: the batch takes it (``commit``)."""


def _sync_pop3(
    connection: Pop3Connection, mailbox: Mailbox, run: SyncRun, budget: Budget, cursor: FolderCursor
) -> None:
    seen = set(cursor.seen_uidls)

    def step(uidls: list[str]) -> None:
        seen_uidls: RawSQL | list[str]
        if transaction.get_connection().vendor == "postgresql":
            # Appended by the database (jsonb ||): a large mailbox's list is not sent whole per batch.
            seen_uidls = RawSQL('"seen_uidls" || %s::jsonb', [json.dumps(uidls)])
        else:  # SQLite (make run): the whole list
            seen_uidls = [*cursor.seen_uidls, *batches.processed, *uidls]
        FolderCursor.objects.filter(pk=cursor.pk).update(seen_uidls=seen_uidls)

    batches = _Batches[str](mailbox, run, budget, step)
    messages = connection.list_messages()
    try:
        for message in messages:
            if message.uidl not in seen:
                if budget.exhausted:
                    break
                _take_pop3(connection, batches, mailbox, message)
                seen.add(message.uidl)
            # Deleted only at QUIT (RFC 1939), after every batch has committed.
            if mailbox.delete_email_after_processing:
                connection.delete(message.number)
    except BaseException as error:
        batches.abort(error)
        raise
    batches.commit()
    # Forget UIDLs no longer on the server, so the list stays as small as the mailbox.
    kept = sorted(seen & {m.uidl for m in messages})
    if kept != sorted(cursor.seen_uidls) or batches.processed:
        FolderCursor.objects.filter(pk=cursor.pk).update(seen_uidls=kept)
    connection.quit()


def _take_pop3(
    connection: Pop3Connection, batches: _Batches[str], mailbox: Mailbox, message: Pop3Message
) -> None:
    source = Source(mailbox, INBOX, message.uidl)
    too_large = message.size > settings.SYNC_MAX_MESSAGE_BYTES
    raw = None if too_large else connection.retrieve(message.number)
    batches.take(message.uidl, source, raw, message.size)
