"""The EWS operations the server answers, one function each, keyed by the body's first child."""

from __future__ import annotations

import base64
import email.utils
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from lxml import etree

from tests.fakes.ews import act_items, meetings, properties, sync_states
from tests.fakes.ews.soap import m, response_message, sub, t
from tests.fakes.ews.store import Folder, Item, Mailbox, Store, header_of, well_formed_id
from tests.fakes.ews.xsd import M, T

X = TypeVar("X")
SMTP_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>.]+(\.[^@\s<>.]+)*")
NOT_FOUND = "The specified object was not found in the store."


class EwsError(Exception):
    """One response message's error (ResponseClass="Error")."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class Mail(Protocol):
    """Where the server hands mail it sends (delivery to its own users, or the outbound list)."""

    def submit(self, sender: str, recipients: list[str], raw: bytes) -> None: ...


@dataclass
class Call:
    store: Store
    mailbox: Mailbox
    body: etree._Element
    mail: Mail
    # What the handler wants logged beside the operation (folder, sync state given, ...).
    notes: dict[str, str] = field(default_factory=dict)
    # Requests the test server answered with an error because it does not implement them:
    # recorded as violations, so a test that relies on one fails.
    unimplemented: list[str] = field(default_factory=list)

    def refused(self, refusal: act_items.Refused) -> EwsError:
        if refusal.unimplemented:
            self.unimplemented.append(refusal.text)
        return EwsError(refusal.code, refusal.text)

    def find(self, path: str) -> etree._Element | None:
        return self.body.find(path, namespaces={"m": M, "t": T})

    def findall(self, path: str) -> list[etree._Element]:
        return self.body.findall(path, namespaces={"m": M, "t": T})


def resolve_folder(call: Call, element: etree._Element) -> Folder:
    name = etree.QName(element).localname
    if name == "DistinguishedFolderId":
        _check_owner(call, element.findtext(f"{{{T}}}Mailbox/{{{T}}}EmailAddress"))
        found = call.mailbox.by_distinguished(element.get("Id", ""))
        if found is None:
            raise EwsError("ErrorFolderNotFound", "The distinguished folder does not exist in this mailbox.")
        return found
    folder = call.mailbox.folders.get(_well_formed(element.get("Id", "")))
    if folder is None:
        raise EwsError("ErrorItemNotFound", NOT_FOUND)
    return folder


def _well_formed(ews_id: str) -> str:
    """``ews_id`` if it could be one of this server's ids (any other is malformed, as Exchange says)."""
    if not well_formed_id(ews_id):
        raise EwsError("ErrorInvalidIdMalformed", "Id is malformed.")
    return ews_id


def _check_owner(call: Call, address: str | None) -> None:
    """A distinguished folder of another mailbox: delegate access, which this server grants nobody."""
    if address is None or address.strip().lower() == call.mailbox.address:
        return
    if call.store.mailbox(address.strip()) is None:
        raise EwsError("ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")
    raise EwsError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def resolve_item(call: Call, element: etree._Element) -> tuple[Folder, Item]:
    found = call.mailbox.find_item(_well_formed(element.get("Id", "")))
    if found is None:
        raise EwsError("ErrorItemNotFound", NOT_FOUND)
    return found


def _per_id(
    operation: str,
    ids: list[etree._Element],
    answer: Callable[[etree._Element, etree._Element], None],
    call: Call | None = None,
) -> list[etree._Element]:
    """One response message per id, each a success or its own error, as Exchange answers batches."""
    messages = []
    for element in ids:
        message = response_message(operation)
        try:
            try:
                answer(element, message)
            except act_items.Refused as refusal:
                if call is None:
                    raise
                raise call.refused(refusal) from None
        except EwsError as error:
            message = response_message(operation, error.code, error.text)
        messages.append(message)
    return messages


def convert_id(call: Call) -> list[etree._Element]:
    # exchangelib sends a ConvertId of "DUMMY" to learn the server's version from the header.
    ids = call.findall("m:SourceIds/*")
    return [
        response_message("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")
        for _ in ids or [call.body]
    ]


