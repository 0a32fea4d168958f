"""Contacts to and from vCard, through vobject.

Written as vCard 3.0, the version every CardDAV server must accept (RFC 6352);
read as 3.0 or 4.0, with the ways clients type a line: TYPE=WORK,VOICE or
TYPE="work,voice", 4.0's ``tel:`` URIs, and Apple's grouped labels
(``item1.TEL`` with ``item1.X-ABLabel:_$!<Mobile>!$_``). A line of a kind the
contact has no room for (a fourth email, a second mobile) is skipped.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import vobject

from sync.connectors.items.data import MAX_EMAILS, Address, Card
from sync.errors import MessageError

PHONE_TYPES = {
    "business_phone": ["WORK", "VOICE"],
    "mobile_phone": ["CELL", "VOICE"],
    "home_phone": ["HOME", "VOICE"],
    "business_fax": ["WORK", "FAX"],
}
ADDRESS_TYPES = {"business_address": "WORK", "home_address": "HOME", "other_address": "OTHER"}
APPLE_LABEL = re.compile(r"^_\$!<(.*)>!\$_$")
# Apple's labels, as the types they stand for.
LABEL_TYPES = {"mobile": {"cell"}, "workfax": {"work", "fax"}, "homefax": {"home", "fax"}}
BIRTHDAY = re.compile(r"^(\d{4}|--)-?(\d{2})-?(\d{2})")
# Apple Contacts' year for a birthday given without one.
NO_YEAR = 1604


def bad_vcard(message: str) -> MessageError:
    return MessageError(message, code="vcard_invalid")


# -- writing --------------------------------------------------------------------------------


def card_to_vcard(card: Card) -> bytes:
    vcard = vobject.vCard()
    vcard.add("uid").value = card.uid
    vcard.add("n").value = vobject.vcard.Name(
        family=card.last_name, given=card.first_name, additional=card.middle_name
    )
    vcard.add("fn").value = _display_name(card)
    _add_texts(vcard, card)
    for index, address in enumerate(card.emails):
        line = vcard.add("email")
        line.value = address
        line.params["TYPE"] = ["INTERNET", "PREF"] if index == 0 else ["INTERNET"]
    for field, types in PHONE_TYPES.items():
        if number := getattr(card, field):
            line = vcard.add("tel")
            line.value = number
            line.params["TYPE"] = list(types)
    for field, kind in ADDRESS_TYPES.items():
        if (address := getattr(card, field)) is not None:
            line = vcard.add("adr")
            line.value = vobject.vcard.Address(
                street=address.street,
                city=address.city,
                region=address.region,
                code=address.postal_code,
                country=address.country,
            )
            line.params["TYPE"] = [kind]
    if card.birthday is not None:
        vcard.add("bday").value = card.birthday.isoformat()
    return str(vcard.serialize()).encode()


def _display_name(card: Card) -> str:
    # FN is required; Outlook's "File as" falls back the same way.
    names = " ".join(n for n in (card.first_name, card.middle_name, card.last_name) if n)
    return names or card.nickname or card.company or (card.emails[0] if card.emails else card.uid)


def _add_texts(vcard: Any, card: Card) -> None:
    if card.nickname:
        vcard.add("nickname").value = card.nickname
    if card.company or card.department:
        vcard.add("org").value = [card.company, card.department] if card.department else [card.company]
    if card.job_title:
        vcard.add("title").value = card.job_title
    if card.notes:
        vcard.add("note").value = card.notes


# -- reading --------------------------------------------------------------------------------


def vcard_to_card(data: bytes | str) -> Card:
    """The contact of one vCard (3.0 or 4.0); ``MessageError`` says what is wrong."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        vcard = vobject.readOne(text)
    except Exception as error:  # vobject raises ParseError, ValueError... on bad input
        raise bad_vcard(f"The contact data is not a valid vCard: {error}") from None
    if vcard.name != "VCARD":
        raise bad_vcard(f"The contact data is a {vcard.name}, not a VCARD.")
    lines = list(vcard.getChildren())
    labels = {line.group: _label(line.value) for line in lines if line.name == "X-ABLABEL" and line.group}
    found: dict[str, Any] = {"emails": []}
    for line in lines:
        try:
            _read_line(line, _types(line) | labels.get(line.group, set()), found)
        except (AttributeError, TypeError, ValueError) as error:
            raise bad_vcard(f"The vCard's {line.name} line cannot be read: {error}") from None
    uid = found.pop("uid", "")
    emails = found.pop("emails")
    found["emails"] = tuple(address for _, address in sorted(emails, key=lambda e: e[0]))[:MAX_EMAILS]
    try:
        return Card(uid=uid, **found)
    except MessageError as error:
        raise bad_vcard(f"The contact {uid!r}: {error.message}") from None


def _types(line: Any) -> set[str]:
    # TYPE=WORK,VOICE, TYPE=work;TYPE=voice and TYPE="work,voice" alike.
    return {t.strip().lower() for value in line.params.get("TYPE", []) for t in value.split(",") if t.strip()}


def _label(value: Any) -> set[str]:
    match = APPLE_LABEL.match(str(value))
    word = (match.group(1) if match else str(value)).strip().lower()
    return LABEL_TYPES.get(word, {word})


def _read_line(line: Any, types: set[str], found: dict[str, Any]) -> None:
    name = line.name
    if name == "UID":
        found["uid"] = str(line.value).strip()
    elif name == "N":
        value = line.value
        found.update(
            first_name=_joined(value.given),
            middle_name=_joined(value.additional),
            last_name=_joined(value.family),
        )
    elif name in ("NICKNAME", "TITLE", "NOTE"):
        key = {"NICKNAME": "nickname", "TITLE": "job_title", "NOTE": "notes"}[name]
        found.setdefault(key, _joined(line.value))
    elif name == "ORG":
        parts = line.value if isinstance(line.value, list) else [line.value]
        found.update(company=parts[0] if parts else "", department=";".join(parts[1:]))
    elif name == "EMAIL":
        found["emails"].append((0 if "pref" in types else 1, str(line.value).strip()))
    elif name == "TEL":
        _read_phone(str(line.value), types, found)
    elif name == "ADR":
        _read_address(line.value, types, found)
    elif name == "BDAY":
        found["birthday"] = _birthday(str(line.value))


def _joined(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value)


def _read_phone(number: str, types: set[str], found: dict[str, Any]) -> None:
    number = number.strip()
    if number.lower().startswith("tel:"):
        number = number[len("tel:") :]
    if "fax" in types:
        field = "business_fax" if "home" not in types else None
    elif types & {"cell", "mobile", "iphone"}:
        field = "mobile_phone"
    elif "home" in types:
        field = "home_phone"
    elif "work" in types or not types - {"voice", "pref"}:
        field = "business_phone"
    else:
        field = None  # pager, "other" and the like: the contact has no room for them
    if field is not None:
        found.setdefault(field, number)


def _read_address(value: Any, types: set[str], found: dict[str, Any]) -> None:
    address = Address(
        street=_joined(value.street),
        city=_joined(value.city),
        region=_joined(value.region),
        postal_code=_joined(value.code),
        country=_joined(value.country),
    )
    if "work" in types:
        found.setdefault("business_address", address)
    elif "home" in types:
        found.setdefault("home_address", address)
    else:
        found.setdefault("other_address", address)


def _birthday(text: str) -> dt.date:
    match = BIRTHDAY.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a date")
    year = NO_YEAR if match.group(1) == "--" else int(match.group(1))
    return dt.date(year, int(match.group(2)), int(match.group(3)))
