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


ADDRESS_KINDS = ("mailing", "home", "other")
ADDRESS_PARTS = ("street", "city", "state", "postal_code", "country")


class Contact(OwnedRecord):
    """A person, with the fields a mail server's contact holds. ``email`` is the first
    address and ``phone`` the business phone (the names older API clients know)."""

    first_name = models.CharField(max_length=100, blank=True)
    middle_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100)
    nickname = models.CharField(max_length=100, blank=True)
    account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts"
    )
    company_name = models.CharField(max_length=200, blank=True)
    job_title = models.CharField(max_length=100, blank=True)
    department = models.CharField(max_length=100, blank=True)
    email2 = models.EmailField("email address 2", blank=True)
    email3 = models.EmailField("email address 3", blank=True)
    phone = models.CharField("business phone", max_length=50, blank=True)
    mobile_phone = models.CharField(max_length=50, blank=True)
    home_phone = models.CharField(max_length=50, blank=True)
    business_fax = models.CharField(max_length=50, blank=True)
    # Mailing is the address every server has; home and other sync when the organization says so.
    mailing_street = models.CharField("mailing street", max_length=500, blank=True)
    mailing_city = models.CharField("mailing city", max_length=100, blank=True)
    mailing_state = models.CharField("mailing state/province", max_length=100, blank=True)
    mailing_postal_code = models.CharField("mailing postal code", max_length=40, blank=True)
    mailing_country = models.CharField("mailing country/region", max_length=100, blank=True)
    home_street = models.CharField("home street", max_length=500, blank=True)
    home_city = models.CharField("home city", max_length=100, blank=True)
    home_state = models.CharField("home state/province", max_length=100, blank=True)
    home_postal_code = models.CharField("home postal code", max_length=40, blank=True)
    home_country = models.CharField("home country/region", max_length=100, blank=True)
    other_street = models.CharField("other street", max_length=500, blank=True)
    other_city = models.CharField("other city", max_length=100, blank=True)
    other_state = models.CharField("other state/province", max_length=100, blank=True)
    other_postal_code = models.CharField("other postal code", max_length=40, blank=True)
    other_country = models.CharField("other country/region", max_length=100, blank=True)
    birthday = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [
            models.Index(Lower("email"), name="contact_email_lower"),
            models.Index(Lower("email2"), name="contact_email2_lower"),
            models.Index(Lower("email3"), name="contact_email3_lower"),
        ]

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
