"""Request bodies are capped per route: over the cap, 413 before the body is read
(JSON for API clients, a page for browsers); the upload routes take files up to
their own, larger cap."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from crm.models import Account
from tests.personas import World


def _client(world: World, name: str) -> Client:
    client = Client()
    client.force_login(world[name].login)
    return client


def test_the_default_cap_is_django_s_own_body_limit():
    assert settings.REQUEST_MAX_BYTES == settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2621440


def test_an_api_body_over_the_cap_is_refused_with_a_json_413(world: World):
    body = json.dumps({"name": "Big Ltd", "description": "x" * settings.REQUEST_MAX_BYTES})
    answer = _client(world, "admin").post("/api/v1/accounts/", body, content_type="application/json")

    assert answer.status_code == 413
    assert answer["Content-Type"] == "application/json"
    assert answer.json() == {"detail": "The request is too large: this address accepts at most 2.5 MiB."}
    assert not Account.objects.filter(name="Big Ltd").exists()


def test_an_api_body_under_the_cap_is_served(world: World):
    body = json.dumps({"name": "Fits Ltd", "description": "x" * 100_000})
    answer = _client(world, "admin").post("/api/v1/accounts/", body, content_type="application/json")

    assert answer.status_code == 201, answer.content
    assert Account.objects.filter(name="Fits Ltd").exists()


def test_a_browser_form_over_the_cap_gets_a_plain_page(world: World, settings):
    settings.REQUEST_MAX_BYTES = 4096
    answer = _client(world, "admin").post("/settings/email/", {"filler": "x" * 5000})

    assert answer.status_code == 413
    assert answer["Content-Type"].startswith("text/html")
    page = answer.content.decode()
    assert "<h1>Request too large</h1>" in page
    assert "accepts at most 4 KiB" in page


def test_the_router_migration_upload_takes_files_over_the_ordinary_cap(world: World):
    big = SimpleUploadedFile("router.xml", b"<x>" + b" " * (3 * 1024 * 1024) + b"</x>", "text/xml")
    answer = _client(world, "admin").post("/migration/", {"router1": big})

    # Past the cap: the upload view reads the file and answers about its content.
    assert answer.status_code != 413
    assert answer.status_code < 500


def test_an_upload_over_the_upload_cap_is_refused(world: World, settings):
    settings.UPLOAD_MAX_BYTES = 1024 * 1024
    answer = _client(world, "admin").post("/migration/", {"router1": _two_mib()})
    assert answer.status_code == 413
    assert "accepts at most 1 MiB" in answer.content.decode()

    api = _client(world, "admin").post("/api/v1/router-migrations/", {"router1": _two_mib()})
    assert api.status_code == 413
    assert api.json()["detail"].endswith("at most 1 MiB.")


def _two_mib() -> SimpleUploadedFile:
    return SimpleUploadedFile("router.xml", b" " * (2 * 1024 * 1024), "text/xml")
