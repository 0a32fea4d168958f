"""Forward mailboxes: mail that users' server rules forward is processed as if
the forwarding user's own mailbox had received it.

What is attributable, and why:

- "Forward as attachment" (the Exchange / Outlook rule): the message carries the
  original as a ``message/rfc822`` part and its From is the user whose rule
  forwarded it. Exactly one attached original is expected; several are
  quarantined rather than half processed.
- A redirect, where the message itself is the original: attributable only when
  ``Resent-From`` (RFC 5322; the most recent block is on top) or
  ``X-Forwarded-For`` (the forwarding account first, as Gmail writes it) names
  the forwarder. The envelope is not used: Delivered-To / X-Original-To name the
  forward mailbox itself, and Return-Path names the original sender, an SRS
  address, or - only where the server is configured so - the forwarder, which
  cannot be told apart from the user writing to the forward mailbox herself.

The forwarder must be a CRM user's mailbox whose incoming method is Forward
Mailbox, approved where the organization requires it, of an active user. The
From of a forward is trusted as the mail server delivered it: rejecting mail
that spoofs the organization's own addresses is the server's job (SPF, DKIM,
DMARC), as it is for Dynamics 365's forward mailbox. Everything else is
quarantined with the reason in words, and can be reprocessed once fixed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser

from django.db import transaction

from crm.choices import IncomingMethod
from crm.models import OrganizationSettings
from mailboxes.models import ApprovalStatus, Mailbox
from sync import one_message, parsing
from sync.errors import MessageError
from sync.models import Receipt, ReceiptOutcome
from sync.receipts import TEST_MESSAGE_HEADER, Source

_ADDRESS = re.compile(r"[^\s<>,;\"']+@[^\s<>,;\"']+")


@dataclass(frozen=True)
class Forwarded:
    """The original message and the address of the user who forwarded it."""

    forwarder: str
    raw: bytes


def store_forwarded(*, source: Source, raw: bytes, advance: Callable[[], None]) -> Receipt:
    """Process one message of a forward mailbox for the user who forwarded it,
    with the forward mailbox's cursor advance in the same transaction; what
    cannot be attributed is quarantined with the reason."""
    try:
        with transaction.atomic():
            receipt = forwarded_receipt(source=source, raw=raw)
            advance()
            return receipt
    except MessageError as error:
        return one_message.quarantine(source=source, raw=raw, error=error, advance=advance)


def forwarded_receipt(*, source: Source, raw: bytes) -> Receipt:
    """The forward mailbox's receipt for ``raw``, after the original went through
    the forwarding user's pipeline. Raises MessageError when it cannot be attributed."""
    wrapper = parsing.parse(raw)
    known = Receipt.objects.filter(mailbox=source.mailbox, message_identity=wrapper.identity).first()
    if known is not None:
        return one_message.seen_again(known, source)  # seen before: relink, as the normal pipeline does
    if wrapper.header(TEST_MESSAGE_HEADER):
        # Test & enable's own round trip reaches the forward mailbox too.
        return one_message.new_receipt(source, wrapper, ReceiptOutcome.TEST_MESSAGE)
    forwarded = unwrap(wrapper, raw)
    user_mailbox = forwarding_mailbox(forwarded.forwarder)
    original = _parse_original(forwarded.raw)
    user_source = Source(
        user_mailbox,
        f"{source.mailbox.email_address}/{source.folder}"[:500],
        source.server_id,
        source.server_received_on,
    )
    user_receipt = one_message.receipt_for(user_source, original, forwarded.raw)
    outcome = ReceiptOutcome.FORWARDED if user_receipt.email_id else user_receipt.outcome
    return one_message.new_receipt(source, wrapper, outcome, email=user_receipt.email)


def unwrap(wrapper: parsing.ParsedMessage, raw: bytes) -> Forwarded:
    """The original and its forwarder: an attached message, else a redirect that
    names who resent it. Raises MessageError when neither is there."""
    attached = _attached_originals(raw)
    if len(attached) > 1:
        raise MessageError(
            f"The message carries {len(attached)} attached messages; a forwarding rule attaches one, "
            "so it is not clear which to process.",
            code="forward_several_originals",
        )
    if attached:
        if wrapper.sender is None:
            raise MessageError(
                "The forwarded message has no From address, so the forwarding user is unknown.",
                code="forward_no_sender",
            )
        return Forwarded(wrapper.sender.address, attached[0])
    resender = _first_address(wrapper.header("resent-from") or wrapper.header("x-forwarded-for"))
    if resender:
        return Forwarded(resender, raw)
    raise MessageError(
        "The message has no attached original (message/rfc822) and no Resent-From or X-Forwarded-For "
        "header naming who forwarded it; forwarding rules must forward as an attachment.",
        code="forward_no_original",
    )


def forwarding_mailbox(address: str) -> Mailbox:
    """The user mailbox that forwards to a forward mailbox from ``address``;
    MessageError saying why when there is none."""
    mailbox = (
        Mailbox.objects.select_related("user")
        .filter(email_address__iexact=address, user__isnull=False)
        .first()
    )
    if mailbox is None:
        reason = f"It was forwarded by {address}, which is not the address of a CRM user's mailbox."
        raise MessageError(reason, code="forward_unknown_user")
    reason = _not_forwarding_reason(address, mailbox)
    if reason:
        raise MessageError(reason, code="forward_user_not_forwarding")
    return mailbox


def _not_forwarding_reason(address: str, mailbox: Mailbox) -> str:
    if mailbox.incoming_method != IncomingMethod.FORWARD_MAILBOX:
        method = mailbox.get_incoming_method_display()
        return f"It was forwarded by {address}, whose mailbox receives with {method}, not Forward Mailbox."
    if mailbox.user is not None and not mailbox.user.is_active:
        return f"It was forwarded by {address}, whose CRM user is deactivated."
    approval_required = OrganizationSettings.load().process_email_only_for_approved_users
    if approval_required and mailbox.approval_status != ApprovalStatus.APPROVED:
        return (
            f"It was forwarded by {address}, whose email address is not approved, and the organization "
            "processes email only for approved users."
        )
    return ""


def _attached_originals(raw: bytes) -> list[bytes]:
    # compat32 writes the attached message back as it was received; the default
    # policy would refold and re-encode its headers.
    top = BytesParser(policy=policy.compat32).parsebytes(raw)
    if not top.is_multipart():
        return []
    originals = []
    for part in _parts(top):
        rfc822 = part.get_content_type() == "message/rfc822" and part.is_multipart()
        attached = part.get_payload(0) if rfc822 else None
        if isinstance(attached, Message):
            originals.append(attached.as_bytes())
    return originals


def _parts(top: Message) -> list[Message]:
    payload = top.get_payload()
    return [part for part in payload if isinstance(part, Message)] if isinstance(payload, list) else []


def _parse_original(raw: bytes) -> parsing.ParsedMessage:
    try:
        return parsing.parse(raw)
    except MessageError as error:
        raise MessageError(f"The attached original cannot be read: {error}", code=error.code) from error


def _first_address(value: str) -> str:
    match = _ADDRESS.search(value)
    return match.group(0) if match else ""
