"""Who mail belongs to: CRM users and queues."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from crm.choices import TrackIncomingEmail
from crm.models.base import TimestampedModel
from crm.time_zones import validate_time_zone

EXTERNAL_ID_HELP = "The GUID an older system (Dynamics, the Email Router) knew this record by."


class CrmUserQuerySet(models.QuerySet["CrmUser"]):
    def visible_to(self, crm_user: CrmUser) -> CrmUserQuerySet:
        return self.filter(pk=crm_user.pk)


class QueueQuerySet(models.QuerySet["Queue"]):
    def visible_to(self, crm_user: CrmUser) -> QueueQuerySet:
        return self.filter(owner=crm_user)


class CrmUser(TimestampedModel):
    """A CRM user ("systemuser"): owns records and, usually, one mailbox."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="crm_user",
        help_text="The login this CRM user signs in with.",
    )
    full_name = models.CharField(max_length=200)
    email = models.EmailField("primary email", blank=True)
    is_active = models.BooleanField("active", default=True)
    external_id = models.CharField(max_length=64, blank=True, help_text=EXTERNAL_ID_HELP)
    track_incoming_email = models.CharField(
        "track incoming email",
        max_length=20,
        choices=TrackIncomingEmail.choices,
        default=TrackIncomingEmail.RESPONSES_TO_CRM,
    )
    auto_create_contacts = models.BooleanField(
        "automatically create contacts for unknown senders", default=False
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="The IANA time zone the user works in (Europe/Berlin): a calendar's all-day dates and "
        "times without a zone are read in it.",
    )

    objects = CrmUserQuerySet.as_manager()

    class Meta:
        verbose_name = "CRM user"
        ordering = ["full_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], condition=~Q(external_id=""), name="crm_user_external_id_unique"
            ),
        ]
        indexes = [models.Index(Lower("email"), name="crm_user_email_lower")]

    def __str__(self) -> str:
        return self.full_name


class Queue(TimestampedModel):
    name = models.CharField(max_length=200)
    email = models.EmailField("incoming email", blank=True)
    owner = models.ForeignKey(
        CrmUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="owned_queues"
    )
    external_id = models.CharField(max_length=64, blank=True, help_text=EXTERNAL_ID_HELP)
    convert_incoming_email = models.CharField(
        "convert incoming email to activities",
        max_length=20,
        choices=TrackIncomingEmail.choices,
        default=TrackIncomingEmail.ALL,
    )
    is_active = models.BooleanField("active", default=True)

    objects = QueueQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], condition=~Q(external_id=""), name="queue_external_id_unique"
            ),
        ]
        indexes = [models.Index(Lower("email"), name="queue_email_lower")]

    def __str__(self) -> str:
        return self.name
