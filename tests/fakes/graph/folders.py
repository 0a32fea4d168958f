"""The user, and mail folders: by id or well-known name, child folders with ``$top`` paging."""

from __future__ import annotations

from typing import Any

from tests.fakes.graph import metadata
from tests.fakes.graph.calls import Call, folder_of, page_link, selected, skip, top
from tests.fakes.graph.http import GraphError, Reply
from tests.fakes.graph.mailboxes import Folder, Mailbox


def get_user(call: Call) -> Reply:
    box = call.mailbox
    document: dict[str, Any] = {
        "@odata.context": f"{call.origin}/v1.0/$metadata#users/$entity",
        "businessPhones": [],
        "displayName": box.display_name,
        "givenName": box.display_name.split(" ")[0],
        "jobTitle": None,
        "mail": box.address,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": "en-US",
        "surname": None,
        "userPrincipalName": box.address,
        "id": box.user_id,
    }
    return Reply.of_json(200, document, lambda d: metadata.validate("user", d))


# -- folders


def folder_json(box: Mailbox, folder: Folder) -> dict[str, Any]:
    messages = box.in_folder(folder.id)
    return {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "childFolderCount": len(box.children(folder.id)),
        "unreadItemCount": sum(1 for m in messages if not m.is_read),
        "totalItemCount": len(messages),
        "isHidden": False,
    }


def get_folder(call: Call) -> Reply:
    folder = folder_of(call, call.rest[1])
    document = {
        "@odata.context": call.context("mailFolders/$entity"),
        **trimmed(folder_json(call.mailbox, folder), selected(call, "mailFolder")),
    }
    return Reply.of_json(200, document, lambda d: metadata.validate("mailFolder", d))


def trimmed(folder: dict[str, Any], chosen: list[str] | None) -> dict[str, Any]:
    return folder if chosen is None else {k: v for k, v in folder.items() if k == "id" or k in chosen}


def list_folders(call: Call) -> Reply:
    parent = folder_of(call, call.rest[1]) if len(call.rest) > 1 else call.mailbox.root
    return _folder_page(call, parent, "/".join(call.rest))


def _folder_page(call: Call, parent: Folder, path: str) -> Reply:
    chosen = selected(call, "mailFolder")
    folders = [trimmed(folder_json(call.mailbox, f), chosen) for f in call.mailbox.children(parent.id)]
    count, start = top(call), skip(call)
    document: dict[str, Any] = {"@odata.context": call.context(path), "value": folders[start : start + count]}
    if start + count < len(folders):
        document["@odata.nextLink"] = page_link(call, path, **{"$top": count, "$skip": start + count})
    return Reply.of_json(200, document, lambda d: metadata.validate_collection("mailFolder", d))


def create_child_folder(call: Call) -> Reply:
    """POST .../childFolders, or POST mailFolders: a folder at the top of the mailbox (under
    msgfolderroot, beside the Inbox)."""
    parent = folder_of(call, call.rest[1]) if len(call.rest) > 1 else call.mailbox.root
    body = call.server.checked_body(call.request, lambda d: metadata.validate("mailFolder", d, request=True))
    name = str(body.get("displayName") or "")
    if not name:
        raise GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'DisplayName' is empty.")
    if any(f.display_name.lower() == name.lower() for f in call.mailbox.children(parent.id)):
        raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
    folder = call.mailbox.create_folder(parent.id, name)
    document = {"@odata.context": call.context("mailFolders/$entity"), **folder_json(call.mailbox, folder)}
    return Reply.of_json(201, document, lambda d: metadata.validate("mailFolder", d))
