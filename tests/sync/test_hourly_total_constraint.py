"""One HourlyTotal row per hour and profile, the row of mailboxes without a
profile included, on PostgreSQL (the tests' database) and on SQLite (what
``make run`` uses), whose system check once warned that it could not create the
constraint (models.W047)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from sync.models import HourlyTotal
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
HOUR = datetime(2025, 3, 10, 9, tzinfo=UTC)

# Run by `manage.py shell` on SQLite: the same two duplicates are refused there too.
ON_SQLITE = """
from datetime import UTC, datetime
from django.db import IntegrityError, connection, transaction
from profiles.models import EmailServerProfile
from sync.models import HourlyTotal
assert connection.vendor == "sqlite", connection.vendor
hour = datetime(2025, 3, 10, 9, tzinfo=UTC)
profile = EmailServerProfile.objects.create(name="P", server_type="imap_smtp",
    incoming_server_location="imap.example.test", outgoing_server_location="smtp.example.test")
for profile_id in (None, profile.pk):
    HourlyTotal.objects.create(hour=hour, profile_id=profile_id)
    try:
        with transaction.atomic():
            HourlyTotal.objects.create(hour=hour, profile_id=profile_id)
    except IntegrityError:
        print("refused", profile_id is None and "no profile" or "profile")
"""


def _manage(*args: str, database: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "DEBUG": "true",
        "SERVERSYNC_DATA_DIR": str(database.parent),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the settings of `make run`, not the tests'
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_system_check_on_sqlite_has_no_warning_and_the_rule_holds_there(tmp_path: Path):
    database = tmp_path / "serversync.sqlite3"

    migrated = _manage("migrate", "--noinput", "-v", "0", database=database)
    checked = _manage("check", "--database", "default", database=database)
    refused = _manage("shell", "-c", ON_SQLITE, database=database)

    assert migrated.returncode == 0, migrated.stderr
    assert "W047" not in migrated.stdout + migrated.stderr
    assert checked.returncode == 0, checked.stderr
    assert "W047" not in checked.stdout + checked.stderr
    assert "System check identified no issues" in checked.stdout
    assert refused.returncode == 0, refused.stderr
    said = [line for line in refused.stdout.splitlines() if line.startswith("refused")]
    assert said == ["refused no profile", "refused profile"]


def test_the_model_check_passes_on_the_tests_database():
    assert HourlyTotal.check(databases=["default"]) == []


@pytest.mark.django_db
@pytest.mark.parametrize("with_profile", [False, True], ids=["no profile", "a profile"])
def test_a_second_row_for_the_same_hour_and_profile_is_refused(with_profile: bool):
    profile = factories.profile("Totals") if with_profile else None
    HourlyTotal.objects.create(hour=HOUR, profile=profile)
    HourlyTotal.objects.create(hour=HOUR.replace(hour=10), profile=profile)  # another hour: fine

    with pytest.raises(IntegrityError), transaction.atomic():
        HourlyTotal.objects.create(hour=HOUR, profile=profile)
