"""A contact (``Card``) as a Microsoft Graph ``contact`` and back.

Every Card field has a place: names, company, department, job title, up to three email
addresses, the first business and home phone and the mobile phone, the business, home
and other addresses, the birthday (a date: Graph's DateTimeOffset is read for its UTC
date, as Outlook stores birthdays at noon or midnight UTC) and the notes. Graph v1.0's
contact has no fax number (the metadata says so), so the business fax is kept in
MAPI's own property for it, PidTagBusinessFaxNumber (``String 0x3A24``), which Outlook
shows as the business fax. The UID is in serversync's named property, as for events
(:mod:`sync.connectors.graph_events`); a contact Outlook made has none, and its Graph id
stands in for it until serversync writes it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sync.connectors.graph_events import UID_PROPERTY
from sync.connectors.items.data import Address, Card

FAX_PROPERTY = "String 0x3A24"  # PidTagBusinessFaxNumber (MS-OXPROPS)
EXPAND = f"singleValueExtendedProperties($filter=id eq '{UID_PROPERTY}' or id eq '{FAX_PROPERTY}')"
NAMES = {
    "first_name": "givenName",
    "middle_name": "middleName",
    "last_name": "surname",
    "nickname": "nickName",
    "company": "companyName",
    "department": "department",
    "job_title": "jobTitle",
    "mobile_phone": "mobilePhone",
    "notes": "personalNotes",
}


def to_graph(card: Card) -> dict[str, Any]:
    body: dict[str, Any] = {graph: getattr(card, ours) for ours, graph in NAMES.items()}
    body.update(
        displayName=" ".join(n for n in (card.first_name, card.last_name) if n) or card.company,
        emailAddresses=[{"address": e, "name": e} for e in card.emails],
        businessPhones=[card.business_phone] if card.business_phone else [],
        homePhones=[card.home_phone] if card.home_phone else [],
        businessAddress=_address(card.business_address),
        homeAddress=_address(card.home_address),
        otherAddress=_address(card.other_address),
        birthday=f"{card.birthday.isoformat()}T00:00:00Z" if card.birthday else None,
        singleValueExtendedProperties=[
            {"id": UID_PROPERTY, "value": card.uid},
            {"id": FAX_PROPERTY, "value": card.business_fax},
        ],
    )
    return body


def _address(address: Address | None) -> dict[str, str]:
    if address is None:
        return {"street": "", "city": "", "state": "", "postalCode": "", "countryOrRegion": ""}
    return {
        "street": address.street,
        "city": address.city,
        "state": address.region,
        "postalCode": address.postal_code,
        "countryOrRegion": address.country,
    }


def from_graph(document: dict[str, Any]) -> Card:
    properties = {
        str(p.get("id", "")).lower(): str(p.get("value") or "")
        for p in document.get("singleValueExtendedProperties") or []
    }
    return Card(
        uid=properties.get(UID_PROPERTY.lower()) or str(document["id"]),
        **{ours: str(document.get(graph) or "") for ours, graph in NAMES.items()},
        emails=tuple(str(e["address"]) for e in document.get("emailAddresses") or [] if e.get("address")),
        business_phone=_first(document.get("businessPhones")),
        home_phone=_first(document.get("homePhones")),
        business_fax=properties.get(FAX_PROPERTY.lower(), ""),
        business_address=_read_address(document.get("businessAddress")),
        home_address=_read_address(document.get("homeAddress")),
        other_address=_read_address(document.get("otherAddress")),
        birthday=_birthday(document.get("birthday")),
    )


def _first(values: object) -> str:
    return str(values[0]) if isinstance(values, list) and values else ""


def _read_address(found: object) -> Address | None:
    if not isinstance(found, dict):
        return None
    address = Address(
        street=str(found.get("street") or ""),
        city=str(found.get("city") or ""),
        region=str(found.get("state") or ""),
        postal_code=str(found.get("postalCode") or ""),
        country=str(found.get("countryOrRegion") or ""),
    )
    return None if address == Address() else address


def _birthday(value: object) -> dt.date | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(dt.UTC).date()
