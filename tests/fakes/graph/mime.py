"""Graph's JSON view of a message held as MIME, and MIME from Graph's JSON (sendMail
and create-message with a JSON body), as Exchange Online derives one from the other."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr, parsedate_to_datetime
from typing import Any

from tests.fakes.graph.mailboxes import Mailbox
from tests.fakes.graph.mailboxes import Message as StoredMessage

# PidTagMessageSize: the size Exchange reports for an item ("Integer 0x0E08" when asked
# for as a single-value extended property; Graph answers with the id as "Integer 0xe08").
MESSAGE_SIZE = "integer 0xe08"
# Properties Graph leaves out unless $select names them.
NOT_BY_DEFAULT = ("internetMessageHeaders", "uniqueBody")


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def headers(raw: bytes) -> Message:
    """The header fields as plain strings: the default policy's parser raises on some
    malformed addresses ("nobody@") that Exchange reads and refuses politely."""
    return BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)


def recipients(value: str | None) -> list[dict[str, Any]]:
    return [
        {"emailAddress": {"name": name or address, "address": address}}
        for name, address in getaddresses([value or ""])
        if address
    ]


def all_recipients(raw: bytes) -> list[str]:
    """Every address in To, Cc and Bcc; one that does not parse comes as written (to be refused)."""
    fields = headers(raw)
    found = []
    for value in fields.get_all("To", []) + fields.get_all("Cc", []) + fields.get_all("Bcc", []):
        for token in _ADDRESS_LIST.findall(str(value)):
            if token.strip():
                found.append(parseaddr(token)[1] or token.strip())
    return found


# One address of a list: commas inside quotes or angle brackets do not end it.
_ADDRESS_LIST = re.compile(r'(?:"[^"]*"|<[^>]*>|[^,"<])+')


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_json(mailbox: Mailbox, message: StoredMessage, base_url: str) -> dict[str, Any]:
    """Every property Graph can answer for this message (``select`` trims it)."""
    parsed = headers(message.raw)
    body = parse(message.raw).get_body(preferencelist=("html", "plain"))
    content = body.get_content() if body is not None else ""
    html = body is not None and body.get_content_subtype() == "html"
    sender = recipients(parsed.get("Sender") or parsed.get("From"))
    sent = _sent(parsed, message)
    return {
        "@odata.etag": f'W/"{message.change_key}"',
        "id": message.id,
        "createdDateTime": iso(message.created),
        "lastModifiedDateTime": iso(message.created),
        "changeKey": message.change_key,
        "categories": [],
        "receivedDateTime": iso(message.received),
        "sentDateTime": iso(sent),
        "hasAttachments": _has_attachments(message.raw),
        "internetMessageId": str(parsed.get("Message-ID", "")).strip(),
        "subject": str(parsed.get("Subject", "")),
        "bodyPreview": " ".join(content.split())[:255] if not html else "",
        "importance": _importance(parsed),
        "parentFolderId": message.folder_id,
        "conversationId": _conversation_id(parsed),
        "conversationIndex": base64.b64encode(hashlib.sha256(message.id.encode()).digest()[:22]).decode(),
        "isDeliveryReceiptRequested": "Return-Receipt-To" in parsed,
        "isReadReceiptRequested": "Disposition-Notification-To" in parsed,
        "isRead": message.is_read,
        "isDraft": message.is_draft,
        "webLink": f"https://outlook.office365.com/owa/?ItemID={message.id}&exvsurl=1&viewmodel=ReadMessageItem",
        "inferenceClassification": "focused",
        "body": {"contentType": "html" if html else "text", "content": content},
        "uniqueBody": {"contentType": "html" if html else "text", "content": content},
        "sender": sender[0] if sender else None,
        "from": next(iter(recipients(parsed.get("From"))), None),
        "toRecipients": recipients(parsed.get("To")),
        "ccRecipients": recipients(parsed.get("Cc")),
        "bccRecipients": recipients(parsed.get("Bcc")),
        "replyTo": recipients(parsed.get("Reply-To")),
        "flag": {"flagStatus": "notFlagged"},
        "internetMessageHeaders": [{"name": name, "value": str(value)} for name, value in parsed.items()],
    }


def select(full: dict[str, Any], selected: list[str] | None) -> dict[str, Any]:
    if selected is None:
        return {k: v for k, v in full.items() if k not in NOT_BY_DEFAULT}
    keep = {"@odata.etag", "id", *selected}
    return {k: v for k, v in full.items() if k in keep}


def extended_properties(message: StoredMessage, wanted: list[str]) -> list[dict[str, str]]:
    """The single-value extended properties asked for that Exchange holds (the size, here)."""
    return [
        {"id": "Integer 0xe08", "value": str(len(message.raw))} for w in wanted if _normal(w) == MESSAGE_SIZE
    ]


def _normal(property_id: str) -> str:
    kind, _, tag = property_id.strip().partition(" ")
    try:
        return f"{kind.lower()} {int(tag, 16):#x}"
    except ValueError:
        return property_id.lower()


def _has_attachments(raw: bytes) -> bool:
    parsed = parse(raw)
    return parsed.is_multipart() and any(True for _ in parsed.iter_attachments())


def _sent(parsed: Message, message: StoredMessage) -> datetime:
    try:
        return parsedate_to_datetime(str(parsed["Date"]))
    except (TypeError, ValueError):
        return message.received


def _importance(parsed: Message) -> str:
    value = str(parsed.get("Importance", parsed.get("X-Priority", ""))).lower()
    if value.startswith(("high", "1", "2")):
        return "high"
    if value.startswith(("low", "4", "5")):
        return "low"
    return "normal"


def _conversation_id(parsed: Message) -> str:
    topic = str(parsed.get("Thread-Topic", parsed.get("Subject", "")))
    return "AAQk" + base64.b64encode(hashlib.sha256(topic.encode()).digest()).decode().replace("/", "-")


def from_json(message: dict[str, Any], sender: str) -> EmailMessage:
    """The MIME Exchange makes of a message given as JSON (sendMail, create message)."""
    mime = EmailMessage()
    author = (message.get("from") or {}).get("emailAddress") or {"address": sender}
    mime["From"] = _address(author)
    for header, key in (
        ("To", "toRecipients"),
        ("Cc", "ccRecipients"),
        ("Bcc", "bccRecipients"),
        ("Reply-To", "replyTo"),
    ):
        addresses = [_address(r.get("emailAddress") or {}) for r in message.get(key) or []]
        if addresses:
            mime[header] = ", ".join(addresses)
    mime["Subject"] = message.get("subject") or ""
    mime["Date"] = format_datetime(datetime.now(UTC))
    mime["Message-ID"] = message.get("internetMessageId") or make_msgid(domain="contoso.onmicrosoft.com")
    for header in message.get("internetMessageHeaders") or []:
        mime[header["name"]] = header["value"]
    body = message.get("body") or {}
    subtype = "html" if str(body.get("contentType", "text")).lower() == "html" else "plain"
    mime.set_content(body.get("content") or "", subtype=subtype)
    return mime


def _address(email_address: dict[str, Any]) -> str:
    name, address = email_address.get("name"), email_address.get("address", "")
    return f'"{name}" <{address}>' if name and name != address else str(address)


def as_bytes(mime: EmailMessage) -> bytes:
    return mime.as_bytes(policy=policy.SMTP)


def without_bcc(raw: bytes) -> bytes:
    """The message as delivered: Bcc is for the sender's copy only."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = raw.partition(b"\n\n")
    lines = head.splitlines(keepends=True)
    kept, skipping = [], False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            kept.append(line)
    return b"".join(kept) + separator + body
