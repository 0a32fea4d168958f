"""Real-world mail nobody writes on purpose: Message-IDs reused by list software,
mailing-list posts, thousands of headers, NUL bytes, read receipts. Each
builder returns raw bytes as such mail arrives."""

from __future__ import annotations

from email.message import EmailMessage

from tests import messages

SHARED_MESSAGE_ID = "<reused-1@lists.example.org>"


def reusing_message_id(*, sender: str, subject: str, body: str, date: str = messages.FIXED_DATE) -> bytes:
    """A message with the Message-ID other, different messages carry too."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "alice@example.test"
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = SHARED_MESSAGE_ID
    message.set_content(body)
    return message.as_bytes()


def list_post(*, precedence: str = "bulk", subject: str = "[crm-users] Import question") -> bytes:
    """A person's post to a mailing list, as list software relays it."""
    return messages.simple(
        sender="Dana Poster <dana@example.org>",
        to="crm-users@lists.example.org",
        subject=subject,
        body="Has anyone imported 10,000 contacts at once?\n\nDana",
        headers={
            "Precedence": precedence,
            "List-Id": "CRM users <crm-users.lists.example.org>",
            "List-Unsubscribe": "<mailto:crm-users-leave@lists.example.org>",
            "Sender": "crm-users-bounces@lists.example.org",
        },
    )


def read_receipt(*, to: str = "alice@example.test") -> bytes:
    """A message disposition notification (RFC 8098): a robot's "it was read"."""
    return (
        b"From: carl@example.org\r\nTo: " + to.encode() + b"\r\n"
        b"Subject: Read: Your quote\r\nDate: " + messages.FIXED_DATE.encode() + b"\r\n"
        b"Message-ID: <mdn-1@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="R"\r\n\r\n'
        b"--R\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n"
        b"--R\r\nContent-Type: message/disposition-notification\r\n\r\n"
        b"Final-Recipient: rfc822; carl@example.org\r\n"
        b"Original-Message-ID: <quote-1@crm.example.test>\r\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n"
        b"--R--\r\n"
    )


def many_headers(count: int, *, subject: str = "Thousands of headers") -> bytes:
    """A message with ``count`` extra header fields (a mail loop or an attack)."""
    extra = b"".join(b"X-Trace-%d: hop %d\r\n" % (number, number) for number in range(count))
    return (
        b"From: loop@example.org\r\nTo: alice@example.test\r\nSubject: " + subject.encode() + b"\r\n"
        b"Date: " + messages.FIXED_DATE.encode() + b"\r\n"
        b"Message-ID: <many-headers-%d@example.org>\r\n" % count + extra + b"\r\nThe body.\r\n"
    )


def with_nul_bytes() -> bytes:
    """NUL bytes in the subject, a display name, the address's comment and the body:
    PostgreSQL's text refuses them."""
    return (
        b"From: Nul\x00Name <nul@example.org>\r\nTo: alice@example.test\r\n"
        b"Subject: Invoice\x00 7\r\nDate: " + messages.FIXED_DATE.encode() + b"\r\n"
        b"Message-ID: <nul-bytes@example.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nAmount\x00 due: 100 EUR\r\n"
    )
