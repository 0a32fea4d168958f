"""Security headers on pages, API answers and static files: a Content-Security-Policy
without inline script, a Permissions-Policy, no version banner (no Server header
from the app, none carrying a version from gunicorn, versions in the support report
for administrators only)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.test import Client

from tests.personas import World

ROOT = Path(__file__).resolve().parents[2]


def _policy(response) -> dict[str, list[str]]:
    directives = [part.split() for part in response["Content-Security-Policy"].split(";") if part.strip()]
    return {name: values for name, *values in directives}


def _assert_security_headers(response) -> None:
    assert "camera=()" in response["Permissions-Policy"]
    assert "geolocation=()" in response["Permissions-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Server" not in response


def test_a_page_has_a_policy_without_inline_script(world: World):
    client = Client()
    client.force_login(world["admin"].login)
    response = client.get("/")
    assert response.status_code == 200

    policy = _policy(response)
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    _assert_security_headers(response)
    # And the page keeps to it: no inline script, no on* handler.
    page = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert not re.search(r"\son[a-z]+\s*=", page)


def test_the_sign_in_page_has_the_headers(db):
    response = Client().get("/login/")
    assert response.status_code == 200
    assert _policy(response)["script-src"] == ["'self'"]
    _assert_security_headers(response)


def test_an_api_answer_has_the_headers(world: World):
    client = Client()
    client.force_login(world["alice"].login)
    response = client.get("/api/v1/mailboxes/")
    assert response.status_code == 200
    assert _policy(response)["script-src"] == ["'self'"]
    _assert_security_headers(response)


def test_a_static_file_has_the_headers(db, settings):
    # WhiteNoise serves from the apps' folders here, as it serves STATIC_ROOT in production.
    settings.WHITENOISE_USE_FINDERS = True
    response = Client().get("/static/serversync/serversync.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    _assert_security_headers(response)


def test_the_swagger_ui_page_loads_its_start_up_script_from_a_file(db):
    page = Client().get("/api/docs/").content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    script = Client().get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")


def test_the_support_report_shows_versions_to_administrators_only(world: World):
    mailbox = world["alice"].mailbox
    url = f"/mailboxes/{mailbox.pk}/details.txt"
    reports = {}
    for name in ("admin", "alice"):
        client = Client()
        client.force_login(world[name].login)
        reports[name] = client.get(url).content.decode()

    assert "== Versions ==" in reports["admin"]
    assert re.search(r"^Django: \d", reports["admin"], re.M)
    assert "== Versions ==" not in reports["alice"]
    assert not re.search(r"^(serversync|Python|Django|Celery|Database): ", reports["alice"], re.M)
    assert f"Email address: {mailbox.email_address}" in reports["alice"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_gunicorn_as_the_procfile_starts_it_names_no_version(tmp_path: Path):
    procfile = (ROOT / "Procfile").read_text()
    command = re.search(r"^web: gunicorn (.*)$", procfile, re.M)
    assert command is not None
    port = _free_port()
    args = command[1].replace('"${HOST:-127.0.0.1}:${PORT:-8000}"', f"127.0.0.1:{port}").split()
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SERVERSYNC_DATA_DIR": str(tmp_path),
        "DEBUG": "true",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        headers = _headers_when_up(f"http://127.0.0.1:{port}/static/serversync/serversync.css")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert headers.get("Server") == "gunicorn"  # gunicorn's own name, no version
    assert "Permissions-Policy" in headers


def _headers_when_up(url: str) -> dict[str, str]:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our own loopback URL
                return dict(answer.headers)
        except urllib.error.HTTPError as error:
            return dict(error.headers)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
