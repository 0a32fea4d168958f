"""Which identity an incoming message is stored under.

A message's identity is its normalized Message-ID (``sync.parsing.identity_for``),
and copies of one message share it: the same message in two folders, delivered
twice, or received by two mailboxes becomes one activity. List software and
broken mailers reuse Message-IDs for different messages, though; a message
whose content (``ParsedMessage.fingerprint``: sender, date, subject, body)
differs from what the CRM already holds under its Message-ID is a different
message and gets an identity of its own, the Message-ID's plus its fingerprint,
so it becomes its own activity and its own receipt.
"""

from __future__ import annotations

import hashlib

from crm.models import EmailActivity
from sync.models import Receipt
from sync.parsing import ParsedMessage

# Enough of the fingerprint to tell a handful of messages sharing one Message-ID apart.
VARIANT_DIGITS = 16
# What receipts' (and activities') message_identity column holds.
IDENTITY_MAX_LENGTH: int = Receipt._meta.get_field("message_identity").max_length  # type: ignore[assignment]
_BY_MESSAGE_ID = ("mid:", "midhash:")


def distinct_identity(parsed: ParsedMessage) -> str:
    """``parsed.identity``, or its variant when another message holds that
    Message-ID with other content. Records without a fingerprint (email the CRM
    sent, messages stored before fingerprints) never make a message a variant."""
    if not can_vary(parsed):
        return parsed.identity
    base, other = parsed.identity, ["", parsed.fingerprint]
    receipts = Receipt.objects.filter(message_identity=base).exclude(content_fingerprint__in=other)
    emails = EmailActivity.objects.filter(message_identity=base, copy_owner__isnull=True).exclude(
        content_fingerprint__in=other
    )
    # One round trip for both (each side an index lookup on the identity); no LIMIT in
    # the parts, which SQLite (make run) refuses in a compound statement.
    held_by_other = receipts.values("pk").union(emails.values("pk"), all=True).exists()
    return variant_of(parsed) if held_by_other else base


def can_vary(parsed: ParsedMessage) -> bool:
    """Only a message known by its Message-ID, with a fingerprint, can be a variant."""
    base = parsed.identity
    return base.startswith(_BY_MESSAGE_ID) and bool(parsed.fingerprint) and "#" not in base


def holds_other_content(fingerprint: str, parsed: ParsedMessage) -> bool:
    """Whether a record of ``parsed``'s identity with ``fingerprint`` is another message."""
    return fingerprint not in ("", parsed.fingerprint)


def variant_of(parsed: ParsedMessage) -> str:
    """The identity of a message that shares its Message-ID with other content."""
    base = parsed.identity
    if len(base) + 1 + VARIANT_DIGITS > IDENTITY_MAX_LENGTH:
        base = "midhash:" + hashlib.sha256(base.encode()).hexdigest()  # a very long Message-ID
    return f"{base}#{parsed.fingerprint[:VARIANT_DIGITS]}"
