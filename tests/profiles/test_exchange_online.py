"""Exchange Online profiles: Microsoft Graph, signing in as an app registered in Entra ID
with a client secret or a certificate (stored encrypted, its expiry kept beside it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trustme
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from profiles.forms import ProfileForm
from profiles.models import MICROSOFT_GRAPH_URL, CredentialsSource, EmailServerProfile, ServerType

pytestmark = pytest.mark.django_db

APP = {
    "name": "Contoso 365",
    "server_type": "exchange_online",
    "credentials_source": "oauth_client_credentials",
    "oauth_tenant_id": "contoso.onmicrosoft.com",
    "oauth_client_id": "11111111-2222-3333-4444-555555555555",
}


def certificate_pem(expires: datetime = datetime(2031, 5, 1, tzinfo=UTC)) -> str:
    leaf = trustme.CA().issue_cert("serversync-app", not_after=expires)
    return leaf.private_key_and_cert_chain_pem.bytes().decode()


def test_the_api_takes_a_certificate_keeps_it_write_only_and_says_when_it_expires(api_as):
    pem = certificate_pem()
    response = api_as("admin").post("/api/v1/profiles/", {**APP, "oauth_certificate": pem}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert "oauth_certificate" not in body
    assert body["oauth_certificate_set"] is True
    assert body["oauth_certificate_expires_on"].startswith("2031-05-01")
    assert body["incoming_server_location"] == MICROSOFT_GRAPH_URL
    assert body["oauth_authority"] == "https://login.microsoftonline.com"
    assert EmailServerProfile.objects.get(pk=body["id"]).oauth_certificate.reveal() == pem


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"oauth_tenant_id": ""}, "oauth_tenant_id"),
        ({"oauth_client_id": ""}, "oauth_client_id"),
        ({}, "oauth_client_secret"),  # neither a secret nor a certificate
        ({"oauth_certificate": "-----BEGIN CERTIFICATE-----\nnope\n"}, "oauth_certificate"),
        (
            {"credentials_source": "profile", "username": "a", "oauth_client_secret": "s"},
            "credentials_source",
        ),
        ({"oauth_client_secret": "s", "incoming_use_impersonation": True}, "incoming_use_impersonation"),
        ({"oauth_client_secret": "s", "oauth_authority": "http://login.example"}, "oauth_authority"),
    ],
)
def test_what_an_app_registration_lacks_is_a_400_on_its_field(api_as, change, field):
    response = api_as("admin").post("/api/v1/profiles/", {**APP, **change}, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_a_certificate_whose_key_belongs_to_another_is_refused():
    ca = trustme.CA()
    mine, other = ca.issue_cert("mine"), ca.issue_cert("other")
    pem = mine.cert_chain_pems[0].bytes().decode() + other.private_key_pem.bytes().decode()
    profile = EmailServerProfile(**{**APP, "oauth_certificate": pem})
    with pytest.raises(ValidationError) as raised:
        profile.full_clean()
    assert raised.value.message_dict["oauth_certificate"] == [
        "The private key does not belong to the certificate."
    ]


def test_without_an_app_registration_the_profile_can_still_be_saved_as_an_import_does():
    # An Email Router import knows no app registration: the profile is kept, and says what it lacks.
    profile = EmailServerProfile(
        name="Imported",
        server_type=ServerType.EXCHANGE_ONLINE,
        credentials_source=CredentialsSource.OAUTH_CLIENT_CREDENTIALS,
    )
    profile.full_clean()
    assert profile.lacks_credentials
    assert {field for field, _ in profile.app_registration_violations()} == {
        "oauth_tenant_id",
        "oauth_client_id",
        "oauth_client_secret",
    }


def test_exchange_server_may_sign_in_with_an_app_for_hybrid_deployments():
    profile = EmailServerProfile(
        **{**APP, "server_type": ServerType.EXCHANGE_SERVER, "oauth_client_secret": "s"},
        incoming_server_location="https://mail.contoso.test/EWS/Exchange.asmx",
    )
    profile.full_clean()


def test_the_page_uploads_the_certificate_and_shows_its_expiry():
    data = {
        **APP,
        "server_type": ServerType.EXCHANGE_ONLINE,
        "incoming_server_location": MICROSOFT_GRAPH_URL,
        "outgoing_server_location": MICROSOFT_GRAPH_URL,
        "min_polling_interval_minutes": 5,
        "max_concurrent_connections": 10,
        "connection_timeout_seconds": 30,
    }
    upload = SimpleUploadedFile("app.pem", certificate_pem(datetime(2030, 2, 3, tzinfo=UTC)).encode())
    form = ProfileForm(data, {"oauth_certificate": upload}, instance=EmailServerProfile())
    assert form.is_valid(), form.errors
    saved = form.save()
    assert saved.oauth_certificate_expires_on == datetime(2030, 2, 3, tzinfo=UTC)

    shown = ProfileForm(instance=saved)
    assert "The stored certificate expires on 2030-02-03." in shown.fields["oauth_certificate"].help_text
    # Blank on the next save keeps it.
    again = ProfileForm({**data, "name": "Renamed"}, {}, instance=saved)
    assert again.is_valid(), again.errors
    assert again.save().oauth_certificate_expires_on == datetime(2030, 2, 3, tzinfo=UTC)


def test_the_page_refuses_a_pfx_file_with_a_clear_error():
    data = {**APP, "server_type": ServerType.EXCHANGE_ONLINE}
    upload = SimpleUploadedFile("app.pfx", b"\x30\x82\x0a\xff binary")
    form = ProfileForm(data, {"oauth_certificate": upload}, instance=EmailServerProfile())
    assert not form.is_valid()
    assert form.errors["oauth_certificate"] == ["Upload the certificate in PEM (text), not DER or PFX."]