def get_folder(call: Call) -> list[etree._Element]:
    fields = properties.requested(
        call.find("m:FolderShape"), properties.DEFAULT_FOLDER, properties.ALL_FOLDER
    )

    def answer(element: etree._Element, message: etree._Element) -> None:
        folder = resolve_folder(call, element)
        sub(sub(message, m("Folders")), properties.folder(folder, call.mailbox, fields))

    return _per_id("GetFolder", call.findall("m:FolderIds/*"), answer)


def find_folder(call: Call) -> list[etree._Element]:
    fields = properties.requested(
        call.find("m:FolderShape"), properties.DEFAULT_FOLDER, properties.ALL_FOLDER
    )
    deep = call.body.get("Traversal") == "Deep"
    view = call.find("m:IndexedPageFolderView")

    def answer(element: etree._Element, message: etree._Element) -> None:
        parent = resolve_folder(call, element)
        found = _descendants(call.mailbox, parent) if deep else call.mailbox.children(parent.id)
        page, offset, last = _page(found, view)
        call.notes["offset"] = str(offset)
        root = sub(message, m("RootFolder", IndexedPagingOffset=str(offset + len(page))))
        root.set("TotalItemsInView", str(len(found)))
        root.set("IncludesLastItemInRange", "true" if last else "false")
        folders = sub(root, t("Folders"))
        for folder in page:
            folders.append(properties.folder(folder, call.mailbox, fields))

    return _per_id("FindFolder", call.findall("m:ParentFolderIds/*"), answer)


def _descendants(mailbox: Mailbox, parent: Folder) -> list[Folder]:
    found = []
    for child in mailbox.children(parent.id):
        found.append(child)
        found.extend(_descendants(mailbox, child))
    return found


def _page(found: list[X], view: etree._Element | None) -> tuple[list[X], int, bool]:
    if view is None:
        return found, 0, True
    offset = int(view.get("Offset", "0"))
    limit = int(view.get("MaxEntriesReturned", str(len(found))))
    if view.get("BasePoint") == "End":
        offset = max(0, len(found) - offset - limit)
    page = found[offset : offset + limit]
    return page, offset, offset + len(page) >= len(found)


def get_item(call: Call) -> list[etree._Element]:
    fields = properties.requested(call.find("m:ItemShape"), properties.DEFAULT_ITEM, properties.ALL_ITEM)

    shape = act_items.Shape(call.find("m:ItemShape"))

    def answer(element: etree._Element, message: etree._Element) -> None:
        if etree.QName(element).localname == "OccurrenceItemId":
            master = _master(call, element)
            found = act_items.occurrence(call.store, master, _instance(element), make=False)
            if found is None:
                raise act_items.unimplemented("GetItem of an occurrence never changed")
            item = found
        else:
            _, item = resolve_item(call, element)
        sub(sub(message, m("Items")), render(item, call.mailbox, fields, shape))

    ids = call.findall("m:ItemIds/*")
    call.notes["items"] = str(len(ids))  # how many items one request asked for (tests count downloads)
    return _per_id("GetItem", ids, answer, call)


def render(item: Item, mailbox: Mailbox, fields: set[str], shape: act_items.Shape) -> etree._Element:
    """An item as GetItem, FindItem and SyncFolderItems give it: a message, or a calendar item,
    contact or task."""
    if item.props is None:
        return properties.message(item, mailbox, fields)
    return act_items.render(item, mailbox, shape)


def _master(call: Call, element: etree._Element) -> Item:
    found = call.mailbox.find_item(_well_formed(element.get("RecurringMasterId", "")))
    if found is None:
        raise EwsError("ErrorItemNotFound", NOT_FOUND)
    return found[1]


def _instance(element: etree._Element) -> int:
    return int(element.get("InstanceIndex", "0"))


