"""Where an incoming message was seen (``Source``) and the receipt it leaves:
what both the one-message pipeline (``sync.incoming``) and the batch
(``sync.batch_store``) write, so its fields are filled in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm.models import EmailActivity
from mailboxes.models import Mailbox
from sync import parsing
from sync.models import Receipt

# A message carrying this header was sent by serversync's own test & enable round trip.
TEST_MESSAGE_HEADER = "x-serversync-test"


@dataclass(frozen=True)
class Source:
    """Where a message was seen."""

    mailbox: Mailbox
    folder: str
    server_id: str
    server_received_on: datetime | None = None


def build_receipt(
    source: Source, parsed: parsing.ParsedMessage, outcome: str, *, email: EmailActivity | None = None
) -> Receipt:
    """The receipt of a processed message, not yet saved."""
    return Receipt(
        mailbox=source.mailbox,
        folder=source.folder,
        server_id=source.server_id,
        message_identity=parsed.identity,
        content_fingerprint=parsed.fingerprint,
        message_id=parsed.message_id[:998],
        subject=parsed.subject,
        sender=parsed.sender.address[:320] if parsed.sender else "",
        outcome=outcome,
        email=email,
        server_received_on=source.server_received_on,
    )
