"""The MIME message Graph's sendMail is given: its recipients are the envelope.

SMTP delivers to the envelope (RCPT TO) whatever the headers say; Graph's
sendMail with MIME has no envelope and delivers to the To, Cc and Bcc headers.
serversync writes Bcc recipients into the envelope only (sync/outgoing.py), so
here the envelope recipients the headers do not name are added as a Bcc header
(Exchange leaves Bcc out of what the recipients get, and keeps it on the Sent
Items copy, as for any message with Bcc). A header recipient the envelope does
not name would be sent to without being asked for: the message is refused
rather than sent to more people than the engine chose; so is an address Graph
would refuse, before anything is sent.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from sync.errors import MessageError

# An address Exchange can resolve: a local part, "@", a domain with a dot; no spaces or brackets.
ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+")
RECIPIENT_HEADERS = ("to", "cc", "bcc")


def for_send_mail(raw: bytes, rcpt_to: list[str]) -> bytes:
    """``raw`` with its recipient headers made to name exactly ``rcpt_to`` (Bcc added)."""
    invalid = [address for address in rcpt_to if not ADDRESS.fullmatch(address)]
    if invalid:
        raise MessageError(
            f"Exchange Online would refuse the whole message: the recipient(s) {', '.join(invalid)} are not "
            "valid email addresses (Graph sends a message to all its recipients or to none). Correct the "
            "addresses and send it again.",
            code="recipients_refused",
        )
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    named = {address.lower() for _, address in getaddresses(_values(headers, RECIPIENT_HEADERS)) if address}
    wanted = {address.lower() for address in rcpt_to}
    unasked = sorted(named - wanted)
    if unasked:
        raise MessageError(
            f"The message's headers name recipient(s) the send does not include ({', '.join(unasked)}); "
            "Graph would deliver to them as well. Correct the message's recipients and send it again.",
            code="recipients_mismatch",
        )
    missing = [address for address in _unique(rcpt_to) if address.lower() not in named]
    if not missing:
        return raw
    if headers.get_all("Bcc"):
        raise MessageError(
            f"The message has a Bcc header that leaves out {', '.join(missing)}, whom the send includes. "
            "Correct the message's recipients and send it again.",
            code="recipients_mismatch",
        )
    head = raw.split(b"\n\n", 1)[0]
    newline = b"\r\n" if b"\r\n" in head or b"\n" not in head else b"\n"
    return b"Bcc: " + ", ".join(missing).encode() + newline + raw


def _values(headers: Message, names: tuple[str, ...]) -> list[str]:
    return [str(value) for name in names for value in headers.get_all(name) or []]


def _unique(addresses: list[str]) -> list[str]:
    """The addresses once each, in order, whatever their case."""
    first: dict[str, str] = {}
    for address in addresses:
        first.setdefault(address.lower(), address)
    return list(first.values())
