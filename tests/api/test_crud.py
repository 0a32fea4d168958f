"""CRUD through the REST API as a CRM administrator and a user would do it."""

from __future__ import annotations

import pytest

from crm.models import ActivityParty, EmailActivity
from mailboxes.models import ApprovalStatus, Mailbox, SyncStatus
from profiles.models import EmailServerProfile
from tests import factories

pytestmark = pytest.mark.django_db

IMAP_PROFILE = {
    "name": "Contoso IMAP",
    "server_type": "imap_smtp",
    "incoming_server_location": "imap.contoso.test",
    "outgoing_server_location": "smtp.contoso.test",
    "credentials_source": "profile",
    "username": "sync@contoso.test",
    "password": "Pr0file-Secret!",
}


def test_profile_create_fills_ports_and_hides_the_password(api_as):
    response = api_as("admin").post("/api/v1/profiles/", IMAP_PROFILE, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["incoming_port"], body["outgoing_port"]) == (993, 465)
    assert "password" not in body
    assert body["password_set"] is True
    stored = EmailServerProfile.objects.get(pk=body["id"])
    assert stored.password.reveal() == "Pr0file-Secret!"


def test_profile_update_without_password_keeps_it_and_empty_string_removes_it(api_as, world):
    world.profile.password = "Keep-Me-1"
    world.profile.save()
    client = api_as("admin")
    url = f"/api/v1/profiles/{world.profile.pk}/"

    assert client.patch(url, {"description": "edited"}, format="json").status_code == 200
    world.profile.refresh_from_db()
    assert world.profile.password.reveal() == "Keep-Me-1"

    assert client.patch(url, {"password": ""}, format="json").json()["password_set"] is False
    world.profile.refresh_from_db()
    assert not world.profile.password


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"incoming_port": 70000}, "incoming_port"),
        ({"incoming_port": 0}, "incoming_port"),
        ({"max_concurrent_connections": 301}, "max_concurrent_connections"),
        ({"connection_timeout_seconds": 101}, "connection_timeout_seconds"),
        ({"min_polling_interval_minutes": 1441}, "min_polling_interval_minutes"),
        ({"server_type": "lotus_notes"}, "server_type"),
        ({"incoming_server_location": "imap://host:993"}, "incoming_server_location"),
        ({"credentials_source": "profile", "username": ""}, "username"),
        (
            {"incoming_use_impersonation": True, "credentials_source": "user_or_queue"},
            "incoming_use_impersonation",
        ),
        # An IMAP profile signing in as an app (Exchange Online's IMAP) asks for the app registration.
        ({"credentials_source": "oauth_client_credentials"}, "oauth_tenant_id"),
        ({"credentials_source": "oauth_authorization_code", "oauth_provider": "other"}, "oauth_token_url"),
        ({"move_failed_email_to_undeliverable": True}, "move_failed_email_to_undeliverable"),
        ({"outgoing_auth_protocol": "ntlm"}, "outgoing_auth_protocol"),
        ({"name": "Personas IMAP"}, "name"),
    ],
)
def test_profile_rules_answer_400_naming_the_field(api_as, world, change, field):
    response = api_as("admin").post("/api/v1/profiles/", {**IMAP_PROFILE, **change}, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_second_default_profile_is_refused(api_as):
    client = api_as("admin")
    assert (
        client.post("/api/v1/profiles/", {**IMAP_PROFILE, "is_default": True}, format="json").status_code
        == 201
    )
    response = client.post(
        "/api/v1/profiles/", {**IMAP_PROFILE, "name": "Two", "is_default": True}, format="json"
    )
    assert response.status_code == 400
    assert "is_default" in response.json()


def test_deleting_a_profile_in_use_is_a_409_and_keeps_it(api_as, world):
    response = api_as("admin").delete(f"/api/v1/profiles/{world.profile.pk}/")
    assert response.status_code == 409
    assert "mailboxes" in response.json()["detail"]
    assert EmailServerProfile.objects.filter(pk=world.profile.pk).exists()


def test_mailbox_create_takes_defaults_from_organization_and_user(api_as, world):
    default = factories.profile("Default", is_default=True)
    carol = factories.crm_user("Carol Jones")
    response = api_as("admin").post("/api/v1/mailboxes/", {"user": carol.pk}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email_address"] == "carol@example.test"
    assert body["profile"] == default.pk
    assert (body["incoming_method"], body["outgoing_method"], body["act_method"]) == (
        "server_side_sync",
        "server_side_sync",
        "none",
    )
    assert body["approval_status"] == "empty"
    assert body["owner_kind"] == "user"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"act_method": "server_side_sync", "profile": "pop3"}, "act_method"),
        ({"queue": "queue", "act_method": "server_side_sync"}, "act_method"),
        ({"delete_email_after_processing": True}, "delete_email_after_processing"),
        ({"queue": "queue"}, "queue"),
        ({"email_address": "ALICE@example.test"}, "email_address"),
        ({"email_address": "not-an-address"}, "email_address"),
        ({"incoming_method": "carrier_pigeon"}, "incoming_method"),
    ],
)
def test_mailbox_rules_answer_400_naming_the_field(api_as, world, payload, field):
    pop3 = factories.profile("POP", server_type="pop3_smtp", incoming_server_location="pop.example.test")
    dave = factories.crm_user("Dave Brown")
    fresh_queue = factories.queue("Sales")
    replacements = {"pop3": pop3.pk, "queue": fresh_queue.pk}
    data = {"user": dave.pk, "email_address": "dave@example.test"}
    data.update({k: replacements.get(v, v) if isinstance(v, str) else v for k, v in payload.items()})
    if payload.get("queue") and "user" not in payload and field != "queue":
        data.pop("user")
    response = api_as("admin").post("/api/v1/mailboxes/", data, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_changing_a_mailbox_address_starts_a_new_generation(api_as, world):
    mailbox = world["alice"].mailbox
    Mailbox.objects.filter(pk=mailbox.pk).update(
        approval_status=ApprovalStatus.APPROVED, incoming_status=SyncStatus.SUCCESS, incoming_enabled=True
    )
    response = api_as("admin").patch(
        f"/api/v1/mailboxes/{mailbox.pk}/", {"email_address": "alice.new@example.test"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["configuration_generation"] == mailbox.configuration_generation + 1
    assert (body["approval_status"], body["incoming_status"], body["incoming_enabled"]) == (
        "empty",
        "not_run",
        False,
    )


def test_users_set_their_own_mailbox_credentials_but_not_its_settings(api_as, world):
    mailbox = world["alice"].mailbox
    client = api_as("alice")
    response = client.patch(
        f"/api/v1/mailboxes/{mailbox.pk}/",
        {
            "allow_credentials_for_email_processing": True,
            "username": "alice",
            "password": "Alice-Pw-9",
            "profile": None,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    mailbox.refresh_from_db()
    assert mailbox.password.reveal() == "Alice-Pw-9"
    assert mailbox.profile_id == world.profile.pk  # read-only for the owner
    assert response.json()["password_set"] is True


def test_users_change_their_personal_options_only(api_as, world):
    alice = world["alice"].crm_user
    response = api_as("alice").patch(
        f"/api/v1/users/{alice.pk}/",
        {"track_incoming_email": "all", "auto_create_contacts": True, "is_active": False, "full_name": "Eve"},
        format="json",
    )
    assert response.status_code == 200
    alice.refresh_from_db()
    assert (alice.track_incoming_email, alice.auto_create_contacts) == ("all", True)
    assert (alice.is_active, alice.full_name) == (True, "Alice")


def test_a_user_creates_records_owned_by_themselves(api_as, world):
    client = api_as("bob")
    response = client.post(
        "/api/v1/contacts/",
        {"last_name": "Nguyen", "email": "n@example.test", "owner": world["alice"].crm_user.pk},
        format="json",
    )
    # Alice's user record is invisible to Bob, so naming her as owner is refused.
    assert response.status_code == 400
    assert "owner" in response.json()
    response = client.post(
        "/api/v1/contacts/", {"last_name": "Nguyen", "email": "n@example.test"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["owner"] == world["bob"].crm_user.pk


def test_a_user_cannot_link_records_they_cannot_see(api_as, world):
    response = api_as("bob").post(
        "/api/v1/contacts/", {"last_name": "X", "account": world["alice"].account.pk}, format="json"
    )
    assert response.status_code == 400
    assert "account" in response.json()


def test_email_create_pending_send_with_parties(api_as, world):
    contact = world["alice"].contact
    response = api_as("alice").post(
        "/api/v1/emails/",
        {
            "subject": "Quote",
            "body_text": "Hello",
            "status": "pending_send",
            "to": ["customer@example.test"],
            "cc": ["cc@example.test"],
            "regarding_contact": contact.pk,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    email = EmailActivity.objects.get(pk=response.json()["id"])
    assert (email.status, email.direction, email.owner_id) == (
        "pending_send",
        "outgoing",
        world["alice"].crm_user.pk,
    )
    parties = sorted((p.role, p.address, p.user_id) for p in email.parties.all())
    assert parties == [
        ("cc", "cc@example.test", None),
        ("from", "alice@example.test", world["alice"].crm_user.pk),
        ("to", "customer@example.test", None),
    ]
    assert email.regarding == contact


def test_email_from_a_queue_uses_the_queue_address(api_as, world):
    response = api_as("quinn").post(
        "/api/v1/emails/",
        {"subject": "Ticket", "status": "draft", "sender_queue": world.queue.pk, "to": ["c@example.test"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    sender = ActivityParty.objects.get(email_id=response.json()["id"], role="from")
    assert (sender.queue_id, sender.address) == (world.queue.pk, world.queue.email)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"status": "pending_send"}, "to"),
        ({"status": "sent", "to": ["a@example.test"]}, "status"),
        ({"to": ["not an address"]}, "to"),
        ({"to": "a@example.test"}, "to"),
        ({"regarding_contact": "contact", "regarding_account": "account"}, "regarding_contact"),
        ({"subject": "x" * 801}, "subject"),
    ],
)
def test_email_create_rules_answer_400_naming_the_field(api_as, world, payload, field):
    refs = {"contact": world["alice"].contact.pk, "account": world["alice"].account.pk}
    data = {k: refs.get(v, v) if isinstance(v, str) else v for k, v in payload.items()}
    response = api_as("alice").post("/api/v1/emails/", data, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_organization_settings_read_and_validated_update(api_as):
    client = api_as("admin")
    body = client.get("/api/v1/organization-settings/").json()
    assert (body["tracking_token_prefix"], body["max_attachment_size_kb"]) == ("CRM", 5120)
    response = client.patch(
        "/api/v1/organization-settings/", {"tracking_token_prefix": "x" * 21}, format="json"
    )
    assert response.status_code == 400
    assert "tracking_token_prefix" in response.json()
    response = client.patch(
        "/api/v1/organization-settings/", {"crm_urls": "https://crm.contoso.test/org\nnope"}
    )
    assert response.status_code == 400
    assert "crm_urls" in response.json()
    assert client.patch("/api/v1/organization-settings/", {"smart_matching_enabled": True}).status_code == 200


def test_lists_paginate_filter_and_search(api_as, world):
    for number in range(7):
        factories.contact(last_name=f"Paged{number}", owner=world["alice"].crm_user)
    client = api_as("alice")
    page = client.get("/api/v1/contacts/?page_size=5").json()
    assert (page["count"], len(page["results"])) == (8, 5)
    assert page["next"]
    assert client.get("/api/v1/contacts/?search=Paged3").json()["count"] == 1
    assert client.get("/api/v1/mailboxes/?approval_status=approved").json()["count"] == 0
    response = client.get("/api/v1/mailboxes/?approval_status=nonsense")
    assert response.status_code == 400


def test_token_authentication(world, client):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=world["admin"].login)
    response = client.get("/api/v1/profiles/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert client.get("/api/v1/profiles/", HTTP_AUTHORIZATION="Token wrong").status_code == 401


def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/mailboxes/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
