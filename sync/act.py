"""One run of a mailbox's appointments, contacts and tasks: the server's changes into the
CRM, then the CRM's records out to the server, each entity in turn.

Server -> CRM: what changed since the entity's cursor (``ActCursor``), one change at a
time, the cursor saved after each: a run stopped anywhere reads again at most what it
had not finished. A change to a linked item is merged field by field (``act_merge``); an
item the engine does not know is linked by UID (a link whose server id it lost), then by
content (a full read after the server forgot the cursor), and otherwise tracked only when
the user gave it the tracking category; anything else stays the user's own.

CRM -> server: the records the mailbox's sync filters select. A record without a link
gets one before the server is asked to create the item, with a UID fixed then: a run
killed between the two finds the item by that UID next time instead of making another.
A linked record whose CRM fields changed since it was last reconciled is merged and
written with the version read (``item_changed``: someone changed it meanwhile; the next
read brings their version and the merge runs again). A record that left the filters, and
is not tracked on the server, is unlinked; a deleted one follows the delete rules
(``act_deletes``).

Per-item problems (an item either side refuses, an organizer missing, a duplicate, a
change dropped in a conflict) are recorded on the item (``ActItemProblem``) and the run
goes on; connection and permission failures end the run as for mail.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from crm.models import Appointment, OrganizationSettings
from mailboxes import sync_filters
from mailboxes.models import Mailbox
from sync import act_deletes, act_fields, alerts, clock, mailbox_state
from sync.act_items_json import item_from_json, item_to_json
from sync.act_merge import Merged, merge
from sync.act_records import (
    Context,
    Record,
    content_key,
    for_server,
    new_record,
    organizer_of,
    to_item,
    write,
)
from sync.connectors.interfaces import ENTITIES, ActItems, Item, ItemChange, ItemRef
from sync.connectors.items import Card
from sync.errors import MessageError, PermanentError, SyncError, TransientError
from sync.models import (
    ActCursor,
    ActItemProblem,
    ActLink,
    ActProblemKind,
    AlertLevel,
    FieldDirection,
    SyncKind,
    SyncOutcome,
    SyncRun,
)
from sync.server_settings import act_settings, connectors_of, profile_of
from sync.tracking import Parties

RECORD_FIELD = {"appointment": "appointment", "task": "task", "contact": "contact"}
# Item problems' alerts: their own category, so that a run that works does not close them (the
# item is still refused); a person resolves them.
ITEM_ALERTS = "act_items"


@dataclass
class Budget:
    """A run handles at most ``SYNC_ACT_RUN_MAX_ITEMS`` items and stops within
    ``SYNC_RUN_MAX_SECONDS``; the rest waits for the next run (which comes at once)."""

    items: int = field(default_factory=lambda: int(settings.SYNC_ACT_RUN_MAX_ITEMS))
    deadline: float = field(default_factory=lambda: time.monotonic() + settings.SYNC_RUN_MAX_SECONDS)
    exhausted: bool = False

    def take(self) -> bool:
        if self.items <= 0 or time.monotonic() > self.deadline:
            self.exhausted = True
            return False
        self.items -= 1
        return True


def sync_act(*, mailbox: Mailbox) -> SyncRun:
    """Sync the mailbox's appointments, tasks and contacts both ways, within one run's budget."""
    run = SyncRun(mailbox=mailbox, kind=SyncKind.ACT, started_on=clock.now())
    budget = Budget()
    try:
        kind = connectors_of(profile_of(mailbox))
        if kind.act_items is None:
            raise PermanentError(
                f"{kind.protocol} profiles do not synchronize appointments, contacts and tasks.",
                code="act_not_supported",
            )
        organization = OrganizationSettings.load()
        context = Context(mailbox, organization.act_tracking_category, Parties(organization))
        with kind.act_items(act_settings(mailbox)) as server:
            for entity in ENTITIES:
                EntitySync(mailbox, entity, server, run, budget, context, organization).run()
                if budget.exhausted:
                    break
    except (PermanentError, TransientError) as error:
        alerts.run_finish(run, SyncOutcome.FAILED, error)
        mailbox_state.record_failure(mailbox=mailbox, kind=SyncKind.ACT, error=error)
        return run
    except BaseException:
        alerts.run_finish(
            run, SyncOutcome.FAILED, SyncError("Internal error; see the worker log.", code="internal_error")
        )
        raise
    alerts.run_close(run, SyncOutcome.PARTIAL if budget.exhausted else SyncOutcome.SUCCESS)
    mailbox_state.record_success(
        mailbox=mailbox, kind=SyncKind.ACT, processed=run.received + run.sent, failed=run.failed, run=run
    )
    return run


class EntitySync:
    """One entity of one run. Counters on the run: ``received`` server changes read,
    ``tracked`` CRM records created or changed from the server, ``linked`` links made to
    what already existed, ``sent`` server items created, changed or deleted, ``failed``
    item problems."""

    def __init__(
        self,
        mailbox: Mailbox,
        entity: str,
        server: ActItems,
        run: SyncRun,
        budget: Budget,
        context: Context,
        organization: OrganizationSettings,
    ) -> None:
        self.mailbox, self.entity, self.server = mailbox, entity, server
        self.run_, self.budget, self.context = run, budget, context
        self.directions = act_fields.directions(entity)
        if entity == "contact" and not organization.sync_all_contact_addresses:
            self.directions |= {"home_address": FieldDirection.NONE, "other_address": FieldDirection.NONE}
        links = ActLink.objects.filter(mailbox=mailbox, entity=entity).select_related(RECORD_FIELD[entity])
        self.by_item = {link.item_id: link for link in links if link.item_id}
        self.by_uid = {link.uid: link for link in links}
        self.cursor, _ = ActCursor.objects.get_or_create(mailbox=mailbox, entity=entity)
        self._unlinked: dict[tuple[object, ...], list[Record]] | None = None

    def run(self) -> None:
        self.read_server()
        if self.budget.exhausted:
            return
        sent = self.run_.sent
        self.push_crm()
        if self.run_.sent > sent and not self.budget.exhausted:
            # Read our own writes back at once: the server's copy becomes what it keeps (it
            # may keep less than was sent) before another client's change can arrive with it.
            self.read_server()

    # -- server -> CRM -------------------------------------------------------------------

    def read_server(self) -> None:
        for change in self.server.changes(self.entity, self.cursor.token):
            if not self.budget.take():
                return
            self.on_change(change)
            self._save_cursor(change.cursor)
        caught_up = self.server.caught_up(self.entity)
        if caught_up is not None:
            self._save_cursor(caught_up)

    def _save_cursor(self, token: str) -> None:
        if token != self.cursor.token:
            self.cursor.token = token
            self.cursor.save(update_fields=["token", "updated_on"])

    def on_change(self, change: ItemChange) -> None:
        link = self.by_item.get(change.item_id)
        item = change.item
        if link is not None and item is not None and link.version == change.version and link.server_synced:
            self._read_back(link, item)  # our own write, or a change already stored
            return
        self.run_.received += 1
        if change.deleted:
            if link is not None:
                self._count(act_deletes.server_deleted(link, self.context))
                self._forget(link)
            return
        if change.unreadable is not None or change.item is None:
            error = change.unreadable or MessageError("The item has no content.", code="item_invalid")
            self.problem(ActProblemKind.UNREADABLE, error.message, item_id=change.item_id, link=link)
            return
        item = change.item
        if link is None:
            link = self.by_uid.get(item.uid)
        if link is None:
            self.on_new_item(change, item)
            return
        self._relink(link, change)
        link.tracked_on_server = self._tracked(item)
        record = self.record(link)
        if record is None:
            link.save()
            return  # deleted in the CRM: the delete rules run on the CRM pass
        self.reconcile(link, record, item, ItemRef(change.item_id, change.version))

    def on_new_item(self, change: ItemChange, item: Item) -> None:
        record = self._same_content(item)
        if record is None:
            record = self._elsewhere(item)
        if record is not None:
            link = self._link(record, item.uid, change, tracked=self._tracked(item))
            self.run_.linked += 1
            self.reconcile(link, record, item, change.ref)
            return
        if not self._tracked(item):
            return  # the user's own item: it stays theirs
        record = new_record(self.entity, self.context)
        if not self._write(record, item, self._travelling(FieldDirection.TO_CRM), item_id=change.item_id):
            return
        link = self._link(record, item.uid, change, tracked=True)
        self._saved(link, change.ref, self._crm_copy(link, record), item)
        self.run_.tracked += 1

    def reconcile(self, link: ActLink, record: Record, item: Item, ref: ItemRef) -> None:
        """Merge a linked record with the server's item and write each side what it takes."""
        crm_item = to_item(record, link.uid, self.context, tracked=link.tracked_on_server)
        directions = self.directions
        if self._attendee_copy(record, item):
            # An attendee's copy never overwrites the organizer's record, nor the other way:
            # the organizer's server updates it. The link keeps the copy from becoming a record.
            directions = {name: FieldDirection.NONE for name in directions}
        merged = merge(self.entity, crm_item, item, link.crm_synced, link.server_synced, directions)
        if merged.to_crm and not self._write(record, item, merged.to_crm, link=link):
            return
        if merged.to_crm:
            self.run_.tracked += 1
            crm_item = to_item(record, link.uid, self.context, tracked=link.tracked_on_server)
        self._record_dropped(link, record, merged)
        if merged.to_server:
            item = for_server(merged.server_item(crm_item, item), record, self.context)
            written = self._update(link, ref, item)
            if written is None:
                return
            ref = written
        self._saved(link, ref, item_to_json(crm_item), item)

    # -- CRM -> server -------------------------------------------------------------------

    def push_crm(self) -> None:
        records = self._matching()
        linked_ids = set()
        for link in list(self.by_uid.values()):
            record = self.record(link)
            if record is None:
                if link.item_id:
                    if not self.budget.take():
                        return
                    self._count(act_deletes.crm_deleted(link, self.server, self.context))
                self._forget(link)
                continue
            linked_ids.add(record.pk)
            if record.pk not in records and not link.tracked_on_server:
                self._forget(link)  # left the filters: the server item stays, unlinked
                continue
            if not link.item_id:
                if not self.budget.take():
                    return
                self.create(link, record)
            elif not link.server_synced:
                continue  # linked, never reconciled (the CRM refused the server's version): waits for a read
            elif self._crm_changed(link, record):
                if not self.budget.take():
                    return
                self.reconcile(
                    link,
                    record,
                    item_from_json(self.entity, link.server_synced),  # as last seen: nothing came since
                    ItemRef(link.item_id, link.version),
                )
        for pk, record in records.items():
            if pk in linked_ids:
                continue
            if not self.budget.take():
                return
            link = ActLink.objects.create(
                mailbox=self.mailbox,
                entity=self.entity,
                uid=f"{uuid.uuid4()}@serversync",
                **{RECORD_FIELD[self.entity]: record},
            )
            self.by_uid[link.uid] = link
            self.create(link, record)

    def create(self, link: ActLink, record: Record) -> None:
        item = to_item(record, link.uid, self.context)
        if (
            isinstance(record, Appointment)
            and organizer_of(record) is None
            and record.owner_id != self.mailbox.user_id
        ):
            self.problem(
                ActProblemKind.ORGANIZER_MISSING,
                "The appointment has no organizer, and its owner is not this mailbox's user: "
                "give it an organizer.",
                link=link,
                record=record,
            )
            return
        outgoing = for_server(self._outgoing_new(item), record, self.context)
        try:
            ref = self.server.create(self.entity, outgoing)
        except MessageError as error:
            if error.code == "item_exists":
                # Made by an earlier run that did not live to link it: the next full read links it by UID.
                self.cursor.token = ""
                self.cursor.save(update_fields=["token", "updated_on"])
                return
            self.problem(_kind_of(error), error.message, link=link, record=record)
            return
        self._saved(link, ref, item_to_json(item), outgoing)
        self.by_item[link.item_id] = link
        self.run_.sent += 1

    def _saved(self, link: ActLink, ref: ItemRef, crm_copy: dict[str, Any], server_item: Item) -> None:
        """Both sides reconciled: the item's server id and version, and each side's copy."""
        link.item_id, link.version, link.synced_on = ref.item_id, ref.version, clock.now()
        link.crm_synced, link.server_synced = crm_copy, item_to_json(server_item)
        link.save()

    def _crm_copy(self, link: ActLink, record: Record) -> dict[str, Any]:
        return item_to_json(to_item(record, link.uid, self.context, tracked=link.tracked_on_server))

    def _read_back(self, link: ActLink, item: Item) -> None:
        """Our own write read back: the server's copy becomes what it holds (it may keep less
        than was sent), so that what it could not keep never looks like a change of its own."""
        held = item_to_json(item)
        if held != link.server_synced:
            link.server_synced = held
            link.save(update_fields=["server_synced"])

    def _outgoing_new(self, item: Item) -> Item:
        """A new server item holds only what travels to the server."""
        blank = type(item)(uid=item.uid, **_required(item))
        return _replace(blank, {m: getattr(item, m) for m in self._travelling(FieldDirection.TO_SERVER)})

    def _update(self, link: ActLink, ref: ItemRef, item: Item) -> ItemRef | None:
        try:
            new_ref = self.server.update(self.entity, ref, item)
        except MessageError as error:
            if error.code != "item_changed":
                self.problem(_kind_of(error), error.message, link=link, record=self.record(link))
            return None  # changed meanwhile: the next read brings it and merges again
        self.run_.sent += 1
        self.by_item.pop(ref.item_id, None)
        self.by_item[new_ref.item_id] = link
        return new_ref

    def _crm_changed(self, link: ActLink, record: Record) -> bool:
        crm = item_to_json(to_item(record, link.uid, self.context, tracked=link.tracked_on_server))
        return any(crm.get(m) != link.crm_synced.get(m) for m in self._travelling(FieldDirection.TO_SERVER))

    # -- links, records, problems ----------------------------------------------------------

    def record(self, link: ActLink) -> Record | None:
        return getattr(link, RECORD_FIELD[self.entity])  # type: ignore[no-any-return]

    def _matching(self) -> dict[int, Record]:
        records: QuerySet[Any] = sync_filters.matching(self.mailbox, self.entity)
        if self.entity == "appointment":
            records = records.prefetch_related("parties", "exceptions")
        return {record.pk: record for record in records}

    def _link(self, record: Record, uid: str, change: ItemChange, *, tracked: bool) -> ActLink:
        link = ActLink.objects.filter(mailbox=self.mailbox, entity=self.entity, uid=uid).first() or ActLink(
            mailbox=self.mailbox, entity=self.entity, uid=uid
        )
        setattr(link, RECORD_FIELD[self.entity], record)
        link.item_id, link.version, link.tracked_on_server = change.item_id, change.version, tracked
        link.save()
        self.by_item[link.item_id] = link
        self.by_uid[link.uid] = link
        return link

    def _relink(self, link: ActLink, change: ItemChange) -> None:
        if link.item_id != change.item_id:
            self.by_item.pop(link.item_id, None)
            link.item_id = change.item_id
            self.by_item[change.item_id] = link

    def _forget(self, link: ActLink) -> None:
        self.by_item.pop(link.item_id, None)
        self.by_uid.pop(link.uid, None)
        if link.pk is not None:
            link.delete()

    def _tracked(self, item: Item) -> bool:
        categories = getattr(item, "categories", ())
        wanted = self.context.tracking_category.casefold()
        return any(c.casefold() == wanted for c in categories)

    def _attendee_copy(self, record: Record, item: Item) -> bool:
        if not isinstance(record, Appointment):
            return False
        organizer = getattr(item, "organizer", None)
        return organizer is not None and organizer.address.strip().lower() != self.context.address

    def _same_content(self, item: Item) -> Record | None:
        """The one unlinked record the mailbox syncs with the item's content; several: a problem."""
        if self._unlinked is None:
            linked = {link.record_id for link in self.by_uid.values()}
            self._unlinked = {}
            for record in self._matching().values():
                if record.pk not in linked:
                    self._unlinked.setdefault(content_key(self.entity, record), []).append(record)
        found = self._unlinked.get(content_key(self.entity, item), [])
        if len(found) > 1:
            self.problem(
                ActProblemKind.DUPLICATE,
                f"{len(found)} CRM records look like this server item; it was linked to none. "
                "Delete the duplicates or change one of them.",
                title=_title(item),
            )
            return None
        if found:
            self._unlinked[content_key(self.entity, item)] = []
            return found[0]
        return None

    def _elsewhere(self, item: Item) -> Record | None:
        """The record another mailbox syncs this item with (a meeting in two CRM users' calendars)."""
        other = (
            ActLink.objects.filter(entity=self.entity, uid=item.uid)
            .exclude(mailbox=self.mailbox)
            .select_related(RECORD_FIELD[self.entity])
            .first()
        )
        if (
            other is None
            or ActLink.objects.filter(
                mailbox=self.mailbox, **{RECORD_FIELD[self.entity]: other.record_id}
            ).exists()
        ):
            return None
        return self.record(other)

    def _write(
        self, record: Record, item: Item, members: set[str], *, link: ActLink | None = None, item_id: str = ""
    ) -> bool:
        try:
            write(record, item, members, self.context)
        except ValidationError as error:
            self.problem(
                ActProblemKind.INVALID,
                "The CRM cannot store the server's version: " + "; ".join(error.messages),
                link=link,
                item_id=item_id,
                title=_title(item),
            )
            return False
        return True

    def _travelling(self, way: FieldDirection) -> set[str]:
        """The item fields whose changes travel ``way`` (TO_SERVER or TO_CRM), both ways included."""
        return {
            m
            for synced in act_fields.FIELDS[self.entity]
            if self.directions[synced.name] in (FieldDirection.BOTH, way)
            for m in synced.members
        }

    def _record_dropped(self, link: ActLink, record: Record, merged: Merged) -> None:
        for dropped in merged.dropped:
            side = "the server's" if dropped.side == "server" else "the CRM's"
            label = act_fields.field(self.entity, dropped.field).label
            self.problem(
                ActProblemKind.CONFLICT,
                f"{label} changed on both sides; {side} change was dropped "
                f"({self.directions[dropped.field].label.lower()}).",
                link=link,
                record=record,
                field=dropped.field,
                dropped=(dropped.side, dropped.value, dropped.kept),
            )

    def _count(self, changed: act_deletes.Effect) -> None:
        self.run_.sent += changed.server
        self.run_.tracked += changed.crm

    def problem(
        self,
        kind: ActProblemKind,
        message: str,
        *,
        link: ActLink | None = None,
        record: Record | None = None,
        item_id: str = "",
        title: str = "",
        field: str = "",
        dropped: tuple[str, Any, Any] | None = None,
    ) -> None:
        side, value, kept = dropped or ("", None, None)
        row = ActItemProblem(
            mailbox=self.mailbox,
            entity=self.entity,
            link=link if link is not None and link.pk is not None else None,
            kind=kind,
            item_id=item_id or (link.item_id if link else ""),
            record_id=record.pk if record is not None else (link.record_id if link else None),
            title=(title or (str(record) if record is not None else ""))[:500],
            field=field,
            dropped_side=side,
            dropped_value=value,
            kept_value=kept,
            message=message,
        )
        if kind == ActProblemKind.CONFLICT or not _said_already(row):
            row.save()
        if kind == ActProblemKind.CONFLICT:
            return  # recorded on the item; not a failure of the run
        self.run_.failed += 1
        alerts.record_alert(
            level=AlertLevel.WARNING,
            category=ITEM_ALERTS,
            code=f"act_{kind}",
            message=f"{self.entity.capitalize()} {title or (str(record) if record else item_id)}: {message}",
            mailbox=self.mailbox,
        )


def _said_already(problem: ActItemProblem) -> bool:
    """The item's newest problem says the same: a refused item is tried again each run, and
    its page shows it once (the alert counts the repeats)."""
    newest = (
        ActItemProblem.objects.filter(
            mailbox=problem.mailbox,
            entity=problem.entity,
            record_id=problem.record_id,
            item_id=problem.item_id,
        )
        .order_by("-created_on", "-id")
        .values_list("kind", "message")
        .first()
    )
    return newest == (problem.kind, problem.message)


def _kind_of(error: MessageError) -> ActProblemKind:
    return ActProblemKind.INVALID if error.code == "item_invalid" else ActProblemKind.REFUSED


def _title(item: Item) -> str:
    if isinstance(item, Card):
        return " ".join(p for p in (item.first_name, item.last_name) if p) or item.company
    return item.subject


def _required(item: Item) -> dict[str, Any]:
    """The fields an item cannot be made without (an event's times)."""
    names = ("start", "end", "start_zone", "end_zone", "all_day") if hasattr(item, "end") else ()
    return {name: getattr(item, name) for name in names}


def _replace(item: Item, values: dict[str, Any]) -> Item:
    return dataclasses.replace(item, **values)
