"""Which incoming mail becomes an activity, what it correlates to, and who its
parties are. The business rules of tracking live here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Model

from crm.choices import TrackIncomingEmail
from crm.models import Account, Contact, CrmUser, EmailActivity, Lead, OrganizationSettings, Queue
from mailboxes.models import Mailbox
from sync.models import ReceiptOutcome
from sync.parsing import ParsedMessage, identity_for

# Resolution order when an address belongs to several kinds of record.
PARTY_MODELS: tuple[tuple[str, type[Model]], ...] = (
    ("user", CrmUser),
    ("queue", Queue),
    ("contact", Contact),
    ("account", Account),
    ("lead", Lead),
)
CUSTOMER_KINDS = {"contact", "account", "lead"}


@dataclass(frozen=True)
class Correlation:
    email: EmailActivity | None
    method: str = EmailActivity.CorrelationMethod.NONE


@dataclass(frozen=True)
class Decision:
    track: bool
    outcome: str


def tracking_option(mailbox: Mailbox) -> str:
    """The owner's "track incoming email" option, or a queue's "convert incoming email"."""
    if mailbox.user_id:
        return mailbox.user.track_incoming_email  # type: ignore[union-attr]
    if mailbox.queue_id:
        return mailbox.queue.convert_incoming_email  # type: ignore[union-attr]
    return TrackIncomingEmail.ALL


def correlate(parsed: ParsedMessage, organization: OrganizationSettings) -> Correlation:
    """In-Reply-To and References against CRM Message-IDs, then the tracking token."""
    if organization.correlation_enabled:
        for message_id in [*reversed(parsed.in_reply_to), *reversed(parsed.references)]:
            found = EmailActivity.objects.filter(
                message_identity=identity_for(message_id, b""), copy_owner__isnull=True
            ).first()
            if found is not None:
                return Correlation(found, EmailActivity.CorrelationMethod.IN_REPLY_TO)
    token = tracking_token_in(parsed.subject, organization)
    if token:
        found = EmailActivity.objects.filter(tracking_token=token).order_by("id").first()
        if found is not None:
            return Correlation(found, EmailActivity.CorrelationMethod.TRACKING_TOKEN)
    return Correlation(None)


def tracking_token_in(subject: str, organization: OrganizationSettings) -> str:
    if not organization.tracking_token_enabled:
        return ""
    match = re.search(rf"{re.escape(organization.tracking_token_prefix)}:\d+", subject)
    return match.group(0) if match else ""


def resolve(address: str, organization: OrganizationSettings) -> tuple[str, Model] | None:
    """The CRM record an address belongs to. Several records of the first kind
    that matches: the oldest, unless the organization leaves such parties unresolved."""
    for kind, model in PARTY_MODELS:
        matches = list(
            model._default_manager.filter(email__iexact=address, is_active=True).order_by("pk")[:2]
        )
        if len(matches) > 1 and organization.set_unresolved_when_multiple_matches:
            return None
        if matches:
            return kind, matches[0]
    return None


def decide(option: str, correlation: Correlation, sender: tuple[str, Model] | None) -> Decision:
    """Track or not, per the owner's option. A reply to CRM email is tracked under
    every option but None, as the options add to tracking responses."""
    if option == TrackIncomingEmail.NONE:
        return Decision(False, ReceiptOutcome.NOT_TRACKED_OPTION)
    if option == TrackIncomingEmail.ALL or correlation.email is not None:
        return Decision(True, ReceiptOutcome.TRACKED)
    if option == TrackIncomingEmail.RESPONSES_TO_CRM:
        return Decision(False, ReceiptOutcome.NO_CORRELATION)
    if option == TrackIncomingEmail.FROM_CRM_RECORDS and sender is not None and sender[0] in CUSTOMER_KINDS:
        return Decision(True, ReceiptOutcome.TRACKED)
    if option == TrackIncomingEmail.FROM_EMAIL_ENABLED and sender is not None:
        return Decision(True, ReceiptOutcome.TRACKED)
    return Decision(False, ReceiptOutcome.SENDER_NOT_CRM)
