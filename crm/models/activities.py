"""Email activities, their parties and attachments, and queue items."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.models import Q

from crm.models.base import TimestampedModel, at_most_one
from crm.models.people import CrmUser, Queue
from crm.models.records import Account, Contact, Lead


def _raw_message_path(instance: Any, filename: str) -> str:
    return f"emails/raw/{uuid.uuid4().hex}.eml"


def _attachment_path(instance: Any, filename: str) -> str:
    return f"emails/attachments/{uuid.uuid4().hex}"


class EmailActivityQuerySet(models.QuerySet["EmailActivity"]):
    def visible_to(self, crm_user: CrmUser) -> EmailActivityQuerySet:
        return self.filter(owner=crm_user)


class EmailActivity(TimestampedModel):
    """An email tracked in the CRM, incoming or outgoing."""

    class Direction(models.TextChoices):
        INCOMING = "incoming", "Incoming"
        OUTGOING = "outgoing", "Outgoing"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PENDING_SEND = "pending_send", "Pending Send"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        RECEIVED = "received", "Received"
        CANCELED = "canceled", "Canceled"
        OUTCOME_UNKNOWN = "outcome_unknown", "Outcome unknown"

    class CorrelationMethod(models.TextChoices):
        NONE = "none", "None"
        SKIPPED = "skipped", "Skipped"
        IN_REPLY_TO = "in_reply_to", "In-Reply-To"
        TRACKING_TOKEN = "tracking_token", "Tracking token"
        CONVERSATION_INDEX = "conversation_index", "Conversation index"
        SMART_MATCHING = "smart_matching", "Smart matching"

    direction = models.CharField(max_length=10, choices=Direction.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    owner = models.ForeignKey(
        CrmUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="owned_emails"
    )
    subject = models.CharField(max_length=800, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True, help_text="As received; sanitized before any page shows it.")

    message_id = models.CharField("Message-ID", max_length=998, blank=True, db_index=True)
    in_reply_to = models.TextField("In-Reply-To", blank=True)
    references = models.TextField("References", blank=True)
    # The organization-wide identity of the message: its normalized Message-ID,
    # or a content hash where it has none. NULL (not "") for drafts never sent,
    # so the unique constraints pass over them.
    message_identity = models.CharField(max_length=512, null=True, blank=True, editable=False)  # noqa: DJ001
    # A hash of sender, date, subject and body (sync.parsing.content_fingerprint): a later
    # message reusing this Message-ID with other content gets an identity of its own.
    # Empty for email the CRM sent and for email stored before fingerprints.
    content_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    copy_owner = models.ForeignKey(
        CrmUser,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Set only when the organization tracks email between two users as two "
        "activities: the user whose copy this is.",
    )
    tracking_token = models.CharField(max_length=50, blank=True, db_index=True)
    conversation_id = models.CharField(max_length=255, blank=True, db_index=True)
    conversation_index = models.CharField(
        max_length=500, blank=True, help_text="The Thread-Index header, as Outlook and Exchange write it."
    )

    regarding_account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails"
    )
    regarding_contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails"
    )
    regarding_lead = models.ForeignKey(
        Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails"
    )
    correlation_method = models.CharField(
        max_length=20, choices=CorrelationMethod.choices, default=CorrelationMethod.NONE
    )
    correlated_email = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="correlated_replies"
    )

    received_on = models.DateTimeField(
        null=True, blank=True, help_text="When the mail server received the message."
    )
    sent_on = models.DateTimeField(null=True, blank=True)
    raw_message = models.FileField(upload_to=_raw_message_path, blank=True)
    failure_reason = models.TextField(blank=True)

    objects = EmailActivityQuerySet.as_manager()

    class Meta:
        verbose_name = "email activity"
        verbose_name_plural = "email activities"
        ordering = ["-created_on", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message_identity"],
                condition=Q(copy_owner__isnull=True),
                name="email_identity_unique",
            ),
            models.UniqueConstraint(
                fields=["message_identity", "copy_owner"],
                condition=Q(copy_owner__isnull=False),
                name="email_identity_copy_owner_unique",
            ),
            at_most_one(
                ["regarding_account", "regarding_contact", "regarding_lead"],
                name="email_regarding_at_most_one",
            ),
        ]
        indexes = [models.Index(fields=["status", "modified_on"], name="email_status_modified")]

    def __str__(self) -> str:
        return self.subject or f"(no subject) #{self.pk}"

    @property
    def regarding(self) -> Account | Contact | Lead | None:
        return self.regarding_account or self.regarding_contact or self.regarding_lead


PARTY_RECORD_FIELDS = ["user", "queue", "contact", "account", "lead"]


class ActivityParty(models.Model):
    """One address on an email, resolved to a CRM record or left unresolved."""

    class Role(models.TextChoices):
        FROM = "from", "From"
        TO = "to", "To"
        CC = "cc", "Cc"
        BCC = "bcc", "Bcc"

    email = models.ForeignKey(EmailActivity, on_delete=models.CASCADE, related_name="parties")
    role = models.CharField(max_length=4, choices=Role.choices)
    address = models.EmailField(max_length=320)
    display_name = models.CharField(max_length=300, blank=True)
    user = models.ForeignKey(CrmUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    queue = models.ForeignKey(Queue, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    account = models.ForeignKey(Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    lead = models.ForeignKey(Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    delivery_failed_on = models.DateTimeField(
        null=True, blank=True, help_text="When a delivery report said mail to this recipient failed."
    )
    delivery_failure = models.TextField(blank=True, help_text="What the delivery report said.")

    class Meta:
        verbose_name = "activity party"
        verbose_name_plural = "activity parties"
        constraints = [at_most_one(PARTY_RECORD_FIELDS, name="activity_party_one_record")]
        indexes = [models.Index(fields=["address"], name="activity_party_address")]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.address}"

    @property
    def record(self) -> CrmUser | Queue | Contact | Account | Lead | None:
        return self.user or self.queue or self.contact or self.account or self.lead

    @property
    def is_resolved(self) -> bool:
        return any(getattr(self, f"{name}_id") for name in PARTY_RECORD_FIELDS)


class EmailAttachment(models.Model):
    email = models.ForeignKey(EmailActivity, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    content_id = models.CharField(max_length=255, blank=True, help_text="For inline images.")
    size = models.PositiveBigIntegerField(help_text="Size in bytes.")
    content = models.FileField(
        upload_to=_attachment_path,
        blank=True,
        help_text="Empty when the attachment was over the organization's size limit.",
    )
    skipped_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.filename or f"attachment #{self.pk}"


class QueueItem(TimestampedModel):
    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="items")
    email = models.ForeignKey(EmailActivity, on_delete=models.CASCADE, related_name="queue_items")
    worked_by = models.ForeignKey(CrmUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-created_on", "-id"]
        constraints = [models.UniqueConstraint(fields=["queue", "email"], name="queue_item_unique")]

    def __str__(self) -> str:
        return f"{self.queue}: {self.email}"
