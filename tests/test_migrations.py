from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)


@pytest.mark.django_db
def test_migrate_creates_administrators_group_with_approval_permission():
    from django.contrib.auth.models import Group

    group = Group.objects.get(name="Administrators")
    assert group.permissions.filter(codename="approve_email", content_type__app_label="mailboxes").exists()
