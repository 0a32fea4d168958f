"""Raw message bytes -> the facts the engine needs, with the standard library's
``email`` package. Nothing here touches the database.

The message is parsed under the ``compat32`` policy, which keeps headers as
plain strings: ``policy.default`` turns every Content-Type and
Content-Disposition of every part into a header object through its full
RFC 5322 parser as it parses, most of a message's parse time. The few headers
the engine reads (sender, recipients, subject, date, ids) are then decoded
with ``policy.default``'s own header classes, and bodies with its content
manager, so the facts are those the modern API gives
(tests/sync/test_parsing.py holds them side by side)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.contentmanager import raw_data_manager
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import partial
from typing import cast

from django.conf import settings

from sync import large_parts
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
_LINE_END = re.compile(rb"\r\n?|\n")
# PostgreSQL text cannot hold NUL; stored fields get the replacement character instead.
_NUL = "\x00"
_REPLACEMENT = "\ufffd"
# Bodies are hashed in pieces so a large message is not copied whole.
_HASH_CHUNK = 1 << 20
# Headers policy.default reads with a structured class (addresses, dates, MIME
# parameters); every other name it reads as unstructured text, which in ASCII
# without an encoded word decodes to itself, unfolded: no parser needed.
_STRUCTURED = frozenset(policy.default.header_factory.registry)  # type: ignore[attr-defined]
# One RFC 2047 encoded word, whole.
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[QqBb]\?[^?\s]*\?=")
# An address header with nothing but atoms, dots, <>, @, commas and white space (in ASCII).
_PLAIN_ADDRESSES = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@<>,\-\s]*")


class _Message(EmailMessage):
    """EmailMessage on compat32's plain-string headers. ``get_body`` and
    ``iter_attachments`` read them through string methods, all but
    ``is_attachment``, which asks a header object; this asks the string."""

    def is_attachment(self) -> bool:
        return self.get_content_disposition() == "attachment"


_PARSING = policy.compat32.clone(message_factory=_Message)


@dataclass(frozen=True)
class Address:
    address: str
    name: str = ""


@dataclass(frozen=True)
class Attachment:
    """An attachment, decoded each time its content is read (``data``), so one
    over the organization's size limit is never decoded at all, and no decoded
    copy lives as long as the parsed message."""

    filename: str
    content_type: str
    content_id: str
    size: int
    read: Callable[[], bytes] = field(repr=False, compare=False)

    @property
    def data(self) -> bytes:
        return self.read()


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
    # Each header's first value as received (unfolded, not decoded), by lower-case name.
    headers: dict[str, str]
    body_text: str = ""
    body_html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    # What tells two messages sharing a Message-ID apart (see ``content_fingerprint``).
    fingerprint: str = ""

    @property
    def addresses(self) -> list[Address]:
        """Everyone on the message: the sender, then To and Cc."""
        return [*([self.sender] if self.sender else []), *self.to, *self.cc]

    def header(self, name: str) -> str:
        """A header's first value, decoded (RFC 2047); '' when absent."""
        raw = self.headers.get(name.lower())
        return "" if raw is None else _decoded(name, raw)


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
    digest = hashlib.sha256()
    for chunk in _identity_chunks(raw):
        digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _identity_chunks(raw: bytes) -> Iterator[bytes]:
    """What the fallback identity hashes, piece by piece (a large body is never
    copied whole): the header lines less delivery headers, then the body, with
    every line ending as LF and trailing line ends dropped, since LMTP delivery
    and IMAP APPEND of one message differ only in those."""
    split = _header_end(raw)
    head, body = raw[:split], memoryview(raw)[split:]
    kept: list[bytes] = []
    skipping = False
    for line in _LINE_END.split(head):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
        skipping = name in DELIVERY_HEADERS
        if not skipping and line:
            kept.append(line)
    yield b"\n".join(kept) + b"\n\n"
    yield from _normalized_body(body)


def _normalized_body(body: memoryview) -> Iterator[bytes]:
    """The body in pieces with CRLF / CR as LF and the trailing line ends cut,
    never holding a second copy of a large body."""
    end = len(body)
    while end and bytes(body[end - 1 : end]) in (b"\r", b"\n"):
        end -= 1
    start, carried_cr = 0, False
    while start < end:
        piece = bytes(body[start : min(start + _HASH_CHUNK, end)])
        start += len(piece)
        if carried_cr and piece.startswith(b"\n"):
            piece = piece[1:]  # the LF of a CRLF split across two pieces
        carried_cr = piece.endswith(b"\r")
        yield _LINE_END.sub(b"\n", piece)


