"""Mail that machines write, by hand, the way mail servers and responders write it:
RFC 3464 delivery status notifications and out-of-office replies."""

from __future__ import annotations

import itertools

from tests.messages import FIXED_DATE

_seq = itertools.count(1)


def delivery_status_notification(
    *,
    to: str,
    original_message_id: str,
    failed_recipient: str,
    diagnostic: str = "550 5.1.1 The email account that you tried to reach does not exist",
    delivered_recipient: str = "",
    headers_only: bool = False,
) -> bytes:
    """A bounce as Postfix writes it: multipart/report; report-type=delivery-status,
    a human part, the delivery-status part and the original (or only its headers)."""
    number = next(_seq)
    delivered = (
        f"\r\nFinal-Recipient: rfc822; {delivered_recipient}\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
        if delivered_recipient
        else ""
    )
    original_type = "text/rfc822-headers" if headers_only else "message/rfc822"
    original_body = "" if headers_only else "\r\nThe original text.\r\n"
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {FIXED_DATE}\r\n"
        f"Message-ID: <dsn-{number}@mx.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-boundary"\r\n'
        "\r\n"
        "--dsn-boundary\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "\r\n"
        "--dsn-boundary\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n"
        f"Arrival-Date: {FIXED_DATE}\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {failed_recipient}\r\n"
        f"Original-Recipient: rfc822;{failed_recipient}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n"
        f"{delivered}"
        "\r\n"
        "--dsn-boundary\r\n"
        f"Content-Type: {original_type}\r\n"
        "\r\n"
        f"From: sender@example.test\r\nTo: {failed_recipient}\r\nSubject: The original\r\n"
        f"Message-ID: <{original_message_id}>\r\nDate: {FIXED_DATE}\r\n"
        f"{original_body}"
        "\r\n"
        "--dsn-boundary--\r\n"
    ).encode()


def out_of_office(*, sender: str, to: str, in_reply_to: str = "", subject: str = "Out of office") -> bytes:
    """An Exchange automatic reply: Auto-Submitted, X-Auto-Response-Suppress, In-Reply-To."""
    reply_headers = f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n" if in_reply_to else ""
    return (
        f'From: "Carl Customer" <{sender}>\r\n'
        f"To: {to}\r\n"
        f"Subject: Automatic reply: {subject}\r\n"
        f"Date: {FIXED_DATE}\r\n"
        f"Message-ID: <oof-{next(_seq)}@example.org>\r\n"
        f"{reply_headers}"
        "Auto-Submitted: auto-replied\r\n"
        "X-Auto-Response-Suppress: All\r\n"
        "\r\n"
        "I am out of the office until Monday.\r\n"
    ).encode()
