"""Raw test messages, written by hand the way real mail arrives (and breaks)."""

from __future__ import annotations

import itertools
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid

_seq = itertools.count(1)
FIXED_DATE = "Tue, 24 Nov 2026 09:00:00 +0000"


def simple(
    *,
    sender: str = "customer@example.org",
    to: str = "alice@example.test",
    subject: str = "",
    body: str = "Hello",
    message_id: str | None = "",
    in_reply_to: str = "",
    references: str = "",
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, bytes]] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject or f"Test message {next(_seq)}"
    message["Date"] = FIXED_DATE
    if message_id is not None:
        message["Message-ID"] = message_id or make_msgid(domain="example.org")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, data in attachments or []:
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
    return message.as_bytes()


def without_message_id(*, body: str, subject: str = "Same subject") -> bytes:
    """Two of these with different bodies share From, Subject and Date."""
    return simple(subject=subject, body=body, message_id=None)


ISO_2022_JP = (
    b"From: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?= <jp@example.jp>\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: =?ISO-2022-JP?B?GyRCJDMkcyRLJEEkTxsoQg==?=\r\n"
    b"Date: " + FIXED_DATE.encode() + b"\r\n"
    b"Message-ID: <iso2022jp@example.jp>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=ISO-2022-JP\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n\r\n"
    b"\x1b$B$3$s$K$A$O\x1b(B\r\n"
)

MISSING_CHARSET = (
    b"From: nocharset@example.org\r\nTo: alice@example.test\r\nSubject: no charset\r\n"
    b"Date: " + FIXED_DATE.encode() + b"\r\nMessage-ID: <nocharset@example.org>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Caf\xc3\xa9 cr\xe8me\r\n"
)

BROKEN_BOUNDARY = (
    b"From: broken@example.org\r\nTo: alice@example.test\r\nSubject: broken boundary\r\n"
    b"Date: " + FIXED_DATE.encode() + b"\r\nMessage-ID: <broken-boundary@example.org>\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XYZ"\r\n\r\n'
    b"--ABC\r\nContent-Type: text/plain\r\n\r\nthe boundary never matches\r\n--ABC--\r\n"
)

EIGHT_BIT_HEADERS = (
    b"From: J\xc3\xbcrgen M\xc3\xbcller <juergen@example.de>\r\nTo: alice@example.test\r\n"
    b"Subject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n"
    b"Date: " + FIXED_DATE.encode() + b"\r\nMessage-ID: <eightbit@example.de>\r\n\r\nHallo\r\n"
)

NOT_A_MESSAGE = b"\x00\x01\x02 this is not an email at all \xff\xfe"
EMPTY = b"\r\n\r\n"


def now_header() -> str:
    from datetime import UTC, datetime

    return format_datetime(datetime.now(UTC))


def forwarded_as_attachment(*, forwarder: str, to: str, original: bytes) -> bytes:
    """What an Exchange / Outlook "forward as attachment" rule sends: From the
    user, a text part, and the original as a message/rfc822 part."""
    attached = BytesParser(policy=policy.default).parsebytes(original)
    message = EmailMessage()
    message["From"] = forwarder
    message["To"] = to
    message["Subject"] = f"FW: {attached['Subject']}"
    message["Date"] = FIXED_DATE
    message["Message-ID"] = make_msgid(domain="example.test")
    message.set_content("Forwarded by a rule.")
    message.add_attachment(attached)
    return message.as_bytes()
