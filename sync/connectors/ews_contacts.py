"""Card <-> exchangelib Contact.

Mapped both ways: given / middle / surname, nickname, company, department, job title, up to
three email addresses (EmailAddress1..3, the first the primary), the business, mobile and home
phones and the business fax, the business / home / other addresses, the birthday, the notes
(the item body: contacts:Notes is read-only in EWS) and the UID (``serversync-uid``, ews_uid;
a contact made in Outlook has none and reads with its EWS item id as its UID).

EWS requires a display name: written as "first middle last" (the company when there is no
name), and not read (Card has none). An address line break stays a line break in Street.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from exchangelib import Body, Contact
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress

from sync.connectors.ews_events import body_text
from sync.connectors.ews_uid import UID_FIELD
from sync.connectors.items import Address, Card

EMAIL_LABELS = ("EmailAddress1", "EmailAddress2", "EmailAddress3")
PHONES = {
    "business_phone": "BusinessPhone",
    "mobile_phone": "MobilePhone",
    "home_phone": "HomePhone",
    "business_fax": "BusinessFax",
}
ADDRESSES = {"business_address": "Business", "home_address": "Home", "other_address": "Other"}
FIELDS = [
    "body",
    "display_name",
    "given_name",
    "middle_name",
    "nickname",
    "company_name",
    "email_addresses",
    "physical_addresses",
    "phone_numbers",
    "birthday",
    "department",
    "job_title",
    "surname",
    UID_FIELD,
]


def values(card: Card) -> dict[str, Any]:
    return {
        "body": Body(card.notes) if card.notes else None,
        "display_name": _display_name(card),
        "given_name": card.first_name or None,
        "middle_name": card.middle_name or None,
        "surname": card.last_name or None,
        "nickname": card.nickname or None,
        "company_name": card.company or None,
        "department": card.department or None,
        "job_title": card.job_title or None,
        "email_addresses": [
            EmailAddress(label=label, email=e) for label, e in zip(EMAIL_LABELS, card.emails, strict=False)
        ]
        or None,
        "phone_numbers": [
            PhoneNumber(label=label, phone_number=getattr(card, name))
            for name, label in PHONES.items()
            if getattr(card, name)
        ]
        or None,
        "physical_addresses": [
            _address(label, getattr(card, name)) for name, label in ADDRESSES.items() if getattr(card, name)
        ]
        or None,
        "birthday": card.birthday,
        UID_FIELD: card.uid,
    }


def _display_name(card: Card) -> str:
    name = " ".join(p for p in (card.first_name, card.middle_name, card.last_name) if p)
    return name or card.company or card.nickname or next(iter(card.emails), "") or card.uid


def _address(label: str, address: Address) -> PhysicalAddress:
    return PhysicalAddress(
        label=label,
        street=address.street or None,
        city=address.city or None,
        state=address.region or None,
        country=address.country or None,
        zipcode=address.postal_code or None,
    )


def read(item: Contact) -> Card:
    emails = {e.label: e.email for e in item.email_addresses or () if e.email}
    phones = {p.label: p.phone_number for p in item.phone_numbers or () if p.phone_number}
    addresses = {a.label: a for a in item.physical_addresses or ()}
    return Card(
        uid=getattr(item, UID_FIELD, None) or item.id,
        first_name=item.given_name or "",
        middle_name=item.middle_name or "",
        last_name=item.surname or "",
        nickname=item.nickname or "",
        company=item.company_name or "",
        department=item.department or "",
        job_title=item.job_title or "",
        emails=tuple(emails[label] for label in EMAIL_LABELS if label in emails),
        business_phone=phones.get("BusinessPhone", ""),
        mobile_phone=phones.get("MobilePhone", ""),
        home_phone=phones.get("HomePhone", ""),
        business_fax=phones.get("BusinessFax", ""),
        business_address=_read_address(addresses.get("Business")),
        home_address=_read_address(addresses.get("Home")),
        other_address=_read_address(addresses.get("Other")),
        birthday=_date(item.birthday),
        notes=body_text(item.body),
    )


def _read_address(found: PhysicalAddress | None) -> Address | None:
    if found is None:
        return None
    address = Address(
        street=found.street or "",
        city=found.city or "",
        region=found.state or "",
        postal_code=found.zipcode or "",
        country=found.country or "",
    )
    return address if address != Address() else None


def _date(value: dt.date | None) -> dt.date | None:
    return dt.date(value.year, value.month, value.day) if value is not None else None
