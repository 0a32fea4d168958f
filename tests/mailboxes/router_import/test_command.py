"""manage.py import_email_router: folders in, the review printed, applied unless --dry-run."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from mailboxes.models import Mailbox, RouterMigration, RouterMigrationSource
from profiles.models import EmailServerProfile
from tests.mailboxes.router_import.routers import BRANCH, CIPHERTEXTS, FILES, MAIN, Contoso

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_email_router", *args, stdout=out)
    return out.getvalue()


def test_a_dry_run_prints_the_review_and_changes_nothing(contoso: Contoso, frozen_now):
    mailboxes_before = list(Mailbox.objects.order_by("pk").values())

    printed = run(str(FILES / MAIN), str(FILES / BRANCH), "--dry-run")

    assert "Profiles to create: 3; existing profiles used: 0." in printed
    assert "Other files in its folder, ignored: Microsoft.Crm.Tools.EmailAgent.Configuration.bin." in printed
    assert "[create] forward forward@contoso.test <forward@contoso.test>" in printed
    assert "Dry run: nothing was changed." in printed
    assert RouterMigration.objects.count() == 0
    assert EmailServerProfile.objects.count() == 1
    assert list(Mailbox.objects.order_by("pk").values()) == mailboxes_before
    for ciphertext in CIPHERTEXTS:
        assert ciphertext not in printed


def test_without_dry_run_it_applies_and_keeps_the_migration(contoso: Contoso, frozen_now):
    printed = run(str(FILES / MAIN), str(FILES / BRANCH))

    migration = RouterMigration.objects.get()
    assert migration.source == RouterMigrationSource.COMMAND
    assert migration.state == "applied"
    assert f"Email Router migration {migration.pk} applied." in printed
    assert "Migrated: 3 profiles created (0 existing used), 3 mailboxes created, 2 updated, " in printed
    assert EmailServerProfile.objects.count() == 4
    assert migration.routers[0] == {
        "name": MAIN,
        "ignored": ["Microsoft.Crm.Tools.EmailAgent.Configuration.bin"],
    }

    again = run(str(FILES / MAIN), str(FILES / BRANCH))
    assert "Migrated: 0 profiles created (3 existing used), 0 mailboxes created, 0 updated" in again
    assert EmailServerProfile.objects.count() == 4


def test_a_folder_missing_a_file_is_a_clear_error(contoso: Contoso, tmp_path: Path):
    for path in (FILES / MAIN).iterdir():
        if path.name != "EncryptionKey.xml":
            shutil.copy(path, tmp_path / path.name)

    with pytest.raises(CommandError, match=f"{tmp_path.name}: EncryptionKey.xml is missing"):
        run(str(tmp_path))
    assert RouterMigration.objects.count() == 0


def test_not_a_folder(contoso: Contoso, tmp_path: Path):
    with pytest.raises(CommandError, match="is not a folder"):
        run(str(tmp_path / "nowhere"))
