"""What the calendar, contacts and To Do handlers share: guarded writes (``If-Match``),
the extended properties and ``$filter`` they serve, ``Prefer`` headers, and the JSON
shapes every Outlook item has."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from tests.fakes.graph import metadata
from tests.fakes.graph.calls import Call, not_found, not_implemented
from tests.fakes.graph.http import GraphError
from tests.fakes.graph.outlook_items import OutlookItem

# singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...'), as Graph's
# "Get singleValueLegacyExtendedProperty" page writes it.
EXTENDED_FILTER = re.compile(
    r"\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'((?:[^']|'')*)'\s+and\s+"
    r"\1/value\s+eq\s+'((?:[^']|'')*)'\s*\)\s*",
    re.IGNORECASE,
)
PREFER_ZONE = re.compile(r'outlook\.timezone\s*=\s*"([^"]+)"')


def strict(type_name: str, body: object, *, request: bool = False) -> list[str]:
    """The metadata's violations, and properties the type does not declare: ``event`` and
    ``contact`` are open types in the metadata (for extensions), yet Graph refuses a
    property it does not know ("Property 'x' does not exist on type ..."), so a misspelt
    name fails here too instead of passing as an open type's dynamic property."""
    found = metadata.validate(type_name, body, request=request)
    if isinstance(body, dict):
        declared = metadata.declared_properties(type_name)
        found += [
            f"{type_name}: Property {key!r} does not exist on type 'microsoft.graph.{type_name}'"
            for key in body
            if "@" not in key and key not in declared
        ]
    return found


def strict_collection(type_name: str, body: object) -> list[str]:
    found = metadata.validate_collection(type_name, body)
    if isinstance(body, dict) and isinstance(body.get("value"), list):
        for item in body["value"]:
            found += [v for v in strict(type_name, item) if "does not exist" in v]
    return found


def stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def item_of(call: Call, key: str, items: dict[str, OutlookItem]) -> OutlookItem:
    found = items.get(key)
    if found is None:
        if not key.startswith("AAMk"):
            raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        raise not_found()
    return found


def check_if_match(call: Call, item: OutlookItem) -> None:
    """412 when the client's version is not the item's (Graph's answer to a stale change key)."""
    wanted = call.request.headers.get("if-match")
    if wanted is not None and wanted.strip() not in (item.etag, "*"):
        raise GraphError(
            412,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the "
            "request does not match the current change key for the item.",
        )


def extended_filter(call: Call) -> tuple[str, str] | None:
    """(property id, value) of the one ``$filter`` on an extended property served; None without one."""
    value = call.request.query.get("$filter")
    if value is None:
        return None
    match = EXTENDED_FILTER.fullmatch(value)
    if match is None:
        raise not_implemented(call, f"$filter={value}")
    return match.group(2).replace("''", "'"), match.group(3).replace("''", "'")


def has_property(document: dict[str, Any], property_id: str, value: str) -> bool:
    return any(
        same_property(p["id"], property_id) and p["value"] == value
        for p in document.get("singleValueExtendedProperties", [])
    )


def same_property(a: str, b: str) -> bool:
    """Exchange reads property ids without regard to case ("String 0x3a24", "string 0x3A24")."""
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def expanded_properties(document: dict[str, Any], wanted: list[str]) -> list[dict[str, str]]:
    return [
        {"id": p["id"], "value": p["value"]}
        for p in document.get("singleValueExtendedProperties", [])
        if any(same_property(p["id"], w) for w in wanted)
    ]


def merge_properties(old: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    """A PATCH's extended properties set those named, keeping the others."""
    kept = [p for p in old if not any(same_property(p["id"], n["id"]) for n in new)]
    return kept + [{"id": n["id"], "value": n["value"]} for n in new]


def patch(document: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    changed = {**document, **{k: v for k, v in body.items() if k != "singleValueExtendedProperties"}}
    if "singleValueExtendedProperties" in body:
        changed["singleValueExtendedProperties"] = merge_properties(
            document.get("singleValueExtendedProperties", []), body["singleValueExtendedProperties"]
        )
    return changed


def prefer_zone(call: Call) -> str:
    """The zone ``Prefer: outlook.timezone`` asks for; Graph answers in UTC without one."""
    match = PREFER_ZONE.search(call.request.headers.get("prefer", ""))
    return match.group(1) if match else "UTC"


def outlook_fields(item: OutlookItem) -> dict[str, Any]:
    return {
        "@odata.etag": item.etag,
        "id": item.id,
        "createdDateTime": stamp(item.created),
        "lastModifiedDateTime": stamp(item.modified),
        "changeKey": item.change_key,
    }
