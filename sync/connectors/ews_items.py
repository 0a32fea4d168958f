"""EWS connector for appointments, tasks and contacts (exchangelib): :class:`EwsItems`
implements :class:`sync.connectors.interfaces.ActItems` for Exchange Server profiles.

- Folders: the mailbox's distinguished Calendar, Tasks and Contacts.
- Changes: SyncFolderItems (IdOnly) with the folder's sync state as the cursor, then GetItem
  of the created and updated ids in batches; a deletion is an ItemChange without item. A
  page's changes carry the state the page was read from (a run stopped inside a page reads
  that page again, and the engine knows the versions it stored), its last change the page's
  new state. An invalid sync state (ErrorInvalidSyncStateData...) reads the folder from the
  start. An item that cannot be read as the entity is an ItemChange with ``unreadable``.
- Writes: CreateItem (a meeting with attendees with SendMeetingInvitations="SendToAllAndSaveCopy",
  as Outlook sends it: the engine decides whether a meeting goes with its attendees, and
  sends one without them when invitations must not go), UpdateItem with the change
  key and ConflictResolution="NeverOverwrite" (a stale key is ErrorIrresolvableConflict:
  ``item_changed``; an item gone is ``item_changed`` too), DeleteItem to Deleted Items (an
  appointment with SendMeetingCancellations: a meeting's attendees are told). EWS's
  DeleteItem takes no change key, so a delete first reads the item's change key (GetItem) and
  refuses a stale one; a change made between that read and the delete is lost (a small race,
  milliseconds wide, that the protocol leaves no way to close).
- A series is written as its master, then its deleted occurrences (DeleteItem of
  OccurrenceItemId by instance index) and its changed ones (UpdateItem of the occurrence:
  Exchange turns it into an exception). Updating a series sets its Recurrence again, which
  resets its exceptions in Exchange, then writes the occurrences afresh. The version returned
  is the master's change key after the last write.
  If an occurrence's write fails, the master stays created: the engine's next create of the
  same UID answers ``item_exists`` with its id, and the engine links and updates it.
- UIDs (see ews_uid): create looks for the ``serversync-uid`` property in the folder first and
  answers ``item_exists`` with the item's id. An appointment another client made carries only
  its calendar:UID, which FindItem cannot restrict on (finding it would mean listing the whole
  calendar on every create); the engine links such items by the UID it reads instead.
- ``caught_up`` asked again after this session's writes moves past them (see its docstring):
  EWS reports a deletion only of items a sync state had reported.

Field mappings and what EWS cannot hold: ews_events, ews_contacts, ews_tasks, ews_recurrence.
Every exchangelib call goes through :meth:`EwsItems._call`: the profile's CA file, and every
failure a SyncError (ews_errors).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from exchangelib import CalendarItem, Contact, Task
from exchangelib.errors import ErrorItemNotFound
from exchangelib.folders import BaseFolder
from exchangelib.items import ID_ONLY, NEVER_OVERWRITE, SEND_TO_ALL_AND_SAVE_COPY, SEND_TO_NONE
from exchangelib.properties import ItemId, OccurrenceItemId
from exchangelib.services import SyncFolderItems

from sync.connectors import ews_account, ews_contacts, ews_errors, ews_events, ews_recurrence, ews_tasks
from sync.connectors.base import ServerSettings
from sync.connectors.ews import CheckedSyncFolderItems
from sync.connectors.ews_session import EwsSession
from sync.connectors.ews_uid import UID_FIELD, register
from sync.connectors.interfaces import ENTITIES, Item, ItemChange, ItemRef
from sync.connectors.items import Card, Event, Todo
from sync.errors import MessageError, SyncError

T = TypeVar("T")

CURSOR_PREFIX = "ewsact1:"
PAGE_SIZE = 100  # changes per SyncFolderItems call (EWS allows 1 to 512)
BATCH = 50  # items per GetItem
# The item itself is refused (a value out of range, a recurrence Exchange rejects...).
REFUSALS = {
    "ErrorInvalidPropertyValue",
    "ErrorInvalidPropertySet",
    "ErrorInvalidRecurrence",
    "ErrorCalendarInvalidRecurrence",
    "ErrorCalendarInvalidDayForWeeklyRecurrence",
    "ErrorCalendarInvalidDayForTimeChangePattern",
    "ErrorCalendarDurationIsTooLong",
    "ErrorCalendarEndDateIsEarlierThanStartDate",
    "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
    "ErrorInvalidRecipients",
    "ErrorSchemaValidation",
}
STALE = {"ErrorIrresolvableConflict", "ErrorItemNotFound", "ErrorChangeKeyRequiredForWriteOperations"}


@dataclass(frozen=True)
class _Kind:
    folder: str  # the Account's distinguished folder attribute
    model: type[Any]
    fields: list[str]


KINDS = {
    "appointment": _Kind("calendar", CalendarItem, ews_events.FIELDS),
    "task": _Kind("tasks", Task, ews_tasks.FIELDS),
    "contact": _Kind("contacts", Contact, ews_contacts.FIELDS),
}


class EwsItems(EwsSession):
    """One EWS session for a mailbox's appointments, tasks and contacts; a context manager."""

    def __init__(self, settings: ServerSettings) -> None:
        register()
        super().__init__(settings)
        self._folders: dict[str, BaseFolder] = {}
        self._caught_up: dict[str, str] = {}
        # entity -> this session's own writes since its last read: item id -> the version it
        # left ("" once deleted); see caught_up.
        self._written: dict[str, dict[str, str]] = {}

    # -- reading ----------------------------------------------------------------------------

    def changes(self, entity: str, cursor: str) -> Iterator[ItemChange]:
        self._caught_up.pop(entity, None)
        self._written.pop(entity, None)
        folder = self._folder(entity)
        state = cursor.removeprefix(CURSOR_PREFIX) if cursor.startswith(CURSOR_PREFIX) else ""
        restarted = False
        while True:
            try:
                listed, new_state, last = self._page(folder, state, entity)
            except _InvalidSyncState as invalid:
                if restarted or not state:
                    raise invalid.error from None
                restarted, state = True, ""
                continue
            yield from self._page_changes(entity, listed, state, new_state)
            state = new_state
            if last:
                self._caught_up[entity] = CURSOR_PREFIX + state
                return

    def caught_up(self, entity: str) -> str | None:
        """The sync state of the read to its end; asked again after this session wrote items,
        the state past those writes too, when nothing but them changed since.

        EWS reports a deletion only of an item its sync state had reported (the state is what
        the server told the client): an item created after the saved state and deleted before
        the next read would never be reported as gone. Moving the state past the engine's own
        writes (SyncFolderItems from it, every change one of them) lets the engine keep a
        cursor that knows its items."""
        state = self._caught_up.get(entity)
        if state is None or not self._written.get(entity):
            return state
        moved = self._past_own_writes(entity, state.removeprefix(CURSOR_PREFIX))
        if moved is not None:
            self._caught_up[entity] = CURSOR_PREFIX + moved
            self._written.pop(entity, None)
        return self._caught_up[entity]

    def _past_own_writes(self, entity: str, state: str) -> str | None:
        """The state after reading from ``state`` when every change is this session's own write;
        None when another client's change is among them (the engine must read it)."""
        written = self._written.get(entity, {})
        folder = self._folder(entity)
        while True:
            try:
                listed, state, last = self._page(folder, state, entity)
            except _InvalidSyncState:
                return None
            for kind, item_id, version in listed:
                own = written.get(item_id)
                if own is None or own != ("" if kind == SyncFolderItems.DELETE else version):
                    return None
            if last:
                return state

    def _page(
        self, folder: BaseFolder, state: str, entity: str
    ) -> tuple[list[tuple[str, str, str]], str, bool]:
        """One SyncFolderItems page: (change kind, item id, change key) each, the new state, and
        whether it is the last."""
        service = CheckedSyncFolderItems(account=self.account)

        def read() -> list[Any]:
            return list(
                service.call(
                    folder=folder,
                    shape=ID_ONLY,
                    additional_fields=None,
                    sync_state=state or None,
                    ignore=None,
                    max_changes_returned=PAGE_SIZE,
                    sync_scope=None,
                )
            )

        try:
            with ews_account.trusting(self.settings):
                listed = read()
                if listed and isinstance(listed[0], Exception):
                    raise listed[0]
        except Exception as error:
            translated = ews_errors.translate(error, self.settings, folder=KINDS[entity].folder)
            if ews_errors.is_invalid_sync_state(error):
                raise _InvalidSyncState(translated) from error
            raise translated from error
        found = [(kind, *_id_of(value)) for kind, value in listed if kind != SyncFolderItems.READ_FLAG_CHANGE]
        return found, str(service.sync_state or ""), bool(service.includes_last_item_in_range)

    def _page_changes(
        self, entity: str, listed: list[tuple[str, str, str]], state: str, new_state: str
    ) -> Iterator[ItemChange]:
        live = [item_id for kind, item_id, _ in listed if kind != SyncFolderItems.DELETE]
        items = {}
        for start in range(0, len(live), BATCH):
            items.update(self._read_items(entity, live[start : start + BATCH]))
        changes: list[ItemChange] = []
        for kind, item_id, _ in listed:
            if kind == SyncFolderItems.DELETE:
                changes.append(ItemChange(item_id, "", None, _cursor(state)))
            elif item_id in items:  # else deleted since it was listed: its Delete comes later
                changes.append(items[item_id])
        for index, change in enumerate(changes):
            after = _cursor(new_state if index == len(changes) - 1 else state)
            yield ItemChange(change.item_id, change.version, change.item, after, change.unreadable)

    def _read_items(self, entity: str, ids: list[str]) -> dict[str, ItemChange]:
        fetched = self._call(lambda: list(self.account.fetch(ids=[ItemId(id=i) for i in ids])), entity)
        found: dict[str, ItemChange] = {}
        for item_id, item in zip(ids, fetched, strict=True):
            if isinstance(item, Exception):
                if isinstance(item, ErrorItemNotFound):
                    continue
                raise ews_errors.translate(item, self.settings, folder=KINDS[entity].folder)
            found[item_id] = self._change_of(entity, item)
        return found

    def _change_of(self, entity: str, item: Any) -> ItemChange:
        def nothing() -> str:
            return ""

        try:
            read = self._convert(entity, item)
        except MessageError as error:
            return ItemChange(item.id, item.changekey, None, nothing, unreadable=error)
        return ItemChange(item.id, item.changekey, read, nothing)

    def _convert(self, entity: str, item: Any) -> Item:
        model = KINDS[entity].model
        if not isinstance(item, model):
            raise MessageError(
                f"The {KINDS[entity].folder} folder holds a {type(item).__name__}, not a {model.__name__}.",
                code="item_invalid",
            )
        if entity == "task":
            return ews_tasks.read(item)
        if entity == "contact":
            return ews_contacts.read(item)
        exceptions = []
        if item.modified_occurrences:
            ids = [ItemId(id=o.id) for o in item.modified_occurrences]
            fetched = self._call(lambda: list(self.account.fetch(ids=ids)), entity)
            for exception in fetched:
                if not isinstance(exception, CalendarItem):
                    # An occurrence the series names and GetItem does not give: read without it,
                    # the series would lose a change; the engine records it and reads it again.
                    raise MessageError(
                        f"A changed occurrence of the series could not be read ({exception}).",
                        code="item_invalid",
                    )
                exceptions.append(exception)
        return ews_events.read(item, exceptions)

    # -- writing ----------------------------------------------------------------------------

    def create(self, entity: str, item: Item) -> ItemRef:
        folder = self._folder(entity)
        existing = self._find_uid(entity, folder, item.uid)
        if existing is not None:
            raise MessageError(
                f"The mailbox {ews_account.mailbox_of(self.settings)} already holds the {entity} "
                f"{item.uid!r} (EWS item {existing}).",
                code="item_exists",
            )
        new = self._new_item(entity, item, folder)
        self._write(lambda: new.save(send_meeting_invitations=_invitations(item)), entity)
        ref = ItemRef(new.id, new.changekey)
        if isinstance(item, Event) and (item.deleted_occurrences or item.changed_occurrences):
            ref = self._write_occurrences(item, ref)
        return self._wrote(entity, ref)

    def update(self, entity: str, ref: ItemRef, item: Item) -> ItemRef:
        kind = KINDS[_checked(entity)]
        target = self._new_item(entity, item, self._folder(entity))
        target.id, target.changekey = ref.item_id, ref.version
        fields = list(kind.fields)
        if isinstance(item, Event):
            fields = [f for f in fields if f != "uid"]  # set on create; EWS refuses to change it
        self._write(
            lambda: target.save(
                update_fields=fields,
                conflict_resolution=NEVER_OVERWRITE,
                send_meeting_invitations=_invitations(item),
            ),
            entity,
        )
        ref = ItemRef(target.id, target.changekey)
        if isinstance(item, Event) and (item.deleted_occurrences or item.changed_occurrences):
            ref = self._write_occurrences(item, ref)
        return self._wrote(entity, ref)

    def delete(self, entity: str, ref: ItemRef) -> None:
        _checked(entity)
        current = self._version(entity, ref.item_id)
        if current is None:
            return  # already gone
        if current != ref.version:
            raise _stale(entity, ref)
        model = KINDS[entity].model
        target = model(account=self.account, id=ref.item_id, changekey=current)
        try:
            self._write(
                lambda: (
                    target.move_to_trash(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)
                    if entity == "appointment"
                    else target.move_to_trash()
                ),
                entity,
            )
        except MessageError as error:
            if error.code != "item_changed":
                raise
            # Gone between the read and the delete: what was asked.
        self._wrote(entity, ItemRef(ref.item_id, ""))

    def _wrote(self, entity: str, ref: ItemRef) -> ItemRef:
        self._written.setdefault(entity, {})[ref.item_id] = ref.version
        return ref

    def _new_item(self, entity: str, item: Item, folder: BaseFolder) -> Any:
        context = {"account": self.account, "folder": folder}
        if isinstance(item, Event) and entity == "appointment":
            return ews_events.new_item(item, **context)
        if isinstance(item, Todo) and entity == "task":
            return Task(**context, **ews_tasks.values(item))
        if isinstance(item, Card) and entity == "contact":
            return Contact(**context, **ews_contacts.values(item))
        raise ValueError(f"a {type(item).__name__} is not a {entity}")

    def _write_occurrences(self, event: Event, master: ItemRef) -> ItemRef:
        """Delete and change the series' occurrences (by instance index), then the master's version.

        Each goes to the occurrence right after the master's own write, under its change key
        then (ConflictResolution AutoResolve: each write moves the master's key on)."""
        for start in event.deleted_occurrences:
            self._delete_occurrence(self._occurrence(event, master, start), _invitations(event))
        for changed in event.changed_occurrences:
            if changed.original_start is None:
                raise MessageError(
                    f"A changed occurrence of {event.uid!r} has no original start.", code="item_invalid"
                )
            occurrence = self._occurrence(event, master, changed.original_start)
            for name, value in ews_events.values(changed, series=False).items():
                setattr(occurrence, name, value)
            self._save_occurrence(occurrence, _invitations(event))
        version = self._version("appointment", master.item_id)
        if version is None:
            raise MessageError(
                f"The series {event.uid!r} was deleted while it was written.", code="item_changed"
            )
        return ItemRef(master.item_id, version)

    def _occurrence(self, event: Event, master: ItemRef, original_start: dt.datetime) -> CalendarItem:
        index = ews_recurrence.instance_index(event.recurrence, event.start, event.start_zone, original_start)
        where = OccurrenceItemId(id=master.item_id, changekey=master.version, instance_index=index)
        return CalendarItem(account=self.account, _id=where)

    def _delete_occurrence(self, occurrence: CalendarItem, send: str) -> None:
        self._write(lambda: occurrence.delete(send_meeting_cancellations=send), "appointment")

    def _save_occurrence(self, occurrence: CalendarItem, send: str) -> None:
        self._write(
            lambda: occurrence.save(
                update_fields=ews_events.OCCURRENCE_FIELDS, send_meeting_invitations=send
            ),
            "appointment",
        )

    def _find_uid(self, entity: str, folder: BaseFolder, uid: str) -> str | None:
        query = {UID_FIELD: uid}
        found = self._call(lambda: list(folder.filter(**query).only("id")[:1]), entity)
        return str(found[0].id) if found else None

    def _version(self, entity: str, item_id: str) -> str | None:
        """The item's change key now; None when it is gone."""
        fetched = self._call(
            lambda: list(self.account.fetch(ids=[ItemId(id=item_id)], only_fields=["subject"])), entity
        )
        item = fetched[0] if fetched else None
        if item is None or isinstance(item, ErrorItemNotFound):
            return None
        if isinstance(item, Exception):
            raise ews_errors.translate(item, self.settings, folder=KINDS[entity].folder)
        return str(item.changekey)

    def _folder(self, entity: str) -> BaseFolder:
        kind = KINDS[_checked(entity)]
        if entity not in self._folders:
            self._folders[entity] = self._call(lambda: getattr(self.account, kind.folder), entity)
        return self._folders[entity]

    # -- calls ------------------------------------------------------------------------------

    def _write(self, work: Callable[[], T], entity: str) -> T:
        """A write: the item's own refusals as MessageErrors, the rest as _call says."""
        try:
            with ews_account.trusting(self.settings):
                return work()
        except SyncError:
            raise
        except Exception as error:
            name = type(error).__name__
            if name in STALE:
                raise MessageError(
                    f"The {entity} changed or was deleted on the Exchange server since it was read ({name}).",
                    code="item_changed",
                ) from error
            if name in REFUSALS or isinstance(error, ValueError):
                raise MessageError(
                    f"Exchange refused the {entity} ({name}: {ews_errors.text(error)}).", code="item_refused"
                ) from error
            raise ews_errors.translate(error, self.settings, folder=KINDS[entity].folder) from error

    def _call(self, work: Callable[[], T], entity: str = "") -> T:
        return self.call(work, folder=KINDS[entity].folder if entity in KINDS else "")


