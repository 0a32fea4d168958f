"""Write-side functions for CRM records."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.models import Account, ActivityParty, Contact, CrmUser, EmailActivity, Lead, Queue


@transaction.atomic
def email_create(
    *,
    owner: CrmUser | None,
    subject: str = "",
    body_text: str = "",
    body_html: str = "",
    status: str = EmailActivity.Status.DRAFT,
    sender_queue: Queue | None = None,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    regarding_account: Account | None = None,
    regarding_contact: Contact | None = None,
    regarding_lead: Lead | None = None,
    reply_to: EmailActivity | None = None,
) -> EmailActivity:
    """A new outgoing email, as a draft or pending send. The sender is the
    queue when one is given, else the owner; the engine fixes Message-ID and
    tracking token when it claims the email for sending."""
    sender_address = sender_queue.email if sender_queue is not None else (owner.email if owner else "")
    if not sender_address:
        field = "sender_queue" if sender_queue is not None else "owner"
        raise ValidationError({field: ["The sender has no email address to send from."]})
    if reply_to is not None and not (regarding_account or regarding_contact or regarding_lead):
        regarding_account = reply_to.regarding_account
        regarding_contact = reply_to.regarding_contact
        regarding_lead = reply_to.regarding_lead
    email = EmailActivity(
        direction=EmailActivity.Direction.OUTGOING,
        status=status,
        owner=owner,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        regarding_account=regarding_account,
        regarding_contact=regarding_contact,
        regarding_lead=regarding_lead,
        correlated_email=reply_to,
        conversation_id=reply_to.conversation_id if reply_to else "",
    )
    email.full_clean()
    email.save()
    sender = ActivityParty(email=email, role=ActivityParty.Role.FROM, address=sender_address)
    if sender_queue is not None:
        sender.queue = sender_queue
    else:
        sender.user = owner
    parties = [sender]
    for role, addresses in (
        (ActivityParty.Role.TO, to),
        (ActivityParty.Role.CC, cc),
        (ActivityParty.Role.BCC, bcc),
    ):
        parties += [ActivityParty(email=email, role=role, address=address) for address in addresses]
    ActivityParty.objects.bulk_create(parties)
    return email