def delete_item(call: Call) -> list[etree._Element]:
    to_trash = call.body.get("DeleteType") == "MoveToDeletedItems"

    def answer(element: etree._Element, message: etree._Element) -> None:
        _check_writable(call)
        if etree.QName(element).localname == "OccurrenceItemId":
            master = _master(call, element)
            _cancel_occurrence(call, master, _instance(element))
            act_items.delete_occurrence(call.store, master, _instance(element))
            return
        folder, item = resolve_item(call, element)
        if item.master_id:  # an exception: its occurrence is deleted from the series
            _cancel_occurrence(call, folder.items[item.master_id], item.index)
            act_items.delete_occurrence(call.store, folder.items[item.master_id], item.index)
            return
        if _is_meeting(item) and _sending(call, "SendMeetingCancellations"):
            meetings.send(call.mail, call.mailbox.address, item, "CANCEL")
        trash = call.mailbox.by_distinguished("deleteditems")
        if to_trash and trash is not None and folder is not trash:
            call.store.move_item(call.mailbox, item, trash)
        else:
            call.store.remove_item(folder, item)

    return _per_id("DeleteItem", call.findall("m:ItemIds/*"), answer, call)


def _cancel_occurrence(call: Call, master: Item, index: int) -> None:
    if _sending(call, "SendMeetingCancellations"):
        occurrence = act_items.occurrence(call.store, master, index, make=True)
        assert occurrence is not None
        meetings.send(call.mail, call.mailbox.address, occurrence, "CANCEL", series=master)


def _check_writable(call: Call) -> None:
    if call.mailbox.read_only:
        raise EwsError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def move_item(call: Call) -> list[etree._Element]:
    target_element = call.find("m:ToFolderId/*")
    assert target_element is not None  # required by the schema, which checked the request

    def answer(element: etree._Element, message: etree._Element) -> None:
        _check_writable(call)
        target = resolve_folder(call, target_element)
        _, item = resolve_item(call, element)
        moved = call.store.move_item(call.mailbox, item, target)
        sub(sub(message, m("Items")), t("Message")).append(properties.item_id(moved))

    return _per_id("MoveItem", call.findall("m:ItemIds/*"), answer)


def create_folder(call: Call) -> list[etree._Element]:
    """Folders by DisplayName under one parent (IPF.Note, a mail folder, unless told); a name the
    parent holds already (without regard to case) is ErrorFolderExists, as in Exchange."""
    parent_element = call.find("m:ParentFolderId/*")
    assert parent_element is not None  # required by the schema, which checked the request

    def answer(element: etree._Element, message: etree._Element) -> None:
        _check_writable(call)
        if etree.QName(element).localname != "Folder":
            raise EwsError("ErrorInvalidRequest", "The EWS test server creates mail folders (t:Folder) only.")
        parent = resolve_folder(call, parent_element)
        name = (element.findtext(f"{{{T}}}DisplayName") or "").strip()
        if not name:
            raise EwsError("ErrorInvalidPropertySet", "The folder must have a display name.")
        if any(f.name.lower() == name.lower() for f in call.mailbox.children(parent.id)):
            raise EwsError("ErrorFolderExists", "A folder with the specified name already exists.")
        created = call.store.create_folder(call.mailbox, parent, name)
        call.notes["folder"] = name
        sub(sub(message, m("Folders")), t("Folder")).append(properties.folder_id(created))

    return _per_id("CreateFolder", call.findall("m:Folders/*"), answer)


