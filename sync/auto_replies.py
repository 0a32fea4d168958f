"""Mail written by machines in answer to other mail: auto-replies (out of office,
auto-responders, list robots) and delivery reports (bounces, RFC 3464).

Such mail never creates contacts, never correlates as a reply and never
triggers anything, so two robots cannot keep each other busy. Nothing here
touches the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser, Parser

from sync.parsing import ParsedMessage, normalize_message_id

# RFC 3834's signal is Auto-Submitted; these are the well-known others. Precedence
# bulk and list are what mailing lists put on people's posts, so they are not among
# them: a list post follows the owner's tracking option like any other mail.
AUTO_PRECEDENCE = frozenset({"auto_reply", "junk"})
AUTO_RESPONDER_HEADERS = ("x-autoreply", "x-autorespond", "x-auto-response-suppress")
# Delivery reports (RFC 3464) and read receipts (message disposition notifications, RFC 8098).
AUTOMATIC_REPORTS = frozenset({"delivery-status", "disposition-notification"})
# Subjects of delivery failures; only ever trusted together with a structural sign.
BOUNCE_SUBJECT = re.compile(
    r"undeliverable|undelivered mail|delivery status notification|mail delivery (failed|failure)"
    r"|returned mail|delivery failure|failure notice",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FailedRecipient:
    address: str
    diagnostic: str


@dataclass(frozen=True)
class DeliveryReport:
    """What a bounce says: which message (its Message-ID) failed for whom."""

    original_message_id: str
    failed: list[FailedRecipient] = field(default_factory=list)


def is_automatic(parsed: ParsedMessage) -> bool:
    """True for any machine-written answer: auto-reply, auto-responder, bounce or read receipt."""
    return _has_auto_headers(parsed) or _empty_envelope(parsed) or _report_type(parsed) in AUTOMATIC_REPORTS


def delivery_report(parsed: ParsedMessage, raw: bytes) -> DeliveryReport | None:
    """The delivery report in a bounce, or None when the message is not one.

    A bounce is an RFC 3464 ``multipart/report; report-type=delivery-status``,
    or a message with a bounce subject that also has a structural sign (an
    empty envelope sender or automatic-reply headers) and carries the original.
    """
    if not (_is_report(parsed) or (BOUNCE_SUBJECT.search(parsed.subject) and is_automatic(parsed))):
        return None
    message = BytesParser(policy=policy.default).parsebytes(raw)
    original = ""
    failed: list[FailedRecipient] = []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            failed += _failed_recipients(part)
        elif content_type in ("message/rfc822", "text/rfc822-headers") and not original:
            original = _original_message_id(part)
    return DeliveryReport(original, failed)


def _has_auto_headers(parsed: ParsedMessage) -> bool:
    auto_submitted = parsed.header("auto-submitted").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    if parsed.header("precedence").strip().lower() in AUTO_PRECEDENCE:
        return True
    return any(parsed.header(name).strip() for name in AUTO_RESPONDER_HEADERS)


def _empty_envelope(parsed: ParsedMessage) -> bool:
    # The empty envelope sender (Return-Path: <>) is how bounces and auto-replies
    # must be sent (RFC 5321 4.5.5); "return-path" absent says nothing.
    return "return-path" in parsed.headers and parsed.header("return-path").strip() in ("", "<>")


def _is_report(parsed: ParsedMessage) -> bool:
    return _report_type(parsed) == "delivery-status"


def _report_type(parsed: ParsedMessage) -> str:
    """The report-type of a ``multipart/report`` (RFC 6522), '' for other mail."""
    raw = parsed.headers.get("content-type", "")
    if "report" not in raw.lower() and "=?" not in raw:
        return ""  # not a report, without decoding the header (every message asks this)
    content_type = parsed.header("content-type").lower().replace(" ", "").replace('"', "")
    if not content_type.startswith("multipart/report"):
        return ""
    match = re.search(r"report-type=([a-z0-9-]+)", content_type)
    return match.group(1) if match else ""


def _failed_recipients(part: Message) -> list[FailedRecipient]:
    blocks = part.get_payload()
    failed = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, Message):
            continue
        if str(block.get("action", "")).strip().lower() != "failed":
            continue
        recipient = str(block.get("final-recipient") or block.get("original-recipient") or "")
        address = recipient.partition(";")[2].strip() or recipient.strip()
        diagnostic = str(block.get("diagnostic-code", "")).strip()
        _, _, diagnostic_text = diagnostic.partition(";")
        status = str(block.get("status", "")).strip()
        failed.append(
            FailedRecipient(address.strip("<>").lower(), (diagnostic_text.strip() or diagnostic or status))
        )
    return failed


def _original_message_id(part: Message) -> str:
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        return normalize_message_id(str(inner.get("message-id", ""))) if isinstance(inner, Message) else ""
    data = part.get_payload(decode=True)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(part.get_payload())
    headers = Parser(policy=policy.default).parsestr(text, headersonly=True)
    return normalize_message_id(str(headers.get("message-id", "")))
