import pytest
from django.core import serializers
from django.db import connection

from mailboxes.models import Mailbox
from profiles.fields import Secret
from profiles.models import EmailServerProfile
from tests import factories

pytestmark = pytest.mark.django_db

PASSWORD = "S3cret-Pa55-xyz"


def raw_column(model, field: str, pk: int) -> str:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name(field)} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def test_the_database_holds_ciphertext_only():
    profile = factories.profile(password=PASSWORD, oauth_client_secret="client-" + PASSWORD)

    for field in ("password", "oauth_client_secret"):
        stored = raw_column(EmailServerProfile, field, profile.pk)
        assert stored.startswith("gAAAA")  # a Fernet token
        assert PASSWORD not in stored


def test_the_attribute_reveals_the_plaintext_after_a_reload():
    mailbox = factories.mailbox(user=factories.crm_user(), profile=factories.profile(), password=PASSWORD)

    reloaded = Mailbox.objects.get(pk=mailbox.pk)

    assert reloaded.password.reveal() == PASSWORD
    assert reloaded.password == PASSWORD


def test_repr_and_str_mask_the_secret():
    profile = EmailServerProfile.objects.get(pk=factories.profile(password=PASSWORD).pk)

    assert PASSWORD not in f"{profile.password} {profile.password!r} {vars(profile)}"
    assert str(profile.password) == "********"


def test_an_empty_secret_is_stored_as_empty_and_is_false():
    profile = factories.profile()

    assert raw_column(EmailServerProfile, "password", profile.pk) == ""
    assert not EmailServerProfile.objects.get(pk=profile.pk).password
    assert str(profile.password) == ""


def test_saving_again_keeps_the_secret():
    profile = EmailServerProfile.objects.get(pk=factories.profile(password=PASSWORD).pk)
    profile.description = "Changed"
    profile.save()

    assert EmailServerProfile.objects.get(pk=profile.pk).password.reveal() == PASSWORD


def test_a_dump_carries_ciphertext_not_plaintext():
    profile = factories.profile(password=PASSWORD)

    dumped = serializers.serialize("json", EmailServerProfile.objects.filter(pk=profile.pk))

    assert PASSWORD not in dumped
    assert raw_column(EmailServerProfile, "password", profile.pk) in dumped


def test_a_secret_compares_by_its_plaintext():
    assert Secret(plain="a") == Secret(token=Secret(plain="a").token)
    assert Secret(plain="a") != Secret(plain="b")
