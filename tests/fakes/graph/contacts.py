"""Contacts of the default contacts folder (``/contacts``): list (``$filter`` on an extended
property, ``$expand`` of extended properties, ``$top``), create, get, update (``If-Match``),
delete, and ``contacts/delta``."""

from __future__ import annotations

from typing import Any

from tests.fakes.graph.calls import Call, bad_request, expanded, not_implemented, top
from tests.fakes.graph.http import Reply
from tests.fakes.graph.item_calls import (
    check_if_match,
    expanded_properties,
    extended_filter,
    has_property,
    item_of,
    outlook_fields,
    patch,
    strict,
    strict_collection,
)
from tests.fakes.graph.item_delta import DeltaKind, ItemDeltaState, item_delta
from tests.fakes.graph.outlook_items import CONTACTS, OutlookItem, Removal

READ_ONLY = ("id", "changeKey", "createdDateTime", "lastModifiedDateTime", "parentFolderId")


def contact_document(call: Call, item: OutlookItem, wanted: list[str]) -> dict[str, Any]:
    stored = item.document
    names = (stored.get("givenName", ""), stored.get("surname", ""))
    document: dict[str, Any] = {
        **outlook_fields(item),
        "parentFolderId": f"{call.mailbox.user_id}-contacts",
        "displayName": " ".join(n for n in names if n) or stored.get("companyName", ""),
        "emailAddresses": [],
        "businessPhones": [],
        "homePhones": [],
        "categories": [],
        "businessAddress": {},
        "homeAddress": {},
        "otherAddress": {},
        **{k: v for k, v in stored.items() if k != "singleValueExtendedProperties"},
    }
    if wanted:
        document["singleValueExtendedProperties"] = expanded_properties(stored, wanted)
    return document


def _contacts(call: Call) -> dict[str, OutlookItem]:
    return {i.id: i for i in call.mailbox.outlook.in_collection(CONTACTS)}


def _reply(call: Call, status: int, item: OutlookItem) -> Reply:
    body = {
        "@odata.context": call.context("contacts/$entity"),
        **contact_document(call, item, expanded(call)),
    }
    return Reply.of_json(status, body, lambda d: strict("contact", d))


def list_contacts(call: Call) -> Reply:
    contacts = call.mailbox.outlook.in_collection(CONTACTS)
    wanted = extended_filter(call)
    if wanted is not None:
        contacts = [c for c in contacts if has_property(c.document, *wanted)]
    count = top(call)
    if len(contacts) > count:
        raise not_implemented(call, "paging of contacts")
    chosen = expanded(call)
    body = {
        "@odata.context": call.context("contacts"),
        "value": [contact_document(call, c, chosen) for c in contacts[:count]],
    }
    return Reply.of_json(200, body, lambda d: strict_collection("contact", d))


def _checked(call: Call) -> dict[str, Any]:
    body = call.server.checked_body(call.request, lambda d: strict("contact", d, request=True))
    refused = sorted(k for k in body if k in READ_ONLY)
    if refused:
        call.server.record(f"{call.request.method} {call.request.path}: read-only {refused} written")
        raise bad_request(f"The property '{refused[0]}' is read-only.")
    return body


def create_contact(call: Call) -> Reply:
    item = call.mailbox.outlook.add(CONTACTS, _checked(call))
    return _reply(call, 201, item)


def get_contact(call: Call) -> Reply:
    return _reply(call, 200, item_of(call, call.rest[1], _contacts(call)))


def update_contact(call: Call) -> Reply:
    body = _checked(call)
    item = item_of(call, call.rest[1], _contacts(call))
    check_if_match(call, item)
    item.document = patch(item.document, body)
    call.mailbox.outlook.touch(item)
    return _reply(call, 200, item)


def delete_contact(call: Call) -> Reply:
    item = item_of(call, call.rest[1], _contacts(call))
    check_if_match(call, item)
    call.mailbox.outlook.remove(item)
    return Reply(204)


def _everything(call: Call, state: ItemDeltaState) -> list[str | Removal]:
    return [c.id for c in call.mailbox.outlook.in_collection(CONTACTS)]


def _since(call: Call, state: ItemDeltaState) -> list[str | Removal]:
    return [
        c if isinstance(c, Removal) else c.id for c in call.mailbox.outlook.changed(CONTACTS, state.watermark)
    ]


def _render(call: Call, key: str, state: ItemDeltaState) -> dict[str, Any] | None:
    item = _contacts(call).get(key)
    return None if item is None else contact_document(call, item, [])


DELTA = DeltaKind("contact", "contacts/delta", _everything, _since, _render, lambda r: (r.item_id,))


def contacts_delta(call: Call) -> Reply:
    return item_delta(call, DELTA)
