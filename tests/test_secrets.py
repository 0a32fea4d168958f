"""A secret goes in and never comes out: not in an API response, not in a log line."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from tests.test_permission_matrix import RULES

SECRETS = {
    "password": "Profile-Pw-7f3a9",
    "outgoing_password": "Outgoing-Pw-2c81",
    "oauth_client_secret": "OAuth-Secret-d04e",
    "mailbox": "Mailbox-Pw-91bb",
}


@pytest.fixture
def secret_world(world, api_as, caplog):
    caplog.set_level(logging.DEBUG)
    admin = api_as("admin")
    response = admin.post(
        "/api/v1/profiles/",
        {
            "name": "Exchange Online",
            "server_type": "exchange_online",
            "credentials_source": "oauth_client_credentials",
            "oauth_tenant_id": "contoso.onmicrosoft.com",
            "oauth_client_id": "11111111-2222-3333-4444-555555555555",
            "oauth_client_secret": SECRETS["oauth_client_secret"],
            "username": "svc@contoso.test",
            "password": SECRETS["password"],
            "use_same_settings_for_outgoing": False,
            "outgoing_password": SECRETS["outgoing_password"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    world.extra_responses = [response]
    mailbox_url = f"/api/v1/mailboxes/{world['alice'].mailbox.pk}/"
    world.extra_responses.append(
        api_as("alice").patch(
            mailbox_url, {"password": SECRETS["mailbox"], "username": "alice"}, format="json"
        )
    )
    # A refused request that carries a secret must not echo it either.
    world.extra_responses.append(
        admin.post(
            "/api/v1/profiles/",
            {"name": "", "password": SECRETS["password"], "incoming_port": -4},
            format="json",
        )
    )
    return world


def _get_urls(world) -> list[str]:
    urls = []
    for name, rule in RULES.items():
        if rule.kind != "api" or "GET" not in rule.methods:
            continue
        if rule.objects is None:
            urls.append(reverse(name))
        else:
            urls += [reverse(name, args=[obj.pk]) for obj, _ in rule.objects(world)]
    return urls


def _assert_no_secret(text: str, where: str) -> None:
    for label, secret in SECRETS.items():
        assert secret not in text, f"the {label} secret appears in {where}"


def test_no_api_response_or_log_line_shows_a_secret(secret_world, api_as, caplog):
    for response in secret_world.extra_responses:
        _assert_no_secret(response.content.decode(), "a write response")
    for persona in ("admin", "alice"):
        client = api_as(persona)
        for url in [*_get_urls(secret_world), "/api/schema/"]:
            response = client.get(url)
            _assert_no_secret(response.content.decode(), f"GET {url} as {persona}")
    assert caplog.records, "the test must capture the request logs it checks"
    _assert_no_secret(caplog.text, "the logs")


def test_the_secrets_were_really_stored(secret_world):
    from mailboxes.models import Mailbox
    from profiles.models import EmailServerProfile

    profile = EmailServerProfile.objects.get(name="Exchange Online")
    assert profile.password.reveal() == SECRETS["password"]
    assert profile.outgoing_password.reveal() == SECRETS["outgoing_password"]
    assert profile.oauth_client_secret.reveal() == SECRETS["oauth_client_secret"]
    assert Mailbox.objects.get(pk=secret_world["alice"].mailbox.pk).password.reveal() == SECRETS["mailbox"]
    assert SECRETS["password"] not in repr(profile.password) + str(profile.password)