def _header_end(raw: bytes) -> int:
    """Where the body starts: after the first empty line (or the end)."""
    match = re.search(rb"\r?\n\r?\n", raw)
    return match.end() if match else len(raw)


def check_header_limits(raw: bytes, *, max_count: int, max_bytes: int) -> None:
    """Refuse a header block no real mailer writes (thousands of fields, megabytes)
    before the parser spends time on it: MessageError, so it is quarantined."""
    split = _header_end(raw)
    if split > max_bytes:
        raise MessageError(
            f"The message's header block is {split:,} bytes, over the limit of {max_bytes:,}.",
            code="headers_too_large",
        )
    head = raw[:split]
    # Field lines start with a non-blank; continuation lines with a space or tab.
    count = len(re.findall(rb"(?:^|\n)[^ \t\r\n]", head))
    if count > max_count:
        raise MessageError(
            f"The message has {count:,} header fields, over the limit of {max_count:,}.",
            code="too_many_headers",
        )


def parse(raw: bytes) -> ParsedMessage:
    """Parse a message; a message the engine cannot make sense of raises MessageError."""
    if not raw or raw.isspace():  # not raw.strip(), which would copy a large message whole
        raise MessageError("The message is empty.", code="empty_message")
    check_header_limits(
        raw, max_count=settings.SYNC_MAX_HEADER_COUNT, max_bytes=settings.SYNC_MAX_HEADER_BYTES
    )
    try:
        skeleton, held = large_parts.without_large_bodies(raw, threshold=large_parts.LARGE_BODY_BYTES)
        message = cast(_Message, BytesParser(policy=_PARSING).parsebytes(skeleton))  # its message_factory
        return _facts(message, raw, held)
    except MessageError:
        raise
    except Exception as exc:
        # Any parser failure is this message's problem, not the mailbox's.
        raise MessageError(
            f"The message cannot be parsed: {type(exc).__name__}: {exc}", code="unparsable"
        ) from exc


def _facts(message: _Message, raw: bytes, held: list[large_parts.HeldBody]) -> ParsedMessage:
    if message.defects and not message.keys():
        raise MessageError("The message has no headers.", code="no_headers")
    fields = _fields(message)
    first = {name: values[0] for name, values in fields.items()}

    def decoded(name: str) -> str:
        return _decoded(name, first[name]) if name in first else ""

    message_id = clean(normalize_message_id(decoded("message-id")))
    body_text, body_html, attachments = _content(message, raw, held)
    sender = _first(_addresses(fields, "from"))
    subject = clean(decoded("subject").replace("\r", " ").replace("\n", " ").strip()[:800])
    date = _date(decoded("date"))
    return ParsedMessage(
        identity=identity_for(message_id, raw),
        message_id=message_id,
        subject=subject,
        sender=sender,
        to=_addresses(fields, "to"),
        cc=_addresses(fields, "cc"),
        date=date,
        in_reply_to=message_ids(decoded("in-reply-to")),
        references=message_ids(decoded("references")),
        headers={name: clean(value) for name, value in first.items()},
        body_text=clean(body_text),
        body_html=clean(body_html),
        attachments=attachments,
        fingerprint=content_fingerprint(sender, date, subject, body_text or body_html),
    )


def content_fingerprint(sender: Address | None, date: datetime | None, subject: str, body: str) -> str:
    """A hash of what makes a message this message: sender, date, subject and
    body text (whitespace-insensitive). Copies of one message (two folders, two
    deliveries, another transfer encoding) share it; different messages that
    reuse one Message-ID do not."""
    digest = hashlib.sha256()
    for part in (
        sender.address.lower() if sender else "",
        date.astimezone(UTC).isoformat() if date else "",
        " ".join(subject.split()),
        " ".join(body.split()),
    ):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


def clean(value: str) -> str:
    """A text PostgreSQL can store: NUL replaced (the raw message keeps it)."""
    return value.replace(_NUL, _REPLACEMENT) if _NUL in value else value