def update_item(call: Call) -> list[etree._Element]:
    """Only the read flag (SetItemField message:IsRead), which is what a mail client changes most."""

    def answer(change: etree._Element, message: etree._Element) -> None:
        target = change[0]
        if etree.QName(target).localname == "OccurrenceItemId":
            _update_occurrence(call, target, change, message)
            return
        item_element = change.find(f"{{{T}}}ItemId")
        if item_element is None:
            raise act_items.unimplemented("UpdateItem of a RecurringMasterItemId")
        folder, item = resolve_item(call, item_element)
        stale = item_element.get("ChangeKey") not in {None, item.change_key}
        if stale and call.body.get("ConflictResolution") == "NeverOverwrite":
            raise EwsError("ErrorIrresolvableConflict", "An update conflict has occurred.")
        updates = change.findall(f"{{{T}}}Updates/*")
        if item.props is not None:
            _check_writable(call)
            master = folder.items.get(item.master_id) if item.master_id else None
            act_items.update(call.store, item, updates, master)
            if _is_meeting(item) and _sending(call, "SendMeetingInvitationsOrCancellations"):
                meetings.send(call.mail, call.mailbox.address, item, "REQUEST", series=master)
            _updated(message, item)
            return
        for update in updates:
            uri = update.find(f"{{{T}}}FieldURI")
            value = update.findtext(f"{{{T}}}Message/{{{T}}}IsRead")
            if uri is None or uri.get("FieldURI") != "message:IsRead" or value is None:
                raise EwsError("ErrorInvalidPropertySet", "The EWS test server only updates message:IsRead.")
            call.store.mark_read(item, properties.xs_boolean(value))
        sub(sub(message, m("Items")), t("Message")).append(properties.item_id(item))
        conflicts = sub(message, m("ConflictResults"))
        sub(conflicts, t("Count", "0"))

    return _per_id("UpdateItem", call.findall("m:ItemChanges/t:ItemChange"), answer, call)


def _update_occurrence(
    call: Call, target: etree._Element, change: etree._Element, message: etree._Element
) -> None:
    """An occurrence changed: it becomes (or stays) an exception of its series."""
    _check_writable(call)
    master = _master(call, target)
    stale = target.get("ChangeKey") not in {None, master.change_key}
    if stale and call.body.get("ConflictResolution") == "NeverOverwrite":
        raise EwsError("ErrorIrresolvableConflict", "An update conflict has occurred.")
    exception = act_items.occurrence(call.store, master, _instance(target), make=True)
    assert exception is not None
    act_items.update(call.store, exception, change.findall(f"{{{T}}}Updates/*"), master)
    if _sending(call, "SendMeetingInvitationsOrCancellations"):
        meetings.send(call.mail, call.mailbox.address, exception, "REQUEST", series=master)
    _updated(message, exception)


def _is_meeting(item: Item) -> bool:
    return item.props is not None and etree.QName(item.props).localname == "CalendarItem"


def _sending(call: Call, attribute: str) -> bool:
    """Whether the request asks for meeting messages; a mode this server does not know is refused."""
    mode = call.body.get(attribute, meetings.NONE)
    if not meetings.is_known(mode):
        raise act_items.unimplemented(f"{attribute}={mode}")
    return mode in meetings.SENDING


def _updated(message: etree._Element, item: Item) -> None:
    sub(sub(message, m("Items")), act_items.item_id_only(item))
    sub(sub(message, m("ConflictResults")), t("Count", "0"))


def find_item(call: Call) -> list[etree._Element]:
    fields = properties.requested(call.find("m:ItemShape"), properties.DEFAULT_ITEM, properties.ALL_ITEM)
    shape = act_items.Shape(call.find("m:ItemShape"))
    view = call.find("m:IndexedPageItemView")

    def answer(element: etree._Element, message: etree._Element) -> None:
        matches = _restriction(call.find("m:Restriction/*"))
        folder = resolve_folder(call, element)
        found = sorted(
            (i for i in folder.items.values() if matches(i)), key=lambda i: i.received, reverse=True
        )
        page, offset, last = _page(found, view)
        root = sub(message, m("RootFolder", IndexedPagingOffset=str(offset + len(page))))
        root.set("TotalItemsInView", str(len(found)))
        root.set("IncludesLastItemInRange", "true" if last else "false")
        items = sub(root, t("Items"))
        for item in page:
            items.append(render(item, call.mailbox, fields, shape))

    return _per_id("FindItem", call.findall("m:ParentFolderIds/*"), answer, call)


# FieldURIs a restriction can compare, and the header each one reads.
RESTRICTABLE = {"message:InternetMessageId": "Message-ID", "item:Subject": "Subject"}


