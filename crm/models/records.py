"""The email-enabled customer records mail is tracked against."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.functions import Lower

from crm.models.base import TimestampedModel
from crm.models.people import CrmUser


class OwnedQuerySet(models.QuerySet[Any]):
    def visible_to(self, crm_user: CrmUser) -> OwnedQuerySet:
        """What a non-administrator may see: the records they own."""
        return self.filter(owner=crm_user)


class OwnedRecord(TimestampedModel):
    owner = models.ForeignKey(CrmUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    email = models.EmailField(blank=True)
    is_active = models.BooleanField("active", default=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        abstract = True


class Account(OwnedRecord):
    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=50, blank=True)
    website = models.URLField(blank=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(Lower("email"), name="account_email_lower")]

    def __str__(self) -> str:
        return self.name


class Contact(OwnedRecord):
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100)
    account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts"
    )
    job_title = models.CharField(max_length=100, blank=True)
    phone = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [models.Index(Lower("email"), name="contact_email_lower")]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Lead(OwnedRecord):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        QUALIFIED = "qualified", "Qualified"
        DISQUALIFIED = "disqualified", "Disqualified"

    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100)
    company_name = models.CharField(max_length=200, blank=True)
    topic = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [models.Index(Lower("email"), name="lead_email_lower")]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
