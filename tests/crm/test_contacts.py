"""Contacts hold what a mail server's contact holds."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from crm.models import Contact
from tests import factories

pytestmark = pytest.mark.django_db


def test_a_contact_keeps_every_field_a_mail_server_has():
    contact = factories.contact(
        first_name="Erika",
        middle_name="Luise",
        last_name="Mustermann",
        nickname="Rika",
        company_name="Contoso GmbH",
        job_title="Buyer",
        department="Purchasing",
        email="erika@contoso.test",
        email2="e.mustermann@home.test",
        email3="rika@chat.test",
        phone="+49 30 1234",
        mobile_phone="+49 170 1234",
        home_phone="+49 30 9876",
        business_fax="+49 30 1235",
        mailing_street="Hauptstr. 1",
        mailing_city="Berlin",
        mailing_state="Berlin",
        mailing_postal_code="10115",
        mailing_country="Germany",
        home_street="Gartenweg 2",
        home_city="Potsdam",
        other_street="Postfach 12",
        birthday=dt.date(1980, 2, 29),
        notes="Prefers calls in the morning.",
    )
    contact.full_clean()

    stored = Contact.objects.get(pk=contact.pk)
    assert (stored.middle_name, stored.nickname, stored.department) == ("Luise", "Rika", "Purchasing")
    assert [stored.email, stored.email2, stored.email3] == [
        "erika@contoso.test",
        "e.mustermann@home.test",
        "rika@chat.test",
    ]
    assert (stored.mailing_city, stored.home_city, stored.other_street) == (
        "Berlin",
        "Potsdam",
        "Postfach 12",
    )
    assert stored.birthday == dt.date(1980, 2, 29)
    assert Contact._meta.get_field("phone").verbose_name == "business phone"


def test_the_second_and_third_addresses_are_email_addresses():
    contact = factories.contact(email2="not an address")

    with pytest.raises(ValidationError) as raised:
        contact.full_clean()

    assert "email2" in raised.value.message_dict