def _restriction(element: etree._Element | None) -> Callable[[Item], bool]:
    if element is None:
        return lambda _: True
    name = etree.QName(element).localname
    if name in {"And", "Or"}:
        parts = [_restriction(child) for child in element]
        combine = all if name == "And" else any
        return lambda item: combine(part(item) for part in parts)
    if name == "Not":
        inner = _restriction(element[0])
        return lambda item: not inner(item)
    uri = element.find(f"{{{T}}}FieldURI")
    constant = element.find(f"{{{T}}}FieldURIOrConstant/{{{T}}}Constant")
    extended = element.find(f"{{{T}}}ExtendedFieldURI")
    if name == "IsEqualTo" and extended is not None and constant is not None:
        wanted = constant.get("Value", "")
        return lambda item: act_items.extended_value(item, extended) == wanted
    header = RESTRICTABLE.get(uri.get("FieldURI", "") if uri is not None else "")
    if name != "IsEqualTo" or header is None or constant is None:
        # Exchange has many more; this server has only what the connector uses, and says so.
        raise EwsError(
            "ErrorUnsupportedQueryFilter", f"The EWS test server does not implement this restriction: {name}."
        )
    value = constant.get("Value", "")
    return lambda item: item.header(header) == value


def sync_folder_items(call: Call) -> list[etree._Element]:
    fields = properties.requested(call.find("m:ItemShape"), properties.DEFAULT_ITEM, properties.ALL_ITEM)
    shape = act_items.Shape(call.find("m:ItemShape"))
    message = response_message("SyncFolderItems")
    try:
        folder_element = call.find("m:SyncFolderId/*")
        assert folder_element is not None  # required by the schema
        folder = resolve_folder(call, folder_element)
        since = _since(call, folder)
        limit = int(call.body.findtext(f"{{{M}}}MaxChangesReturned") or "512")
    except EwsError as error:
        # Exchange's error answer still carries an (empty) SyncState; exchangelib reads it first.
        failed = response_message("SyncFolderItems", error.code, error.text)
        sub(failed, m("SyncState"))
        sub(failed, m("IncludesLastItemInRange", "true"))
        return [failed]
    with call.store.lock:
        changes = sync_states.changes(folder, since)
        page = changes[:limit]
        last = len(page) == len(changes)
        until = call.store.next_seq() if last else page[-1][0]
        sub(message, m("SyncState", sync_states.write(call.store, folder, until)))
        sub(message, m("IncludesLastItemInRange", "true" if last else "false"))
        container = sub(message, m("Changes"))
        for _, kind, item_id, item in page:
            change = sub(container, t(kind))
            if item is None:
                sub(change, t("ItemId", Id=item_id))
            elif kind == "ReadFlagChange":
                change.append(properties.item_id(item))
                sub(change, t("IsRead", "true" if item.is_read else "false"))
            else:
                change.append(render(item, call.mailbox, fields, shape))
    call.notes["changes"] = str(len(page))
    return [message]


def _since(call: Call, folder: Folder) -> int:
    """Where the request's SyncState stands (0: none given, a first sync)."""
    text = (call.body.findtext(f"{{{M}}}SyncState") or "").strip()
    call.notes["sync_state"] = "given" if text else "none"
    if not text:
        return 0
    since = sync_states.read(call.store, folder, text)
    if since is None:
        raise EwsError(
            "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."
        )
    return since