def _fields(message: Message) -> dict[str, list[str]]:
    """Every header's raw values by lower-case name, in one pass: looking each
    name up on the message scans every header again (quadratic in their count)."""
    fields: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        fields.setdefault(name.lower(), []).append(str(value))
    return fields


def _decoded(name: str, raw_value: str) -> str:
    if name.lower() not in _STRUCTURED and raw_value.isascii() and "=?" not in raw_value:
        return raw_value.replace("\r", "").replace("\n", "")  # as header_fetch_parse unfolds
    try:
        return str(policy.default.header_fetch_parse(name, raw_value))
    except Exception:
        # A header the policy cannot decode is read raw.
        return _unfolded(raw_value)


def _unfolded(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def _addresses(fields: dict[str, list[str]], name: str) -> list[Address]:
    found = []
    for display, address in _pairs(name, fields.get(name, [])):
        address = clean(address.strip())
        if "@" in address:
            found.append(Address(address=address, name=clean(display.strip())))
    return found


def _pairs(name: str, values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) of an address header's values. A plain list of
    ``Name <address>`` in ASCII, its names in well-formed encoded words or none,
    reads the same split first and decoded after as through policy.default's
    address parser, at a fraction of the cost; anything else (quotes,
    comments, groups, 8-bit bytes, a broken encoded word) takes that parser."""
    if all(_PLAIN_ADDRESSES.fullmatch(value) for value in values):
        try:
            return [(_decoded_words(display), address) for display, address in getaddresses(values)]
        except (LookupError, UnicodeError, ValueError):
            pass
    return getaddresses([_decoded(name, value) for value in values])


def _decoded_words(text: str) -> str:
    """A text of encoded words (RFC 2047) and plain words, decoded; ValueError
    where an encoded word is glued to other text, LookupError or UnicodeError
    where one cannot be decoded."""
    if "=?" not in text:
        return text
    if any("=?" in word and not _ENCODED_WORD.fullmatch(word) for word in text.split()):
        raise ValueError(f"not a well-formed encoded word: {text!r}")
    return str(make_header(decode_header(text)))


def _first(addresses: list[Address]) -> Address | None:
    return addresses[0] if addresses else None


def _date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _content(
    message: _Message, raw: bytes, held: list[large_parts.HeldBody]
) -> tuple[str, str, list[Attachment]]:
    text = _body(message, "plain")
    html = _body(message, "html")
    attachments = []
    for part in message.iter_attachments() if message.is_multipart() else []:
        index = large_parts.held_index(part.get_payload())
        body = held[index] if index is not None and index < len(held) else None
        attachments.append(
            Attachment(
                filename=clean(_filename(part))[:255],
                content_type=part.get_content_type()[:255],
                content_id=clean(str(part.get("content-id", "") or "").strip("<>"))[:255],
                size=body.decoded_size(raw) if body else _decoded_size(part),
                read=partial(body.decode, raw) if body else partial(_decoded_payload, part),
            )
        )
    return text, html, attachments


def _filename(part: Message) -> str:
    """The attachment's file name, its RFC 2231 or RFC 2047 encoding undone
    (mailers write encoded words in quoted parameters, and policy.default reads them)."""
    name = part.get_filename() or ""
    try:
        return _decoded_words(name)
    except (LookupError, UnicodeError, ValueError):
        return name


def _decoded_size(part: Message) -> int:
    """The attachment's size once decoded, without decoding it when it is base64
    (the common case): three bytes for every four characters, less the padding."""
    payload = part.get_payload()
    if not isinstance(payload, str) or part.get("content-transfer-encoding", "").lower() != "base64":
        return len(_decoded_payload(part))
    letters = len(payload) - sum(payload.count(c) for c in " \t\r\n")
    padding = len(payload.rstrip()) - len(payload.rstrip().rstrip("="))
    return max(0, letters * 3 // 4 - padding)


def _body(message: _Message, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return ""
    try:
        # policy.default's content manager (compat32 has none): the payload decoded with its charset.
        return str(raw_data_manager.get_content(part))
    except (LookupError, UnicodeError, AssertionError):
        # Unknown or missing charset: keep the text readable rather than lose the message.
        return _decoded_payload(part).decode("utf-8", errors="replace")


def _decoded_payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""
