"""Writing a tracked incoming message as a CRM email activity with its parties,
attachments and raw message (called inside the incoming transaction)."""

from __future__ import annotations

from dataclasses import dataclass
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
from sync.models import EmailHash
from sync.parsing import Address, ParsedMessage, identity_for


@dataclass
class NewActivity:
    """A tracked incoming message as the rows it becomes, not yet saved: the
    activity, its parties, attachments and fingerprints, and its queue item."""

    email: EmailActivity
    parties: list[ActivityParty]
    attachments: list[EmailAttachment]
    hashes: list[EmailHash]
    queue_item: QueueItem | None

    def save(self) -> EmailActivity:
        """One message's rows (a batch saves many at once: ``save_all``)."""
        self.email.save()
        save_all([self])
        return self.email


def save_all(activities: list[NewActivity]) -> None:
    """The rows that hang off activities already saved (or given their keys), one
    INSERT per table for all of them."""
    ActivityParty.objects.bulk_create([p for a in activities for p in a.parties])
    EmailAttachment.objects.bulk_create([f for a in activities for f in a.attachments])
    EmailHash.objects.bulk_create([h for a in activities for h in a.hashes])
    # The queue may hold the email already (linked from another of its mailboxes).
    QueueItem.objects.bulk_create([a.queue_item for a in activities if a.queue_item], ignore_conflicts=True)


def remember_new_sender(*, mailbox: Mailbox, parsed: ParsedMessage, parties: tracking.Parties) -> None:
    """The owner's option: an unknown sender of tracked mail becomes a contact,
    the party its message is stored with."""
    if mailbox.user is not None and parsed.sender is not None and tracking.creates_contact(mailbox, parsed):
        contact = create_contact_for_sender(sender=parsed.sender, owner=mailbox.user)
        parties.remember(parsed.sender.address, ("contact", contact.pk))


def build_incoming_activity(
    *,
    mailbox: Mailbox,
    parsed: ParsedMessage,
    raw: bytes,
    correlation: tracking.Correlation,
    server_received_on: datetime | None,
    parties: tracking.Parties,
    copy_owner: CrmUser | None = None,
) -> NewActivity:
    """The rows a tracked message becomes; the raw message and attachments are
    written to storage when the rows are saved."""
    organization = parties.organization
    correlated = correlation.email
    email = EmailActivity(
        direction=EmailActivity.Direction.INCOMING,
        status=EmailActivity.Status.RECEIVED,
        owner_id=_owner_id(mailbox, copy_owner),
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
        # By key: the correlated email's records are not loaded to copy them.
        regarding_account_id=correlated.regarding_account_id if correlated else None,
        regarding_contact_id=correlated.regarding_contact_id if correlated else None,
        regarding_lead_id=correlated.regarding_lead_id if correlated else None,
        correlation_method=correlation.method,
        correlated_email=correlated,
        received_on=server_received_on or parsed.date,
        raw_message=ContentFile(raw, name="message.eml"),
    )
    return NewActivity(
        email=email,
        parties=_parties(email, parsed, parties),
        attachments=_attachments(email, parsed, organization),
        hashes=tracking.hashes_of(email=email, parsed=parsed, organization=organization),
        queue_item=QueueItem(queue_id=mailbox.queue_id, email=email) if mailbox.queue_id else None,
    )


def _owner_id(mailbox: Mailbox, copy_owner: CrmUser | None) -> int | None:
    if copy_owner is not None:
        return copy_owner.pk
    if mailbox.user_id is not None:
        return mailbox.user_id
    return mailbox.queue.owner_id if mailbox.queue is not None else None


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


def _parties(email: EmailActivity, parsed: ParsedMessage, parties: tracking.Parties) -> list[ActivityParty]:
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
    return records


def _attachments(
    email: EmailActivity, parsed: ParsedMessage, organization: OrganizationSettings
) -> list[EmailAttachment]:
    limit = organization.max_attachment_size_kb * 1024
    records = []
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
            # Written to storage when the row is saved.
            record.content = ContentFile(attachment.data, name="attachment")
        records.append(record)
    return records