def create_item(call: Call) -> list[etree._Element]:
    disposition = call.body.get("MessageDisposition", "SaveOnly")
    call.notes["disposition"] = disposition
    saved_element = call.find("m:SavedItemFolderId/*")
    messages = []
    for element in call.findall("m:Items/*"):
        if etree.QName(element).localname in act_items.KINDS:
            messages.append(_create_act_item(call, element, saved_element))
            continue
        if etree.QName(element).localname != "Message":
            failed = response_message("CreateItem")
            try:
                raise call.refused(act_items.unimplemented(f"CreateItem of {etree.QName(element).localname}"))
            except EwsError as error:
                failed = response_message("CreateItem", error.code, error.text)
            messages.append(failed)
            continue
        message = response_message("CreateItem")
        items = sub(message, m("Items"))
        try:
            raw = _mime_of(element)
            if disposition in {"SendOnly", "SendAndSaveCopy"}:
                _send(call, element, raw)
            if disposition != "SendOnly":
                folder = (
                    resolve_folder(call, saved_element)
                    if saved_element is not None
                    else call.mailbox.by_distinguished("sentitems" if disposition != "SaveOnly" else "drafts")
                )
                assert folder is not None
                saved = call.store.add_item(folder, raw, is_read=True)
                if disposition == "SaveOnly":
                    sub(items, t("Message")).append(properties.item_id(saved))
        except EwsError as error:
            message = response_message("CreateItem", error.code, error.text)
        messages.append(message)
    return messages


def _create_act_item(
    call: Call, element: etree._Element, saved_element: etree._Element | None
) -> etree._Element:
    """A calendar item, contact or task, saved in the folder named (else its default folder);
    a meeting's attendees are sent a request when asked (``meetings``)."""
    kind = etree.QName(element).localname
    message = response_message("CreateItem")
    try:
        try:
            _check_writable(call)
            invitations = call.body.get("SendMeetingInvitations", "SendToNone")
            call.notes["invitations"] = invitations
            if kind == "CalendarItem" and not meetings.is_known(invitations):
                raise act_items.unimplemented(f"SendMeetingInvitations={invitations}")
            default = call.mailbox.by_distinguished(act_items.KINDS[kind])
            folder = resolve_folder(call, saved_element) if saved_element is not None else default
            assert folder is not None
            created = act_items.create(call.store, folder, element)
            if kind == "CalendarItem" and invitations in meetings.SENDING:
                meetings.send(call.mail, call.mailbox.address, created, "REQUEST")
        except act_items.Refused as refusal:
            raise call.refused(refusal) from None
    except EwsError as error:
        return response_message("CreateItem", error.code, error.text)
    sub(sub(message, m("Items")), act_items.item_id_only(created))
    return message


def _mime_of(element: etree._Element) -> bytes:
    mime = element.find(f"{{{T}}}MimeContent")
    if mime is None or not mime.text:
        # Items built from properties (Subject, Body, ...) are Exchange's too, but not this server's.
        raise EwsError("ErrorInvalidRequest", "The EWS test server only creates messages from MimeContent.")
    return base64.b64decode(mime.text)


def _send(call: Call, element: etree._Element, raw: bytes) -> None:
    """Recipients as Exchange takes them from MIME and properties: a property given (ToRecipients,
    CcRecipients, BccRecipients) replaces what the MIME header of that name says."""
    recipients: list[str] = []
    for kind, header in (("ToRecipients", "To"), ("CcRecipients", "Cc"), ("BccRecipients", "Bcc")):
        given = element.find(f"{{{T}}}{kind}")
        if given is not None:
            recipients += [a.text or "" for a in given.iterfind(f"{{{T}}}Mailbox/{{{T}}}EmailAddress")]
        else:
            recipients += [smtp for _, smtp in email.utils.getaddresses([header_of(raw, header)]) if smtp]
    if not recipients or not all(SMTP_ADDRESS.fullmatch(a) for a in recipients):
        # The whole message is refused, not just the bad recipient (unlike SMTP).
        raise EwsError("ErrorInvalidRecipients", "At least one recipient isn't valid.")
    call.mail.submit(call.mailbox.address, recipients, raw)


OPERATIONS: dict[str, Callable[[Call], list[etree._Element]]] = {
    "ConvertId": convert_id,
    "GetFolder": get_folder,
    "FindFolder": find_folder,
    "GetItem": get_item,
    "FindItem": find_item,
    "SyncFolderItems": sync_folder_items,
    "CreateItem": create_item,
    "DeleteItem": delete_item,
    "MoveItem": move_item,
    "CreateFolder": create_folder,
    "UpdateItem": update_item,
}
