"""`manage.py check --deploy` is clean with production settings: DEBUG off, a real
SECRET_KEY, TLS terminated upstream (HTTPS=true: SSL redirect, HSTS, secure cookies)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def _deploy_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    production = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SERVERSYNC_DATA_DIR": str(tmp_path),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "serversync.example.com",
        "HTTPS": "true",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path):
    result = _deploy_check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_what_is_missing_without_tls(tmp_path: Path):
    # The same check fails when the settings are not production's: it is not blind.
    result = _deploy_check(tmp_path, HTTPS="false")
    assert result.returncode != 0
    report = result.stdout + result.stderr
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in report
