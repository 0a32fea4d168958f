"""Start-up configuration: production refuses to run without keys, and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = (
    "import django; django.setup(); from django.conf import settings; print(settings.CREDENTIAL_KEYS[0][:6])"
)


def _start(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SERVERSYNC_DATA_DIR": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CREDENTIAL_KEYS": "x"}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "s"}, "CREDENTIAL_KEYS is not set"),
        (
            {"SECRET_KEY": "s", "CREDENTIAL_KEYS": "not-a-fernet-key"},
            "CREDENTIAL_KEYS entry 1 is not a Fernet key",
        ),
        ({"SECRET_KEY": "s", "CREDENTIAL_KEYS": "k", "DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        (
            {"SECRET_KEY": "s", "CREDENTIAL_KEYS": "k", "FILE_STORAGE_OPTIONS": "{"},
            "FILE_STORAGE_OPTIONS is not valid JSON",
        ),
        (
            {"SECRET_KEY": "s", "CREDENTIAL_KEYS": "k", "API_THROTTLE_USER": "3000 a minute"},
            "API_THROTTLE_USER='3000 a minute' is not a rate like 300/minute",
        ),
        (
            {"SECRET_KEY": "s", "CREDENTIAL_KEYS": "k", "AXES_FAILURE_LIMIT": "0"},
            "AXES_FAILURE_LIMIT=0 is below the minimum of 1",
        ),
    ],
)
def test_production_start_refuses_bad_configuration_with_a_message(tmp_path, env, message):
    result = _start(env, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr


def test_development_start_uses_development_keys(tmp_path):
    result = _start({"DEBUG": "true"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "c2Vydm"


def test_keys_can_come_from_files(tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text("dGVzdC1vbmx5LWNyZWRlbnRpYWwta2V5LTMyYnl0ZXM=\n")
    result = _start({"SECRET_KEY": "s", "CREDENTIAL_KEYS_FILE": str(key_file)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "dGVzdC"
