"""Raw message bytes -> the facts the engine needs, with the standard library's
``email`` package (policy.default). Nothing here touches the database."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from sync.errors import MessageError

# Headers a server adds on delivery: two deliveries of one message differ only
# in these, so the content hash of a message without Message-ID leaves them out.
DELIVERY_HEADERS = frozenset(
    {
        "received",
        "return-path",
        "delivered-to",
        "x-original-to",
        "envelope-to",
        "x-envelope-from",
        "x-envelope-to",
        "authentication-results",
        "arc-authentication-results",
        "arc-message-signature",
        "arc-seal",
        "received-spf",
        "x-spam-status",
        "x-spam-score",
        "x-spam-flag",
        "x-spam-level",
        "x-spam-checker-version",
        "x-virus-scanned",
        "status",
        "x-status",
        "x-keywords",
        "x-uid",
        "content-length",
        "lines",
    }
)
MAX_IDENTITY_LENGTH = 500
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True)
class Address:
    address: str
    name: str = ""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content_id: str
    data: bytes


@dataclass
class ParsedMessage:
    identity: str
    message_id: str
    subject: str
    sender: Address | None
    to: list[Address]
    cc: list[Address]
    date: datetime | None
    in_reply_to: list[str]
    references: list[str]
    headers: dict[str, str]
    body_text: str = ""
    body_html: str = ""
    attachments: list[Attachment] = field(default_factory=list)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def normalize_message_id(value: str) -> str:
    """``<Local@Domain>`` -> ``Local@Domain`` with the domain lower-cased (RFC 5322
    makes only the domain case-insensitive); '' when there is no usable id."""
    match = _MESSAGE_ID.search(value or "")
    candidate = match.group(1) if match else (value or "").strip().strip("<>")
    if not candidate or any(c.isspace() for c in candidate):
        return ""
    local, at, domain = candidate.rpartition("@")
    return f"{local}@{domain.lower()}" if at else candidate


def message_ids(value: str) -> list[str]:
    """All Message-IDs in an In-Reply-To or References header, normalized."""
    return [normalize_message_id(f"<{m}>") for m in _MESSAGE_ID.findall(value or "")]


def identity_for(message_id: str, raw: bytes) -> str:
    """The organization-wide identity: the normalized Message-ID, or a hash of
    the whole message less its delivery headers (never of a few headers, which
    different messages can share)."""
    if message_id:
        if len(message_id) + 4 <= MAX_IDENTITY_LENGTH:
            return f"mid:{message_id}"
        return "midhash:" + hashlib.sha256(message_id.encode()).hexdigest()
    return "sha256:" + hashlib.sha256(_without_delivery_headers(raw)).hexdigest()


def _without_delivery_headers(raw: bytes) -> bytes:
    normalized = raw.replace(b"\r\n", b"\n")
    head, sep, body = normalized.partition(b"\n\n")
    kept: list[bytes] = []
    skipping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
        skipping = name in DELIVERY_HEADERS
        if not skipping:
            kept.append(line)
    return b"\n".join(kept) + sep + body


def parse(raw: bytes) -> ParsedMessage:
    """Parse a message; a message the engine cannot make sense of raises MessageError."""
    if not raw.strip():
        raise MessageError("The message is empty.", code="empty_message")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        return _facts(message, raw)
    except MessageError:
        raise
    except Exception as exc:
        # Any parser failure is this message's problem, not the mailbox's.
        raise MessageError(
            f"The message cannot be parsed: {type(exc).__name__}: {exc}", code="unparsable"
        ) from exc


def _facts(message: EmailMessage, raw: bytes) -> ParsedMessage:
    if message.defects and not message.keys():
        raise MessageError("The message has no headers.", code="no_headers")
    message_id = normalize_message_id(_header(message, "message-id"))
    body_text, body_html, attachments = _content(message)
    return ParsedMessage(
        identity=identity_for(message_id, raw),
        message_id=message_id,
        subject=_header(message, "subject").replace("\r", " ").replace("\n", " ").strip()[:800],
        sender=_first(_addresses(message, "from")),
        to=_addresses(message, "to"),
        cc=_addresses(message, "cc"),
        date=_date(_header(message, "date")),
        in_reply_to=message_ids(_header(message, "in-reply-to")),
        references=message_ids(_header(message, "references")),
        headers={key.lower(): _header(message, key) for key in message},
        body_text=body_text,
        body_html=body_html,
        attachments=attachments,
    )


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:
        # A header the policy cannot decode is read raw.
        value = None
        for key, raw_value in message.raw_items():
            if key.lower() == name.lower():
                value = raw_value
                break
    return str(value) if value is not None else ""


def _addresses(message: EmailMessage, name: str) -> list[Address]:
    values = [str(v) for k, v in _raw_items(message) if k.lower() == name]
    found = []
    for display, address in getaddresses(values):
        address = address.strip()
        if "@" in address:
            found.append(Address(address=address, name=display.strip()))
    return found


def _raw_items(message: EmailMessage) -> list[tuple[str, str]]:
    items = []
    for key in set(message.keys()):
        try:
            items += [(key, str(v)) for v in message.get_all(key, [])]
        except Exception:
            # Undecodable: keep the raw value rather than lose the address.
            items += [(k, str(v)) for k, v in message.raw_items() if k == key]
    return items


def _first(addresses: list[Address]) -> Address | None:
    return addresses[0] if addresses else None


def _date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _content(message: EmailMessage) -> tuple[str, str, list[Attachment]]:
    text = _body(message, "plain")
    html = _body(message, "html")
    attachments = []
    for part in message.iter_attachments() if message.is_multipart() else []:
        data = _decoded_payload(part)
        attachments.append(
            Attachment(
                filename=str(part.get_filename() or "")[:255],
                content_type=part.get_content_type()[:255],
                content_id=str(part.get("content-id", "") or "").strip("<>")[:255],
                data=data,
            )
        )
    return text, html, attachments


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError, AssertionError):
        # Unknown or missing charset: keep the text readable rather than lose the message.
        return _decoded_payload(part).decode("utf-8", errors="replace")


def _decoded_payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""
