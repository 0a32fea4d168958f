"""Items and folders written as ``t:Message`` / ``t:Folder``, with the properties a shape asks for.

A shape is BaseShape (IdOnly, Default, AllProperties) plus AdditionalProperties' FieldURIs; the
children are written in the order types.xsd's sequences require (read from the schema itself).
Properties the server does not hold are left out, as Exchange leaves out empty ones.
"""

from __future__ import annotations

import base64
import email.utils
from collections.abc import Callable
from datetime import datetime

from lxml import etree

from tests.fakes.ews.soap import sub, t
from tests.fakes.ews.store import Folder, Item, Mailbox
from tests.fakes.ews.xsd import T, child_order

DEFAULT_ITEM = {
    "item:ItemId",
    "item:Subject",
    "item:DateTimeReceived",
    "item:Size",
    "message:From",
    "message:IsRead",
}
ALL_ITEM = DEFAULT_ITEM | {
    "item:ParentFolderId",
    "item:ItemClass",
    "item:DateTimeSent",
    "item:DateTimeCreated",
    "item:LastModifiedTime",
    "item:HasAttachments",
    "message:InternetMessageId",
    "message:Sender",
    "message:ToRecipients",
    "message:CcRecipients",
    "message:References",
    "item:InReplyTo",
}
DEFAULT_FOLDER = {"folder:DisplayName", "folder:TotalCount", "folder:ChildFolderCount", "folder:UnreadCount"}
ALL_FOLDER = DEFAULT_FOLDER | {"folder:ParentFolderId", "folder:FolderClass", "folder:DistinguishedFolderId"}


def requested(shape: etree._Element | None, default: set[str], every: set[str]) -> set[str]:
    if shape is None:
        return set(default)
    base = shape.findtext(f"{{{T}}}BaseShape")
    fields = {"IdOnly": set(), "Default": set(default), "AllProperties": set(every)}.get(base or "", set())
    for uri in shape.iterfind(f"{{{T}}}AdditionalProperties/{{{T}}}FieldURI"):
        fields.add(uri.get("FieldURI", ""))
    if xs_boolean(shape.findtext(f"{{{T}}}IncludeMimeContent") or ""):
        fields.add("item:MimeContent")
    return fields


def xs_boolean(text: str) -> bool:
    """An xs:boolean's value: "true" or "1" (exchangelib writes "1")."""
    return text.strip() in {"true", "1"}


def timestamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _mailbox(tag: str, address: str) -> etree._Element:
    name, smtp = email.utils.parseaddr(address)
    wrapper = t(tag)
    box = sub(wrapper, t("Mailbox"))
    if name:
        sub(box, t("Name", name))
    sub(box, t("EmailAddress", smtp))
    sub(box, t("RoutingType", "SMTP"))
    sub(box, t("MailboxType", "OneOff"))
    return wrapper


def _recipients(tag: str, header: str) -> etree._Element | None:
    addresses = email.utils.getaddresses([header]) if header else []
    if not addresses:
        return None
    wrapper = t(tag)
    for name, smtp in addresses:
        wrapper.append(_mailbox("Mailbox", email.utils.formataddr((name, smtp)))[0])
    return wrapper


def _date_sent(item: Item) -> str:
    try:
        return timestamp(email.utils.parsedate_to_datetime(item.header("Date")))
    except (TypeError, ValueError):
        return timestamp(item.received)


ItemWriter = Callable[[Item, Mailbox], "etree._Element | None"]

