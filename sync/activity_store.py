"""Writing a tracked incoming message as a CRM email activity with its parties,
attachments and raw message (called inside the incoming transaction)."""

from __future__ import annotations

from datetime import datetime

from django.core.files.base import ContentFile

from crm.models import ActivityParty, EmailActivity, EmailAttachment, OrganizationSettings, QueueItem
from mailboxes.models import Mailbox
from sync import tracking
from sync.parsing import Address, ParsedMessage


def create_incoming_activity(
    *,
    mailbox: Mailbox,
    parsed: ParsedMessage,
    raw: bytes,
    correlation: tracking.Correlation,
    server_received_on: datetime | None,
    organization: OrganizationSettings,
) -> EmailActivity:
    correlated = correlation.email
    email = EmailActivity.objects.create(
        direction=EmailActivity.Direction.INCOMING,
        status=EmailActivity.Status.RECEIVED,
        owner=mailbox.user or (mailbox.queue.owner if mailbox.queue else None),
        subject=parsed.subject,
        body_text=parsed.body_text,
        body_html=parsed.body_html,
        message_id=parsed.message_id,
        in_reply_to=" ".join(f"<{m}>" for m in parsed.in_reply_to),
        references=" ".join(f"<{m}>" for m in parsed.references),
        message_identity=parsed.identity,
        tracking_token=tracking.tracking_token_in(parsed.subject, organization),
        conversation_id=correlated.conversation_id if correlated else "",
        regarding_account=correlated.regarding_account if correlated else None,
        regarding_contact=correlated.regarding_contact if correlated else None,
        regarding_lead=correlated.regarding_lead if correlated else None,
        correlation_method=correlation.method,
        correlated_email=correlated,
        received_on=server_received_on or parsed.date,
        raw_message=ContentFile(raw, name="message.eml"),
    )
    _add_parties(email, parsed, organization)
    _add_attachments(email, parsed, organization)
    if mailbox.queue_id:
        QueueItem.objects.get_or_create(queue_id=mailbox.queue_id, email=email)
    return email


def _add_parties(email: EmailActivity, parsed: ParsedMessage, organization: OrganizationSettings) -> None:
    roles: list[tuple[str, list[Address]]] = [
        (ActivityParty.Role.FROM, [parsed.sender] if parsed.sender else []),
        (ActivityParty.Role.TO, parsed.to),
        (ActivityParty.Role.CC, parsed.cc),
    ]
    parties = []
    for role, addresses in roles:
        for address in addresses:
            party = ActivityParty(
                email=email, role=role, address=address.address[:320], display_name=address.name[:300]
            )
            resolved = tracking.resolve(address.address, organization)
            if resolved is not None:
                setattr(party, resolved[0], resolved[1])
            parties.append(party)
    ActivityParty.objects.bulk_create(parties)


def _add_attachments(email: EmailActivity, parsed: ParsedMessage, organization: OrganizationSettings) -> None:
    limit = organization.max_attachment_size_kb * 1024
    for attachment in parsed.attachments:
        record = EmailAttachment(
            email=email,
            filename=attachment.filename,
            content_type=attachment.content_type,
            content_id=attachment.content_id,
            size=len(attachment.data),
        )
        if len(attachment.data) > limit:
            limit_kb = organization.max_attachment_size_kb
            record.skipped_reason = f"Larger than the organization's maximum attachment size ({limit_kb} KB)."
        else:
            record.content.save("attachment", ContentFile(attachment.data), save=False)
        record.save()