class _InvalidSyncState(Exception):
    def __init__(self, error: SyncError) -> None:
        super().__init__(error.message)
        self.error = error


def _checked(entity: str) -> str:
    if entity not in ENTITIES:
        raise ValueError(f"{entity!r} is not one of {ENTITIES}")
    return entity


def _id_of(value: Any) -> tuple[str, str]:
    """SyncFolderItems gives items (Create, Update) or ids (Delete): the id and change key."""
    if isinstance(value, tuple):
        return str(value[0]), str(value[1] or "")
    return str(value.id), str(getattr(value, "changekey", "") or "")


def _cursor(state: str) -> Callable[[], str]:
    text = CURSOR_PREFIX + state if state else ""
    return lambda: text


def _stale(entity: str, ref: ItemRef) -> MessageError:
    return MessageError(
        f"The {entity} {ref.item_id} changed on the Exchange server since it was read "
        "(its change key is no longer the one read).",
        code="item_changed",
    )


def _invitations(item: Item) -> str:
    """A meeting with attendees goes to them (SendToAllAndSaveCopy, as Outlook sends it); anything
    else to nobody."""
    meeting = isinstance(item, Event) and bool(item.attendees)
    return str(SEND_TO_ALL_AND_SAVE_COPY if meeting else SEND_TO_NONE)
