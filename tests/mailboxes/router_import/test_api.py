"""The REST API: multipart upload, review, apply with a choice of profiles, abandon."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from mailboxes.models import Mailbox, RouterMigration
from profiles.models import EmailServerProfile, ServerType
from tests import factories
from tests.mailboxes.router_import.routers import BRANCH, CIPHERTEXTS, MAIN, Contoso, memory_files, uploaded

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(contoso: Contoso) -> APIClient:
    client = APIClient()
    client.force_authenticate(factories.login_user("root", administrator=True))
    return client


def upload_both(client: APIClient):
    return client.post(
        "/api/v1/router-migrations/",
        {"router1": uploaded(MAIN), "router2": uploaded(BRANCH)},
        format="multipart",
    )


def test_upload_review_and_apply_with_one_profile_answered_no(admin_api: APIClient, frozen_now):
    created = upload_both(admin_api)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["state"] == "pending"
    assert [router["name"] for router in body["review"]["routers"]] == ["Router 1", "Router 2"]
    assert {file["name"] for file in body["files"]} == {
        "EncryptionKey.xml",
        "Microsoft.Crm.Tools.EmailAgent.SystemState.xml",
        "Microsoft.Crm.Tools.EmailAgent.xml",
    }
    assert all(len(file["sha256"]) == 64 for file in body["files"])
    forward = next(p for p in body["review"]["profiles"] if p["server_type"] == ServerType.EXCHANGE_SERVER)

    applied = admin_api.post(
        f"/api/v1/router-migrations/{body['id']}/apply/", {"profiles": {forward["key"]: False}}, format="json"
    )

    assert applied.status_code == 200, applied.content
    assert applied.json()["state"] == "applied"
    assert len(applied.json()["result"]["profiles_created"]) == 2
    assert not EmailServerProfile.objects.filter(server_type=ServerType.EXCHANGE_SERVER).exists()
    assert not Mailbox.objects.filter(is_forward_mailbox=True).exists()
    again = admin_api.post(f"/api/v1/router-migrations/{body['id']}/apply/", {}, format="json")
    assert again.status_code == 409
    assert again.json() == {"detail": "This migration is already applied."}


def test_no_password_in_any_answer(admin_api: APIClient, frozen_now):
    created = upload_both(admin_api)
    migration_id = created.json()["id"]
    answers = [
        created.content,
        admin_api.get(f"/api/v1/router-migrations/{migration_id}/").content,
        admin_api.get("/api/v1/router-migrations/").content,
        admin_api.post(f"/api/v1/router-migrations/{migration_id}/apply/", {}, format="json").content,
    ]
    for answer in answers:
        for ciphertext in CIPHERTEXTS:
            assert ciphertext.encode() not in answer


def test_bad_files_answer_400_naming_each_problem_and_store_nothing(admin_api: APIClient):
    files = memory_files()
    response = admin_api.post(
        "/api/v1/router-migrations/",
        {
            "router1": [
                _file("EncryptionKey.xml", files["EncryptionKey.xml"]),
                _file("Microsoft.Crm.Tools.EmailAgent.xml", b""),
            ]
        },
        format="multipart",
    )

    assert response.status_code == 400
    assert response.json()["problems"] == [
        "Router 1: Microsoft.Crm.Tools.EmailAgent.xml is empty.",
        "Router 1: Microsoft.Crm.Tools.EmailAgent.SystemState.xml is missing; each router needs all three "
        "files.",
    ]
    assert RouterMigration.objects.count() == 0


def test_an_unknown_field_and_no_files_answer_400(admin_api: APIClient):
    unknown = admin_api.post("/api/v1/router-migrations/", {"router5": uploaded(MAIN)}, format="multipart")
    assert unknown.status_code == 400
    assert "Unknown file field(s) router5" in unknown.json()["detail"]
    empty = admin_api.post("/api/v1/router-migrations/", {}, format="multipart")
    assert empty.status_code == 400
    assert empty.json()["problems"] == ["Upload the three files of at least one Email Router."]


def test_a_selection_naming_no_profile_is_400(admin_api: APIClient, frozen_now):
    migration_id = upload_both(admin_api).json()["id"]
    response = admin_api.post(
        f"/api/v1/router-migrations/{migration_id}/apply/", {"profiles": {"nope": True}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["problems"] == ["No merged profile has the key nope."]
    assert RouterMigration.objects.get(pk=migration_id).state == "pending"


def test_abandon(admin_api: APIClient, frozen_now):
    migration_id = upload_both(admin_api).json()["id"]
    response = admin_api.post(f"/api/v1/router-migrations/{migration_id}/abandon/")
    assert response.status_code == 200
    assert response.json()["state"] == "abandoned"
    assert EmailServerProfile.objects.count() == 1
    assert admin_api.post(f"/api/v1/router-migrations/{migration_id}/abandon/").status_code == 409


def test_non_administrators_cannot_upload(contoso: Contoso):
    client = APIClient()
    crm = factories.crm_user("Mallory", login=factories.login_user("mallory"))
    client.force_authenticate(crm.user)
    response = client.post("/api/v1/router-migrations/", {"router1": uploaded(MAIN)}, format="multipart")
    assert response.status_code == 403
    assert RouterMigration.objects.count() == 0


def test_the_list_shows_counts_not_reviews(admin_api: APIClient, frozen_now):
    upload_both(admin_api)
    [row] = admin_api.get("/api/v1/router-migrations/").json()["results"]
    assert row["counts"]["profiles_to_create"] == 3  # Exchange Online's entries share one Graph profile
    assert "review" not in json.dumps(list(row))


def _file(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)
