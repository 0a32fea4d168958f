from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from mailboxes.models import Mailbox
from profiles.models import EmailServerProfile
from profiles.rotation import UnreadableCredentialsError, rotate_credentials
from tests import factories

pytestmark = pytest.mark.django_db

KEY_A, KEY_B, KEY_UNKNOWN = (Fernet.generate_key().decode() for _ in range(3))
PASSWORD = "S3cret-Pa55-xyz"


def raw(model, field: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{field}" FROM "{model._meta.db_table}" WHERE id = %s', [pk])  # noqa: S608
        return cursor.fetchone()[0]


@pytest.fixture
def stored_under_a(settings):
    """A profile and a mailbox whose secrets were written under key A."""
    settings.CREDENTIAL_KEYS = [KEY_A]
    profile = factories.profile(password=PASSWORD, outgoing_password="out-" + PASSWORD)
    mailbox = factories.mailbox(user=factories.crm_user(), profile=profile, password="mbx-" + PASSWORD)
    return profile, mailbox


def test_rotation_re_encrypts_every_secret_under_the_newest_key(settings, stored_under_a):
    profile, mailbox = stored_under_a
    before = raw(EmailServerProfile, "password", profile.pk)
    settings.CREDENTIAL_KEYS = [KEY_B, KEY_A]

    counts = rotate_credentials()

    assert counts == {
        "profiles.EmailServerProfile.password": 1,
        "profiles.EmailServerProfile.outgoing_password": 1,
        "profiles.EmailServerProfile.oauth_client_secret": 0,
        "profiles.EmailServerProfile.oauth_certificate": 0,
        "mailboxes.Mailbox.password": 1,
        "mailboxes.OAuthGrant.refresh_token": 0,
        "mailboxes.OAuthGrant.access_token": 0,
        # Uploaded Email Router files, while a migration holds them (none here).
        "mailboxes.RouterMigrationFile.content": 0,
    }
    after = raw(EmailServerProfile, "password", profile.pk)
    assert after != before
    assert Fernet(KEY_B.encode()).decrypt(after.encode()).decode() == PASSWORD
    settings.CREDENTIAL_KEYS = [KEY_B]  # the old key can go now
    assert EmailServerProfile.objects.get(pk=profile.pk).outgoing_password == "out-" + PASSWORD
    assert Mailbox.objects.get(pk=mailbox.pk).password == "mbx-" + PASSWORD


def test_a_second_rotation_changes_nothing(settings, stored_under_a):
    profile, _ = stored_under_a
    settings.CREDENTIAL_KEYS = [KEY_B, KEY_A]
    rotate_credentials(batch_size=1)
    rotated = raw(EmailServerProfile, "password", profile.pk)

    counts = rotate_credentials(batch_size=1)

    assert set(counts.values()) == {0}
    assert raw(EmailServerProfile, "password", profile.pk) == rotated


def test_rotation_works_through_batches(settings):
    settings.CREDENTIAL_KEYS = [KEY_A]
    for _ in range(5):
        factories.profile(password=PASSWORD)
    settings.CREDENTIAL_KEYS = [KEY_B, KEY_A]

    counts = rotate_credentials(batch_size=2)

    assert counts["profiles.EmailServerProfile.password"] == 5
    settings.CREDENTIAL_KEYS = [KEY_B]
    assert {p.password.reveal() for p in EmailServerProfile.objects.all()} == {PASSWORD}


def test_a_secret_under_an_unknown_key_is_named_by_record_never_by_value(settings, stored_under_a):
    profile, mailbox = stored_under_a
    stranger = Fernet(KEY_UNKNOWN.encode()).encrypt(b"stranger-" + PASSWORD.encode()).decode()
    with connection.cursor() as cursor:
        cursor.execute('UPDATE "mailboxes_mailbox" SET "password" = %s WHERE id = %s', [stranger, mailbox.pk])
    settings.CREDENTIAL_KEYS = [KEY_B, KEY_A]

    with pytest.raises(UnreadableCredentialsError) as error:
        rotate_credentials()

    assert error.value.records == [f"mailboxes.Mailbox.password of record {mailbox.pk}"]
    assert PASSWORD not in str(error.value)
    assert stranger not in str(error.value)
    # Everything readable was rotated all the same.
    assert error.value.rotated["profiles.EmailServerProfile.password"] == 1
    assert Fernet(KEY_B.encode()).decrypt(raw(EmailServerProfile, "password", profile.pk).encode())


def test_the_command_prints_a_summary(settings, stored_under_a):
    settings.CREDENTIAL_KEYS = [KEY_B, KEY_A]
    out = StringIO()

    call_command("rotate_credential_keys", "--batch-size", "10", stdout=out)

    assert "profiles.EmailServerProfile.password: 1" in out.getvalue()
    assert "mailboxes.Mailbox.password: 1" in out.getvalue()
    assert "Total: 3" in out.getvalue()


def test_the_command_fails_clearly_on_an_unreadable_secret(settings, stored_under_a):
    settings.CREDENTIAL_KEYS = [KEY_B]  # key A removed before rotating
    out = StringIO()

    with pytest.raises(CommandError, match="cannot be decrypted with any key in CREDENTIAL_KEYS"):
        call_command("rotate_credential_keys", stdout=out)

    assert "Total: 0" in out.getvalue()