ITEM_WRITERS: dict[str, ItemWriter] = {
    "item:MimeContent": lambda i, _: t(
        "MimeContent", base64.b64encode(i.mime).decode(), CharacterSet="UTF-8"
    ),
    "item:ParentFolderId": lambda i, mb: t(
        "ParentFolderId", Id=i.folder_id, ChangeKey=mb.folders[i.folder_id].change_key
    ),
    "item:ItemClass": lambda i, _: t("ItemClass", "IPM.Note"),
    "item:Subject": lambda i, _: t("Subject", i.header("Subject")),
    "item:DateTimeReceived": lambda i, _: t("DateTimeReceived", timestamp(i.received)),
    "item:Size": lambda i, _: t("Size", str(i.size)),
    "item:InReplyTo": lambda i, _: (
        t("InReplyTo", i.header("In-Reply-To")) if i.header("In-Reply-To") else None
    ),
    "item:DateTimeSent": lambda i, _: t("DateTimeSent", _date_sent(i)),
    "item:DateTimeCreated": lambda i, _: t("DateTimeCreated", timestamp(i.received)),
    "item:HasAttachments": lambda i, _: t("HasAttachments", "false"),
    "item:LastModifiedTime": lambda i, _: t("LastModifiedTime", timestamp(i.received)),
    "message:Sender": lambda i, _: (
        _mailbox("Sender", i.header("Sender") or i.header("From")) if i.header("From") else None
    ),
    "message:ToRecipients": lambda i, _: _recipients("ToRecipients", i.header("To")),
    "message:CcRecipients": lambda i, _: _recipients("CcRecipients", i.header("Cc")),
    "message:From": lambda i, _: _mailbox("From", i.header("From")) if i.header("From") else None,
    "message:InternetMessageId": lambda i, _: (
        t("InternetMessageId", i.header("Message-ID")) if i.header("Message-ID") else None
    ),
    "message:IsRead": lambda i, _: t("IsRead", "true" if i.is_read else "false"),
    "message:References": lambda i, _: (
        t("References", i.header("References")) if i.header("References") else None
    ),
}


def item_id(item: Item) -> etree._Element:
    return t("ItemId", Id=item.id, ChangeKey=item.change_key)


def message(item: Item, mailbox: Mailbox, fields: set[str]) -> etree._Element:
    children = [item_id(item)]
    for uri in fields:
        writer = ITEM_WRITERS.get(uri)
        child = writer(item, mailbox) if writer else None
        if child is not None:
            children.append(child)
    return _ordered(t("Message"), children, "MessageType")


def folder_id(folder: Folder) -> etree._Element:
    return t("FolderId", Id=folder.id, ChangeKey=folder.change_key)


FolderWriter = Callable[[Folder, Mailbox], "etree._Element | None"]

FOLDER_WRITERS: dict[str, FolderWriter] = {
    "folder:ParentFolderId": lambda f, mb: (
        t("ParentFolderId", Id=f.parent_id, ChangeKey=mb.folders[f.parent_id].change_key)
        if f.parent_id
        else None
    ),
    "folder:FolderClass": lambda f, _: t("FolderClass", "IPF.Note"),
    "folder:DisplayName": lambda f, _: t("DisplayName", f.name),
    "folder:TotalCount": lambda f, _: t("TotalCount", str(len(f.items))),
    "folder:ChildFolderCount": lambda f, mb: t("ChildFolderCount", str(len(mb.children(f.id)))),
    "folder:DistinguishedFolderId": lambda f, _: (
        t("DistinguishedFolderId", f.distinguished) if f.distinguished else None
    ),
    "folder:UnreadCount": lambda f, _: t("UnreadCount", str(sum(not i.is_read for i in f.items.values()))),
}


def folder(folder: Folder, mailbox: Mailbox, fields: set[str]) -> etree._Element:
    children = [folder_id(folder)]
    for uri in fields:
        writer = FOLDER_WRITERS.get(uri)
        child = writer(folder, mailbox) if writer else None
        if child is not None:
            children.append(child)
    return _ordered(t("Folder"), children, "FolderType")


def _ordered(parent: etree._Element, children: list[etree._Element], type_name: str) -> etree._Element:
    order = child_order(type_name)
    for child in sorted(children, key=lambda c: order[etree.QName(c).localname]):
        parent.append(child)
    return parent
