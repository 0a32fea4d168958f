"""Writing a tracked incoming message as a CRM email activity with its parties,
attachments and raw message (called inside the incoming transaction)."""

from __future__ import annotations

from datetime import datetime

from django.core.files.base import ContentFile

from crm.models import (
    ActivityParty,
    Contact,
    CrmUser,
    EmailActivity,
    EmailAttachment,
    OrganizationSettings,
    QueueItem,
)
from mailboxes.models import Mailbox
from sync import auto_replies, clock, parsing, tracking
from sync.parsing import Address, ParsedMessage, identity_for


def create_incoming_activity(
    *,
    mailbox: Mailbox,
    parsed: ParsedMessage,
    raw: bytes,
    correlation: tracking.Correlation,
    server_received_on: datetime | None,
    parties: tracking.Parties,
    copy_owner: CrmUser | None = None,
) -> EmailActivity:
    organization = parties.organization
    correlated = correlation.email
    if mailbox.user is not None and parsed.sender is not None and tracking.creates_contact(mailbox, parsed):
        contact = create_contact_for_sender(sender=parsed.sender, owner=mailbox.user)
        parties.remember(parsed.sender.address, ("contact", contact.pk))
    email = EmailActivity.objects.create(
        direction=EmailActivity.Direction.INCOMING,
        status=EmailActivity.Status.RECEIVED,
        owner=copy_owner or mailbox.user or (mailbox.queue.owner if mailbox.queue else None),
        copy_owner=copy_owner,
        subject=parsed.subject,
        body_text=parsed.body_text,
        body_html=parsed.body_html,
        message_id=parsed.message_id,
        in_reply_to=" ".join(f"<{m}>" for m in parsed.in_reply_to),
        references=" ".join(f"<{m}>" for m in parsed.references),
        message_identity=parsed.identity,
        content_fingerprint=parsed.fingerprint,
        tracking_token=tracking.tracking_token_in(parsed.subject, organization),
        conversation_id=tracking.conversation_of(parsed, correlated),
        conversation_index=parsed.header("thread-index").strip()[:500],
        regarding_account=correlated.regarding_account if correlated else None,
        regarding_contact=correlated.regarding_contact if correlated else None,
        regarding_lead=correlated.regarding_lead if correlated else None,
        correlation_method=correlation.method,
        correlated_email=correlated,
        received_on=server_received_on or parsed.date,
        raw_message=ContentFile(raw, name="message.eml"),
    )
    _add_parties(email, parsed, parties)
    _add_attachments(email, parsed, organization)
    tracking.remember_hashes(email=email, parsed=parsed, organization=organization)
    if mailbox.queue_id:
        QueueItem.objects.get_or_create(queue_id=mailbox.queue_id, email=email)
    return email


def create_contact_for_sender(*, sender: Address, owner: CrmUser) -> Contact:
    """A contact for an unknown sender: name from the display name, owned by the user."""
    address = sender.address
    first, _, last = sender.name.strip().strip('"').rpartition(" ")
    return Contact.objects.create(
        first_name=first.strip()[:100],
        last_name=(last.strip() or address.partition("@")[0])[:100],
        email=address[:254],
        owner=owner,
    )


def remember_sent(
    *, email: EmailActivity, sent: parsing.ParsedMessage, organization: OrganizationSettings
) -> None:
    """What correlation needs of an email serversync sends, from the facts of the
    message as it was written (``sent``), so the bytes just sent are not parsed
    again: its smart-matching fingerprints, stored, and its conversation, set on
    ``email`` for the caller to save with the rest of the sent state (one UPDATE)."""
    email.conversation_id = tracking.conversation_of(sent, email.correlated_email)
    email.conversation_index = sent.header("thread-index").strip()[:500]
    tracking.remember_hashes(email=email, parsed=sent, organization=organization)


def record_delivery_failure(*, report: auto_replies.DeliveryReport) -> EmailActivity | None:
    """Mark the failed recipients of a CRM email a bounce reports on; the email,
    or None when the bounce is about mail the CRM does not know."""
    if not report.original_message_id:
        return None
    original = EmailActivity.objects.filter(
        message_identity=identity_for(report.original_message_id, b""), copy_owner__isnull=True
    ).first()
    if original is None:
        return None
    now = clock.now()
    for failure in report.failed:
        original.parties.filter(
            address__iexact=failure.address,
            role__in=[ActivityParty.Role.TO, ActivityParty.Role.CC, ActivityParty.Role.BCC],
        ).update(delivery_failed_on=now, delivery_failure=failure.diagnostic[:2000])
    return original


def _add_parties(email: EmailActivity, parsed: ParsedMessage, parties: tracking.Parties) -> None:
    roles: list[tuple[str, list[Address]]] = [
        (ActivityParty.Role.FROM, [parsed.sender] if parsed.sender else []),
        (ActivityParty.Role.TO, parsed.to),
        (ActivityParty.Role.CC, parsed.cc),
    ]
    parties.lookup(address.address for address in parsed.addresses)
    records = []
    for role, addresses in roles:
        for address in addresses:
            party = ActivityParty(
                email=email, role=role, address=address.address[:320], display_name=address.name[:300]
            )
            resolved = parties.of(address.address)
            if resolved is not None:
                kind, pk = resolved
                setattr(party, f"{kind}_id", pk)
            records.append(party)
    ActivityParty.objects.bulk_create(records)


def _add_attachments(email: EmailActivity, parsed: ParsedMessage, organization: OrganizationSettings) -> None:
    limit = organization.max_attachment_size_kb * 1024
    for attachment in parsed.attachments:
        record = EmailAttachment(
            email=email,
            filename=attachment.filename,
            content_type=attachment.content_type,
            content_id=attachment.content_id,
            size=attachment.size,
        )
        if attachment.size > limit:
            limit_kb = organization.max_attachment_size_kb
            record.skipped_reason = f"Larger than the organization's maximum attachment size ({limit_kb} KB)."
        else:
            record.content.save("attachment", ContentFile(attachment.data), save=False)
        record.save()
