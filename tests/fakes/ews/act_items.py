"""Calendar items, contacts and tasks: kept as the property elements a client created, changed
by UpdateItem's SetItemField / DeleteItemField, and read with the properties Exchange computes
(ItemClass, CalendarItemType, Organizer, ModifiedOccurrences, DeletedOccurrences, OriginalStart,
CompleteDate...). A series' occurrences are addressed by OccurrenceItemId (its master and an
instance index, recurrences.py): changing one makes an exception with an id of its own, deleting
one records its original start; setting a master's Recurrence again drops both, as in Exchange.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime

from lxml import etree

from tests.fakes.ews import properties, recurrences
from tests.fakes.ews.soap import t
from tests.fakes.ews.store import Folder, Item, Mailbox, Store, new_id
from tests.fakes.ews.xsd import T, child_order

KINDS = {"CalendarItem": "calendar", "Contact": "contacts", "Task": "tasks"}
TYPES = {"CalendarItem": "CalendarItemType", "Contact": "ContactItemType", "Task": "TaskType"}
ITEM_CLASSES = {"CalendarItem": "IPM.Appointment", "Contact": "IPM.Contact", "Task": "IPM.Task"}
# IndexedFieldURI's FieldURI -> the dictionary element holding its entries.
DICTIONARIES = {
    "contacts:EmailAddress": "EmailAddresses",
    "contacts:PhoneNumber": "PhoneNumbers",
    "contacts:ImAddress": "ImAddresses",
    "contacts:PhysicalAddress": "PhysicalAddresses",
}


class Refused(Exception):
    """An EWS error for one item (the operation answers it in the item's response message)."""

    def __init__(self, code: str, text: str, *, unimplemented: bool = False) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
        self.unimplemented = unimplemented


def unimplemented(what: str) -> Refused:
    return Refused(
        "ErrorInvalidRequest", f"The EWS test server does not implement {what}.", unimplemented=True
    )


def stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- creating ---------------------------------------------------------------------------------


# xs:boolean properties of these items: Exchange answers "true" / "false", whatever the client wrote.
BOOLEANS = {
    "ReminderIsSet",
    "IsAllDayEvent",
    "IsResponseRequested",
    "AllowNewTimeProposal",
    "IsOnlineMeeting",
    "IsComplete",
    "IsDraft",
}
DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def canonical(element: etree._Element) -> etree._Element:
    """A property element as Exchange answers it: booleans "true" / "false", times in UTC."""
    for leaf in element.iter():
        if len(leaf) or not leaf.text:
            continue
        if etree.QName(leaf).localname in BOOLEANS:
            leaf.text = "true" if leaf.text.strip() in {"1", "true"} else "false"
        elif DATE_TIME.fullmatch(leaf.text.strip()):
            leaf.text = stamp(recurrences.parse_time(leaf.text.strip()))
    return element


def create(store: Store, folder: Folder, element: etree._Element) -> Item:
    props = canonical(copy.deepcopy(element))
    kind = etree.QName(props).localname
    if kind == "CalendarItem":
        if props.find(f"{{{T}}}UID") is None:
            props.append(t("UID", f"{new_id()}@ews.test"))
        _check_series(props)
    item = store.add_item(folder, b"", props=props)
    _note_completion(item)
    return item


def _check_series(props: etree._Element) -> None:
    if props.find(f"{{{T}}}Recurrence") is None:
        return
    try:
        next(recurrences.starts(props), None)
    except recurrences.Unsupported as error:
        raise unimplemented(f"the recurrence pattern {error}") from None


def _note_completion(item: Item) -> None:
    """Exchange sets a task's CompleteDate when it is completed (and drops it when it is not)."""
    if item.kind != "Task" or item.props is None:
        return
    completed = item.props.findtext(f"{{{T}}}Status") == "Completed"
    if completed and item.completed is None:
        item.completed = datetime.now(UTC).replace(microsecond=0)
    elif not completed:
        item.completed = None


# -- reading ----------------------------------------------------------------------------------


class Shape:
    """What an ItemShape asks for: every property (AllProperties / Default), or names."""

    def __init__(self, shape: etree._Element | None) -> None:
        base = shape.findtext(f"{{{T}}}BaseShape") if shape is not None else "Default"
        self.everything = base in {"Default", "AllProperties"}
        self.names: set[str] = set()
        self.extended: list[dict[str, str]] = []
        for path in shape.iterfind(f"{{{T}}}AdditionalProperties/*") if shape is not None else ():
            name = etree.QName(path).localname
            uri = path.get("FieldURI", "")
            if name == "FieldURI":
                self.names.add(uri.split(":")[-1])
            elif name == "IndexedFieldURI":
                self.names.add(DICTIONARIES.get(":".join(uri.split(":")[:2]), uri))
            elif name == "ExtendedFieldURI":
                self.extended.append(dict(path.attrib))

    def wants(self, element: etree._Element) -> bool:
        name = etree.QName(element).localname
        if name == "ExtendedProperty":
            uri = element.find(f"{{{T}}}ExtendedFieldURI")
            return uri is not None and dict(uri.attrib) in self.extended
        return self.everything or name in self.names


def render(item: Item, mailbox: Mailbox, shape: Shape) -> etree._Element:
    """The item as GetItem, FindItem and SyncFolderItems give it."""
    assert item.props is not None
    children = [properties.item_id(item)]
    children += [_answered(copy.deepcopy(c), item.props) for c in item.props if shape.wants(c)]
    children += [c for c in _computed(item, mailbox) if shape.wants(c)]
    parent = t(item.kind)
    order = child_order(TYPES[item.kind])
    for child in sorted(children, key=lambda c: order[etree.QName(c).localname]):
        parent.append(child)
    return parent


def _answered(child: etree._Element, props: etree._Element) -> etree._Element:
    """A recurrence's dates as Exchange answers them: with the series' zone offset ("2030-03-18+01:00")."""
    if etree.QName(child).localname != "Recurrence":
        return child
    zone = recurrences.zone_of(props)
    for name in ("StartDate", "EndDate"):
        for found in child.iter(f"{{{T}}}{name}"):
            day = (found.text or "")[:10]
            offset = datetime.fromisoformat(day).replace(tzinfo=zone).strftime("%z")
            found.text = f"{day}{offset[:3]}:{offset[3:]}"
    return child


def item_id_only(item: Item) -> etree._Element:
    element = t(item.kind)
    element.append(properties.item_id(item))
    return element


def _computed(item: Item, mailbox: Mailbox) -> list[etree._Element]:
    found = [
        t("ItemClass", ITEM_CLASSES[item.kind]),
        t("ParentFolderId", Id=item.folder_id, ChangeKey=mailbox.folders[item.folder_id].change_key),
        t("DateTimeCreated", stamp(item.received)),
        t("LastModifiedTime", stamp(item.received)),
    ]
    if item.kind == "CalendarItem":
        found += _calendar(item, mailbox)
    if item.kind == "Task" and item.completed is not None:
        found += [t("CompleteDate", stamp(item.completed)), t("IsComplete", "true")]
    return found


def _calendar(item: Item, mailbox: Mailbox) -> list[etree._Element]:
    assert item.props is not None
    series = item.props.find(f"{{{T}}}Recurrence") is not None
    kind = "Exception" if item.master_id else "RecurringMaster" if series else "Single"
    organizer = t("Organizer")
    box = etree.SubElement(organizer, f"{{{T}}}Mailbox")
    etree.SubElement(box, f"{{{T}}}EmailAddress").text = mailbox.address
    etree.SubElement(box, f"{{{T}}}RoutingType").text = "SMTP"
    found = [t("CalendarItemType", kind), organizer, t("IsRecurring", "true" if item.master_id else "false")]
    if item.original_start is not None:
        found.append(t("OriginalStart", stamp(item.original_start)))
    if item.exceptions:
        modified = t("ModifiedOccurrences")
        for index in sorted(item.exceptions):
            exception = item.exceptions[index]
            assert exception.props is not None
            assert exception.original_start is not None
            occurrence = etree.SubElement(modified, f"{{{T}}}Occurrence")
            occurrence.append(properties.item_id(exception))
            for name in ("Start", "End"):
                etree.SubElement(occurrence, f"{{{T}}}{name}").text = exception.props.findtext(
                    f"{{{T}}}{name}"
                )
            etree.SubElement(occurrence, f"{{{T}}}OriginalStart").text = stamp(exception.original_start)
        found.append(modified)
    if item.deleted:
        deleted = t("DeletedOccurrences")
        for index in sorted(item.deleted):
            gone = etree.SubElement(deleted, f"{{{T}}}DeletedOccurrence")
            etree.SubElement(gone, f"{{{T}}}Start").text = stamp(item.deleted[index])
        found.append(deleted)
    return found


# -- occurrences ------------------------------------------------------------------------------


def occurrence(store: Store, master: Item, index: int, *, make: bool) -> Item | None:
    """Occurrence ``index`` of ``master`` as an exception: the one there is, else (``make``) a new
    one copied from the master at the occurrence's time; None for an occurrence never changed."""
    if master.props is None or master.props.find(f"{{{T}}}Recurrence") is None:
        raise Refused(
            "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange", "The item is not a recurring master."
        )
    if index in master.exceptions:
        return master.exceptions[index]
    times = recurrences.occurrence(master.props, index)
    if times is None or index in master.deleted:
        raise Refused(
            "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
            "The occurrence index is out of the recurrence range.",
        )
    if not make:
        return None
    props = copy.deepcopy(master.props)
    for name in ("Recurrence",):
        for child in props.findall(f"{{{T}}}{name}"):
            props.remove(child)
    for name, value in zip(("Start", "End"), times, strict=True):
        found = props.find(f"{{{T}}}{name}")
        assert found is not None
        found.text = stamp(value)
    exception = Item(new_id(), master.folder_id, b"", master.received, props=props)
    exception.master_id, exception.index, exception.original_start = master.id, index, times[0]
    master.exceptions[index] = exception
    return exception


def delete_occurrence(store: Store, master: Item, index: int) -> None:
    times = recurrences.occurrence(master.props, index) if master.props is not None else None
    if times is None or (index in master.deleted):
        raise Refused(
            "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
            "The occurrence index is out of the recurrence range.",
        )
    master.exceptions.pop(index, None)
    master.deleted[index] = times[0]
    store.touch(master)


# -- updating ---------------------------------------------------------------------------------


def update(store: Store, item: Item, updates: list[etree._Element], master: Item | None) -> None:
    """Apply SetItemField / DeleteItemField changes; a new change key (the master's too)."""
    assert item.props is not None
    for change in updates:
        operation = etree.QName(change).localname
        if operation == "AppendToItemField":
            raise unimplemented("AppendToItemField")
        path = change[0]
        value = change[1][0] if operation == "SetItemField" and len(change) > 1 and len(change[1]) else None
        _apply(item, path, canonical(copy.deepcopy(value)) if value is not None else None)
    if any(c[0].get("FieldURI") == "calendar:Recurrence" for c in updates):
        # A series given its pattern again (or none) starts over: Exchange drops its exceptions.
        item.exceptions.clear()
        item.deleted.clear()
        _check_series(item.props)
    _note_completion(item)
    store.touch(item)
    if master is not None:
        store.touch(master)


def _apply(item: Item, path: etree._Element, value: etree._Element | None) -> None:
    assert item.props is not None
    kind = etree.QName(path).localname
    if kind == "FieldURI":
        name = path.get("FieldURI", "").split(":")[-1]
        _replace(item.props, lambda c: etree.QName(c).localname == name, value)
    elif kind == "ExtendedFieldURI":
        wanted = dict(path.attrib)

        def same(child: etree._Element) -> bool:
            uri = child.find(f"{{{T}}}ExtendedFieldURI")
            return (
                etree.QName(child).localname == "ExtendedProperty"
                and uri is not None
                and dict(uri.attrib) == wanted
            )

        _replace(item.props, same, value)
    else:
        _indexed(item.props, path, value)


def _replace(props: etree._Element, matches: object, value: etree._Element | None) -> None:
    for child in [c for c in props if matches(c)]:  # type: ignore[operator]
        props.remove(child)
    if value is not None:
        props.append(copy.deepcopy(value))


def _indexed(props: etree._Element, path: etree._Element, value: etree._Element | None) -> None:
    """contacts:EmailAddress / PhoneNumber (an entry's text) and PhysicalAddress:Street ... (one part
    of an entry), keyed by FieldIndex."""
    uri = path.get("FieldURI", "")
    container_name = DICTIONARIES.get(":".join(uri.split(":")[:2]))
    if container_name is None:
        raise unimplemented(f"the indexed property {uri}")
    key = path.get("FieldIndex", "")
    part = uri.split(":")[2] if uri.count(":") == 2 else ""
    container = props.find(f"{{{T}}}{container_name}")
    if container is None:
        if value is None:
            return
        container = etree.SubElement(props, f"{{{T}}}{container_name}")
    entry = next((e for e in container if e.get("Key") == key), None)
    given = value.find(f"{{{T}}}Entry") if value is not None else None
    if not part:
        if entry is not None:
            container.remove(entry)
        if given is not None:
            container.append(copy.deepcopy(given))
    else:
        if entry is None and given is not None:
            entry = etree.SubElement(container, f"{{{T}}}Entry", Key=key)
        if entry is not None:
            for old in entry.findall(f"{{{T}}}{part}"):
                entry.remove(old)
            new = given.find(f"{{{T}}}{part}") if given is not None else None
            if new is not None:
                entry.append(copy.deepcopy(new))
                order = child_order("PhysicalAddressDictionaryEntryType")
                entry[:] = sorted(entry, key=lambda c: order[etree.QName(c).localname])
            if not len(entry):
                container.remove(entry)
    if not len(container):
        props.remove(container)


def extended_value(item: Item, uri: etree._Element) -> str | None:
    """The value of the extended property ``uri`` names, for FindItem's restrictions."""
    if item.props is None:
        return None
    wanted = dict(uri.attrib)
    for prop in item.props.iterfind(f"{{{T}}}ExtendedProperty"):
        found = prop.find(f"{{{T}}}ExtendedFieldURI")
        if found is not None and dict(found.attrib) == wanted:
            return str(prop.findtext(f"{{{T}}}Value") or "")
    return None
